"""How the bot meets Slack: signatures, stale requests, event retries across instances, rate
limits, Socket Mode over a local websocket, and `iap-flow slack` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from slack_bot import CHANNEL, SECRET, Bot, start_bot, texts
from slack_fakes import Driver, FakeSlack, FakeSocketMode, block_actions

from iap_flow import SYSTEM, Actor, Money, RefundStatus, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.bots.slack.serve import socket_mode

HOME = {"type": "app_home_opened", "user": "UAGENT1", "tab": "home"}


def test_a_bad_signature_gets_401_and_changes_nothing(bot: Bot) -> None:
    refund, message = bot.refund()
    before, calls = bot.snapshot(), len(bot.slack.calls)

    status, _ = bot.driver.click(
        "UAGENT1", "refund_approve", refund.id, message=message, signature="v0=" + "0" * 64
    )
    forged = Driver(bot.driver.url, "not-the-secret")
    status_2, _ = forged.click("UAGENT1", "refund_approve", refund.id, message=message)

    assert (status, status_2) == (401, 401)
    time.sleep(0.2)  # give a wrongly started lazy listener the chance to show itself
    assert bot.snapshot() == before
    assert len(bot.slack.calls) == calls


def test_a_stale_timestamp_gets_401_and_changes_nothing(bot: Bot) -> None:
    refund, message = bot.refund()
    before = bot.snapshot()

    status, _ = bot.driver.click(
        "UAGENT1", "refund_approve", refund.id, message=message, timestamp=int(time.time()) - 600
    )

    assert status == 401
    assert bot.snapshot() == before
    assert bot.flow.refunds.get(SYSTEM, refund.id).status is RefundStatus.IN_REVIEW


def test_a_retried_event_is_handled_once_even_by_another_instance(
    slack: FakeSlack, db_url: str
) -> None:
    first, stop_first = start_bot(slack, db_url)
    second, stop_second = start_bot(slack, db_url)  # a second bot process on the same store
    try:
        assert first.driver.event(HOME, "Ev42")[0] == 200
        slack.wait_for("views.publish")
        assert first.driver.event(HOME, "Ev42", retry=1)[0] == 200
        assert second.driver.event(HOME, "Ev42", retry=2)[0] == 200
        assert second.driver.event(HOME, "Ev43")[0] == 200
        slack.wait_for("views.publish", 2)
        time.sleep(0.2)  # a duplicate, if any, would be published by now
        assert len(slack.to("views.publish")) == 2
    finally:
        stop_first()
        stop_second()


def test_a_rate_limited_call_is_retried(bot: Bot) -> None:
    refund, message = bot.refund()
    bot.slack.fail_once("chat.update", 429)

    bot.driver.click("UAGENT1", "refund_approve", refund.id, message=message)

    [update] = bot.slack.wait_for("chat.update")
    assert "Approved by <@UAGENT1>" in texts(update)
    statuses = [c.status for c in bot.slack.calls if c.method == "chat.update"]
    assert statuses == [429, 200]


def test_socket_mode_through_a_local_websocket(bot: Bot) -> None:
    refund, message = bot.refund()
    endpoint = FakeSocketMode()
    bot.slack.ws_url = endpoint.url
    handler = socket_mode(bot.app, "xapp-test")
    try:
        handler.connect()
        command = {
            "team_id": "T0TEAM",
            "user_id": "UAGENT1",
            "command": "/iap",
            "text": f"order {refund.order_id}",
            "channel_id": CHANNEL,
            "trigger_id": "trigger.socket",
            "response_url": bot.slack.url.replace("/api/", "/respond/socket"),
        }
        endpoint.send("slash_commands", command, "env-1")
        assert endpoint.ack("env-1")["envelope_id"] == "env-1"  # acked at once, answered after
        [answer] = bot.slack.wait_for("respond")
        assert answer["response_type"] == "ephemeral"
        assert f"`{refund.order_id}`" in texts(answer)

        click = block_actions("UAGENT1", "refund_approve", refund.id, message, 1)
        endpoint.send("interactive", click, "env-2")
        assert endpoint.ack("env-2")["envelope_id"] == "env-2"
        [update] = bot.slack.wait_for("chat.update")
        assert "Approved by <@UAGENT1>" in texts(update)
        assert ("approve", "UAGENT1", "support_agent") in bot.audit(refund.id)
        opened = [c.token for c in bot.slack.calls if c.method == "apps.connections.open"]
        assert opened == ["xapp-test"]
    finally:
        endpoint.close()  # hang up first: the client's blocking read returns at once
        handler.close()


def test_iap_flow_slack_runs_over_http_and_delivers_the_outbox(
    slack: FakeSlack, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'orders.db'}"
    open_flow(db, deliver_inline=False).close()  # the schema exists before the bot starts
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "IAP_FLOW_SLACK_CHANNEL": CHANNEL,
        "IAP_FLOW_SLACK_SUPPORT_AGENTS": "UAGENT1",
        "IAP_FLOW_SLACK_API_URL": slack.url,
    }
    for name in ("SLACK_APP_TOKEN", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.pop(name, None)
    bot_file = tmp_path / "bot.notifications.jsonl"
    args = [
        *["--db", db, "slack", "--host", "127.0.0.1", "--port", "0", "--deliver-every", "0.1"],
        *["--audience", "staff", "--notifications", str(bot_file)],
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "iap_flow.cli", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _listening_url(proc)
        with urllib.request.urlopen(url.replace("/slack/events", "/healthz"), timeout=5) as r:
            assert r.read() == b"ok\n"
        status, answer = Driver(url, SECRET).command("UAGENT1", "help")
        assert status == 200
        assert "/iap queue" in answer["text"]

        # The backend delivers the buyers' notifications itself; the bot only the staff's.
        pushed = MemoryNotifier()
        backend = open_flow(db, notifier=pushed, deliver_inline=False, audiences=["buyer"])
        backend.catalogue.add(
            Actor("pm", "product_manager"),
            sku="gems",
            title="100 gems",
            description="d",
            price=Money(199, "USD"),
            kind="consumable",
        )
        order = backend.orders.place(Actor.buyer("u1"), "gems")
        backend.orders.pay(Actor.buyer("u1"), order.id, token="tok_approve")
        ticket = backend.feedback.submit(
            Actor.buyer("u1"), rating=1, body="Broken", reason="app_problem"
        )
        [posted] = slack.wait_for("chat.postMessage")
        assert ticket.id in texts(posted)
        # the bot has run deliveries since the buyer's confirmation was written: it left it
        assert not bot_file.exists() or "order.paid" not in bot_file.read_text()
        assert backend.deliver_notifications() == 1
        assert [n.topic for n in pushed.sent] == ["order.paid"]
        backend.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopping" in err


def test_iap_flow_slack_explains_a_missing_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IAP_FLOW_SLACK"))}
    proc = subprocess.run(
        [sys.executable, "-m", "iap_flow.cli", "--db", "sqlite://", "slack"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "SLACK_BOT_TOKEN is not set" in proc.stderr


def _listening_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "listening on " in line:
            return line.split("listening on ", 1)[1].strip()
    raise AssertionError("the bot did not start:\n" + "".join(lines))
