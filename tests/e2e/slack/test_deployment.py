"""The deployment as deployed: the app backend, the Slack bot, the cron sweep and the store
webhook endpoint as separate OS processes on one PostgreSQL, all from one configuration file,
against local fakes of Slack and Google Play over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
from slack_bot import SECRET, buttons, texts
from slack_fakes import Driver, FakeSlack

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "googleplay"))
from play_fakes import (  # noqa: E402
    AUDIENCE,
    PACKAGE,
    PUSHER,
    SUBSCRIPTION,
    FakePlay,
    one_time,
    product_purchase,
    push,
)

PUSH_TOKEN = "push-s3cret"
STAFF_TOPICS = ("refund.review_requested", "deadline.", "ticket.opened", "refund.escalated")


@pytest.fixture
def pg_url() -> str:
    base = os.environ.get("IAP_FLOW_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("IAP_FLOW_TEST_POSTGRES_URL is not set (a PostgreSQL to run against)")
    return f"{base}?schema=deploy_{uuid.uuid4().hex[:10]}"


class Processes:
    """Starts ``iap-flow`` commands and the backend as child processes; stops them all."""

    def __init__(self, tmp: Path, config: Path, slack: FakeSlack) -> None:
        self.tmp, self.config = tmp, config
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "IAP_FLOW_")) and "proxy" not in k.lower()
        }
        self.env.update(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SECRET,
                "IAP_FLOW_GOOGLE_PLAY_PUSH_TOKEN": PUSH_TOKEN,
            }
        )
        self.running: list[subprocess.Popen[str]] = []
        self.backend: subprocess.Popen[str] | None = None

    def iap_flow(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "iap_flow.cli", "--config", str(self.config), *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)

    def serve(self, *commands: tuple[str, ...]) -> list[str]:
        """Start long-running ``iap-flow`` commands side by side; the URLs they listen on."""
        started = []
        for args in commands:
            command = [sys.executable, "-m", "iap_flow.cli", "--config", str(self.config), *args]
            proc = subprocess.Popen(command, env=self.env, stderr=subprocess.PIPE, text=True)
            self.running.append(proc)
            started.append(proc)
        return [_listening(proc) for proc in started]

    def start_backend(self, pushed: Path) -> None:
        script = HERE / "deploy_backend.py"
        self.backend = subprocess.Popen(
            [sys.executable, str(script), str(self.config), str(pushed)],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.running.append(self.backend)
        assert self._read(self.backend.stdout) == {"ready": True}

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.backend is not None and self.backend.stdin is not None
        self.backend.stdin.write(json.dumps(command) + "\n")
        self.backend.stdin.flush()
        answer = self._read(self.backend.stdout)
        assert "error" not in answer, answer
        return answer

    @staticmethod
    def _read(stream: IO[str] | None) -> dict[str, Any]:
        assert stream is not None
        line = stream.readline()
        assert line, "the backend exited"
        result: dict[str, Any] = json.loads(line)
        return result

    def stop_all(self) -> None:
        """Stop every process the way its supervisor would (the backend: end of its input;
        ``iap-flow`` commands: SIGTERM), all at once; each must exit cleanly."""
        for proc in self.running:
            if proc.stdin is not None:
                proc.stdin.close()  # the backend finishes its loop and closes its flow
            else:
                proc.terminate()
        for proc in list(self.running):
            err = "" if proc.stdin is not None else proc.communicate(timeout=20)[1]
            proc.wait(20)
            self.running.remove(proc)
            assert proc.returncode == 0, err

    def close(self) -> None:
        for proc in self.running:
            proc.kill()
            proc.wait(10)


def _listening(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "listening on " in line:
            return line.split("listening on ", 1)[1].strip()
    raise AssertionError("the process did not start:\n" + "".join(seen))


def _until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _topics(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["topic"] for line in path.read_text().splitlines()]


def _config(path: Path, url: str, slack: FakeSlack, extra: str) -> Path:
    path.write_text(
        f"""
[store]
url = "{url}"

[slack]
review_channel = "C0REVIEW"
api_url = "{slack.url}"
mode = "http"
host = "127.0.0.1"
port = 0
deliver_every = 0.1
sweep_every = 0

[slack.roles]
support_agents = ["UAGENT1"]
support_leads = ["ULEAD"]
{extra}
"""
    )
    return path


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def test_a_google_play_refund_from_request_to_payout_across_the_deployment(
    tmp_path: Path, pg_url: str, slack: FakeSlack
) -> None:
    with FakePlay() as play:
        config = _config(
            tmp_path / "iap-flow.toml",
            pg_url,
            slack,
            f"""
