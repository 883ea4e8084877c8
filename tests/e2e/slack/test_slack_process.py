"""`iap-flow slack` as a process run from the deployment's configuration file: HTTP under
uvicorn, and a graceful stop on SIGTERM that still answers the request in flight."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from slack_bot import SECRET
from slack_fakes import Driver, FakeSlack

from iap_flow import open_flow


def _config(tmp_path: Path, slack: FakeSlack) -> Path:
    db = f"sqlite:///{tmp_path / 'orders.db'}"
    open_flow(db, deliver_inline=False).close()
    path = tmp_path / "iap-flow.toml"
    path.write_text(
        f"""
[store]
url = "{db}"

[notifications]
buyer = "jsonl:buyers.jsonl"
staff = "slack"

[slack]
review_channel = "C0REVIEW"
api_url = "{slack.url}"
mode = "http"
host = "127.0.0.1"
port = 0
deliver_every = 0.2
sweep_every = 0

[slack.roles]
support_agents = ["SAGENTS"]
"""
    )
    return path


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "IAP_FLOW_")) and "proxy" not in k.lower()
    }
    return {**env, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET}


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path, slack: FakeSlack) -> None:
    slack.groups["SAGENTS"] = ["UAGENT3"]
    slack.fail_once("usergroups.users.list", 200, error="fatal_error")  # warming fails at start
    config = _config(tmp_path, slack)
    proc = subprocess.Popen(
        [sys.executable, "-m", "iap_flow.cli", "--config", str(config), "slack"],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        url = _wait_line(proc, "listening on ").split("listening on ", 1)[1].strip()
        # so the slash command's ack must look the user group up: Slack is slow to answer
        release = slack.hold("usergroups.users.list")
        answer: dict[str, Any] = {}
        sender = threading.Thread(
            target=lambda: answer.update(
                zip(("status", "body"), Driver(url, SECRET).command("UAGENT3", "help"), strict=True)
            )
        )
        sender.start()
        _until_arrived(slack, "usergroups.users.list", 2)  # the first was the failed warm-up

        proc.terminate()
        _wait_line(proc, "finishing requests in flight")
        release.set()
        sender.join(15)

        assert answer["status"] == 200
        assert "/iap queue" in answer["body"]["text"]
        _, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, rest


def _wait_line(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return line
    raise AssertionError(f"no line with {marker!r}:\n" + "".join(seen))


def _until_arrived(slack: FakeSlack, method: str, count: int) -> None:
    for _ in range(500):
        if slack.arrived(method) >= count:
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"{method} was never called")
