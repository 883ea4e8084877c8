"""The bot as a support team relies on it (issue 13, items 3-8): buyer text made inert, every
card in step whoever changed the record, failed posts logged once and retried with backoff,
roles checked before a modal and nothing slow before the ack, race losers told who decided,
and queues that say there is more."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from slack_bot import Bot, buttons, start_bot, texts
from slack_fakes import FakeSlack

from iap_flow import SYSTEM, Actor, RefundStatus

EVIL = "<!channel> please <https://evil.example|Verify your Slack session> & <@ULEAD>"


def _inert(shown: str) -> None:
    """Nothing a buyer wrote became a ping, a link or a mention."""
    assert "<!channel>" not in shown
    assert "<https://evil.example" not in shown
    assert "&lt;!channel&gt;" in shown
    assert "&lt;https://evil.example|Verify your Slack session&gt;" in shown
    assert "&amp;" in shown


def test_buyer_text_is_escaped_on_every_card_and_screen(bot: Bot) -> None:
    order = bot.order()
    before = len(bot.slack.to("chat.postMessage"))
    refund = bot.flow.refunds.request(Actor.buyer("u1"), order, reason=EVIL)
    ticket = bot.flow.feedback.submit(Actor.buyer("u1"), rating=1, body=EVIL, order_id=order)
    refund_card, ticket_card = bot.slack.wait_for("chat.postMessage", before + 2)[before:]

    _inert(texts(refund_card))
    _inert(texts(ticket_card))
    assert "<!channel>" not in refund_card["text"] + ticket_card["text"]
    # the decision line shows the agent's reason escaped too
    bot.flow.refunds.reject(Actor.agent("UAGENT1"), refund.id, reason="No <!here> & no refund")
    bot.keeper.refresh_changed()
    [update] = bot.slack.wait_for("chat.update")
    assert "No &lt;!here&gt; &amp; no refund" in texts(update)
    assert "<!here>" not in texts(update)
    assert ticket.id in texts(ticket_card)


def test_a_lead_deciding_from_the_escalation_copy_updates_the_original_card(bot: Bot) -> None:
    refund, original = bot.refund()
    posts = len(bot.slack.to("chat.postMessage"))
    bot.clock.advance(timedelta(hours=25))
    bot.flow.sweep()
    copy = bot.slack.wait_for("chat.postMessage", posts + 1)[-1]
    assert buttons(copy) == ["refund_approve", "refund_reject"]
    # the escalation also shows on the original card
    [escalated] = bot.slack.wait_for("chat.update")
    assert escalated["ts"] == original["ts"]
    assert "escalated to leads" in texts(escalated)

    bot.driver.click("ULEAD", "refund_approve", refund.id, message=copy)

    updates = bot.slack.wait_for("chat.update", 3)[1:]
    assert {u["ts"] for u in updates} == {original["ts"], copy["ts"]}
    for update in updates:
        assert "Approved by <@ULEAD>" in texts(update)
        assert buttons(update) == []


def test_a_withdrawal_and_a_decision_from_elsewhere_reach_the_card(bot: Bot) -> None:
    withdrawn, card_1 = bot.refund()
    decided, card_2 = bot.refund()
    untouched, _ = bot.refund()

    bot.flow.refunds.withdraw(Actor.buyer("u1"), withdrawn.id)
    cli = Actor("cli", "support_lead")  # the CLI or another process, not this bot
    bot.flow.refunds.reject(cli, decided.id, reason="Consumed before asking")
    assert bot.keeper.refresh_changed() == 2  # the worker does this after every delivery

    updates = {u["ts"]: u for u in bot.slack.wait_for("chat.update", 2)}
    assert set(updates) == {card_1["ts"], card_2["ts"]}
    assert "Withdrawn by the buyer" in texts(updates[card_1["ts"]])
    assert "Rejected by `cli`: Consumed before asking" in texts(updates[card_2["ts"]])
    assert all(buttons(u) == [] for u in updates.values())
    assert bot.keeper.refresh_changed() == 0  # drawn once; the open one is left alone
    assert bot.flow.refunds.get(SYSTEM, untouched.id).status is RefundStatus.IN_REVIEW


def test_a_refused_post_is_logged_once_and_retried_with_backoff(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    bot.notifier.monotonic = lambda: now[0]
    for _ in range(2):
        bot.slack.fail_once("chat.postMessage", 200, error="not_in_channel")
    caplog.set_level(logging.WARNING, logger="iap_flow.bots.slack")

    ticket = bot.flow.feedback.submit(Actor.buyer("u1"), rating=5, body="Love it")
    for _ in range(5):  # five worker ticks within the first backoff: Slack is not asked again
        assert bot.flow.deliver_notifications() == 0
    assert bot.slack.arrived("chat.postMessage") == 1
    now[0] += 5.0  # first backoff over: tried again, refused again (same error: no new line)
    assert bot.flow.deliver_notifications() == 0
    now[0] += 5.0  # within the doubled backoff
    assert bot.flow.deliver_notifications() == 0
    assert bot.slack.arrived("chat.postMessage") == 2
    now[0] += 5.0
    assert bot.flow.deliver_notifications() == 1
    assert bot.flow.deliver_notifications() == 0

    [posted] = bot.slack.to("chat.postMessage")
    assert ticket.id in texts(posted)
    logged = [r for r in caplog.records if "not_in_channel" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert "/invite" in logged[0].getMessage()


@pytest.mark.parametrize(("user", "says"), [("UDEV", "may not"), ("UNOBODY", "not set up")])
def test_no_modal_opens_for_someone_who_may_not_reject(bot: Bot, user: str, says: str) -> None:
    refund, message = bot.refund()

    status, _ = bot.driver.click(user, "refund_reject", refund.id, message=message)

    assert status == 200
    [whisper] = bot.slack.wait_for("chat.postEphemeral")
    assert says in whisper["text"] and whisper["user"] == user
    assert bot.slack.arrived("views.open") == 0
    assert bot.flow.refunds.get(SYSTEM, refund.id).status is RefundStatus.IN_REVIEW


def test_the_reject_ack_does_not_wait_for_views_open(bot: Bot) -> None:
    refund, message = bot.refund()
    release = bot.slack.hold("views.open")  # Slack is slow (or rate limiting) to open it
    try:
        status, body = bot.driver.click("UAGENT1", "refund_reject", refund.id, message=message)
        assert (status, body) == (200, "")  # answered while views.open was still unanswered
        assert bot.slack.to("views.open") == []
    finally:
        release.set()
    [opened] = bot.slack.wait_for("views.open")
    assert opened["view"]["callback_id"] == "refund_reject_view"


def _together(*calls: Any) -> None:
    """Run the calls on their own threads, released at the same moment."""
    go = threading.Barrier(len(calls))

    def run(call: Any) -> None:
        go.wait()
        call()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _pg_url() -> Iterator[str]:
    base = os.environ.get("IAP_FLOW_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("IAP_FLOW_TEST_POSTGRES_URL is not set (a PostgreSQL to run against)")
    yield f"{base}?schema=slack_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield db_url
    else:
        yield from _pg_url()


def test_two_instances_deciding_at_once_the_loser_is_told_who_decided(
    slack: FakeSlack, shared_url: str
) -> None:
    first, stop_first = start_bot(slack, shared_url)
    second, stop_second = start_bot(slack, shared_url)
    try:
        for round_ in range(3):
            refund, message = first.refund()
            _together(
                partial(
                    first.driver.click, "UAGENT1", "refund_approve", refund.id, message=message
                ),
                partial(
                    second.driver.click, "UAGENT2", "refund_approve", refund.id, message=message
                ),
            )
            [whisper] = slack.wait_for("chat.postEphemeral", round_ + 1)[round_:]
            winner = first.flow.refunds.get(SYSTEM, refund.id).decided_by
            loser = whisper["user"]
            assert {winner, loser} == {"UAGENT1", "UAGENT2"}
            assert f"already decided by <@{winner}>" in whisper["text"]
            assert "reload" not in whisper["text"]
            _until(lambda r=refund.id: first.flow.refunds.get(SYSTEM, r).status.value == "refunded")
            assert (
                len(first.platform.refunded(refund.order_id))
                + len(second.platform.refunded(refund.order_id))
                == 1
            )
    finally:
        stop_first()
        stop_second()


def test_the_queue_says_how_many_wait_and_pages_through_the_rest(bot: Bot) -> None:
    made = {bot.refund()[0].id for _ in range(23)}

    _, first = bot.driver.command("UAGENT1", "queue")
    _, second = bot.driver.command("UAGENT1", "queue 2")
    _, bad = bot.driver.command("UAGENT1", "queue two")

    page_1, page_2 = texts(first), texts(second)
    assert "Showing 1-20 of 23 waiting (page 1 of 2). Next: `/iap queue 2`" in page_1
    assert "Showing 21-23 of 23 waiting (page 2 of 2)." in page_2
    on_1 = {r for r in made if r in page_1}
    on_2 = {r for r in made if r in page_2}
    assert (len(on_1), len(on_2)) == (20, 3)
    assert on_1 | on_2 == made
    assert "a queue page is a number" in bad["text"]
    # App Home shows the first 40 and where the rest are
    made |= {bot.refund()[0].id for _ in range(22)}
    bot.driver.event({"type": "app_home_opened", "user": "UAGENT1", "tab": "home"}, "EvQ")
    [home] = bot.slack.wait_for("views.publish")
    shown = texts(home["view"])
    assert "45 refunds awaiting review" in shown
    assert "Showing 1-40 of 45 waiting (page 1 of 2). Next: `/iap queue 3`" in shown
    _, third = bot.driver.command("UAGENT1", "queue 3")
    on_home = {r for r in made if r in shown}
    on_3 = {r for r in made if r in texts(third)}
    assert (len(on_home), len(on_3)) == (40, 5)
    assert on_home | on_3 == made


def test_a_ticket_card_shows_why_it_was_rated_badly_and_its_priority(bot: Bot) -> None:
    before = len(bot.slack.to("chat.postMessage"))
    ticket = bot.flow.feedback.submit(
        Actor.buyer("u1"), rating=2, body="Took ages", reason="slow_delivery", priority="high"
    )
    unexplained = bot.flow.feedback.submit(Actor.buyer("u1"), rating=1, body="Bad")
    cards = bot.slack.wait_for("chat.postMessage", before + 2)[before:]
    shown = {ticket.id: "", unexplained.id: ""}
    for card in cards:
        for key in shown:
            if key in texts(card):
                shown[key] = texts(card)
    assert "*Why 2/5*" in shown[ticket.id] and "paid but waited too long" in shown[ticket.id]
    assert "*Priority*\\nhigh" in shown[ticket.id]  # texts() is the JSON of the blocks
    assert "the buyer was asked" in shown[unexplained.id]