[platforms.google_play]
package_name = "{PACKAGE}"
api_endpoint = "{play.url}"
subscription = "{SUBSCRIPTION}"
push_service_account = "{PUSHER}"
push_audience = "{AUDIENCE}"
push_certs_url = "{play.certs_url}"

[notifications]
buyer = "app"
staff = "slack"
""",
        )
        procs = Processes(tmp_path, config, slack)
        pushed = tmp_path / "pushed-to-buyers.jsonl"
        try:
            bot_url, hooks_url = procs.serve(
                ("slack",), ("webhooks", "--host", "127.0.0.1", "--port", "0")
            )
            procs.start_backend(pushed)
            procs.ask(do="product", sku="gems", title="100 gems", cents=199)

            # Google tells the webhook endpoint about the purchase (a Pub/Sub push)
            order_id = "GPA.3300-0000-0000-00001"
            play.purchases["tok-1"] = product_purchase(order_id, "u1")
            at_ms = int(datetime.now(UTC).timestamp() * 1000)
            envelope = push(one_time("tok-1", "gems", at_ms), "msg-1")
            request = urllib.request.Request(
                f"{hooks_url}google-play?token={PUSH_TOKEN}",
                data=json.dumps(envelope).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {play.keys[0].token()}",
                },
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                ingested = json.loads(response.read())
            assert ingested["outcome"] == "paid"

            # the buyer asks the backend for a refund; the bot posts the card
            refund_id = procs.ask(
                do="refund", user="u1", order_id=ingested["order_id"], reason="Bought twice"
            )["refund_id"]
            [card] = slack.wait_for("chat.postMessage", timeout=20)
            assert refund_id in texts(card) and "Bought twice" in texts(card)
            assert buttons(card) == ["refund_approve", "refund_reject"]

            # the agent approves in Slack; the bot pays out through Google Play
            status, _ = Driver(bot_url, SECRET).click(
                "UAGENT1", "refund_approve", refund_id, message=card
            )
            assert status == 200
            _until(
                lambda: procs.ask(do="status", refund_id=refund_id)["status"] == "refunded",
                "the payout",
            )
            update = _until(
                lambda: [u for u in slack.to("chat.update") if "· refunded" in texts(u)],
                "the card showing the payout",
            )[-1]
            assert "Approved by <@UAGENT1>" in texts(update) and buttons(update) == []
            assert update["ts"] == card["ts"]
            assert play.refunded == [order_id]

            # the buyer hears it from the backend's push, never from the bot
            _until(lambda: "refund.succeeded" in _topics(pushed), "the buyer's notification")
            assert not any(t.startswith(STAFF_TOPICS) for t in _topics(pushed))
            swept = procs.iap_flow("sweep")
            assert swept.returncode == 0, swept.stderr
            assert len(slack.to("chat.postMessage")) == 1
            assert len(play.refund_calls()) == 1
            procs.stop_all()
        finally:
            procs.close()


def test_the_bot_posts_what_waited_while_it_was_down_and_cron_swept(
    tmp_path: Path, pg_url: str, slack: FakeSlack
) -> None:
    buyers = tmp_path / "buyers.jsonl"
    config = _config(
        tmp_path / "iap-flow.toml",
        pg_url,
        slack,
        f"""
[platforms.sandbox]

[notifications]
buyer = "jsonl:{buyers}"
staff = "slack"

[policy]
refund_review = "1s"
""",
    )
    procs = Processes(tmp_path, config, slack)
    try:
        procs.start_backend(tmp_path / "unused.jsonl")
        procs.ask(do="product", sku="gems", title="100 gems", cents=199)
        order_id = procs.ask(do="buy", user="u1", sku="gems")["order_id"]
        refund_id = procs.ask(do="refund", user="u1", order_id=order_id, reason="Never arrived")[
            "refund_id"
        ]
        time.sleep(1.2)  # the (1 s) review deadline passes while no bot runs

        swept = procs.iap_flow("sweep")
        assert swept.returncode == 0, swept.stderr
        assert "escalated 1" in swept.stdout
        # cron delivered the buyers' notifications and none of the staff's
        assert "order.paid" in _topics(buyers)
        assert not any(t.startswith(STAFF_TOPICS) for t in _topics(buyers))
        assert slack.to("chat.postMessage") == []

        procs.serve(("slack",))  # the bot comes back

        posted = slack.wait_for("chat.postMessage", 2, timeout=20)
        shown = [texts(p) for p in posted]
        assert any("Refund request" in s and refund_id in s for s in shown)
        assert any("escalated to you" in s and "<@ULEAD>" in s for s in shown)
        time.sleep(0.5)  # a few more delivery ticks: nothing is posted twice
        assert len(slack.to("chat.postMessage")) == 2
        assert not any(t.startswith(STAFF_TOPICS) for t in _topics(buyers))
        procs.stop_all()
    finally:
        procs.close()
