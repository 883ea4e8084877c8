"""Feedback tickets, the App Home queue, the slash command, and deadline notices in Slack."""

from __future__ import annotations

from datetime import timedelta

from slack_bot import CHANNEL, Bot, buttons, texts

from iap_flow import SYSTEM, Actor, Money, TicketStatus


def test_reply_reaches_the_buyer_through_the_core_and_shows_in_the_thread(bot: Bot) -> None:
    ticket, message = bot.ticket()
    assert "Where are my gems?" in texts(message)
    assert "★★☆☆☆" in texts(message)
    assert buttons(message) == ["ticket_reply", "ticket_resolve"]

    bot.driver.click("UAGENT1", "ticket_reply", ticket.id, message=message)
    view = bot.slack.wait_for("views.open")[0]["view"]
    status, answer = bot.driver.submit("UAGENT1", view, {"answer": "Sent them again, sorry!"})

    assert (status, answer) == (200, {})
    thread = bot.slack.wait_for("chat.postMessage", 2)[-1]
    assert (thread["channel"], thread["thread_ts"]) == (CHANNEL, message["ts"])
    assert "Sent them again, sorry!" in texts(thread)
    update = bot.slack.wait_for("chat.update")[0]
    assert "Answered by <@UAGENT1>" in texts(update)
    assert buttons(update) == ["ticket_reply", "ticket_resolve"]
    note = bot.buyers.to("u1")[-1]
    assert (note.topic, note.payload["message"]) == ("ticket.answered", "Sent them again, sorry!")
    assert ("answer", "UAGENT1", "support_agent") in bot.audit(ticket.id)


def test_an_empty_reply_is_refused_in_the_modal(bot: Bot) -> None:
    ticket, message = bot.ticket()
    bot.driver.click("UAGENT1", "ticket_reply", ticket.id, message=message)
    view = bot.slack.wait_for("views.open")[0]["view"]
    before = bot.snapshot()

    status, answer = bot.driver.submit("UAGENT1", view, {"answer": "   "})

    assert status == 200
    assert answer["response_action"] == "errors"
    assert "must not be empty" in answer["errors"]["answer"]
    assert bot.snapshot() == before


def test_resolve_closes_the_ticket_and_removes_the_buttons(bot: Bot) -> None:
    ticket, message = bot.ticket()

    bot.driver.click("UAGENT2", "ticket_resolve", ticket.id, message=message)

    update = bot.slack.wait_for("chat.update")[0]
    assert "Resolved by <@UAGENT2>" in texts(update)
    assert buttons(update) == []
    assert bot.flow.feedback.get(SYSTEM, ticket.id).status is TicketStatus.RESOLVED


def test_a_reopened_ticket_comes_back_to_the_channel(bot: Bot) -> None:
    ticket, _ = bot.ticket()
    bot.flow.feedback.resolve(Actor.agent("UAGENT1"), ticket.id)
    bot.flow.feedback.reopen(Actor.buyer("u1"), ticket.id, body="Still no gems")

    message = bot.slack.wait_for("chat.postMessage", 2)[-1]
    assert "Feedback reopened" in texts(message)
    assert "Still no gems" in texts(message)
    assert buttons(message) == ["ticket_reply", "ticket_resolve"]


def test_app_home_shows_my_queue_soonest_deadline_first(bot: Bot) -> None:
    refund, _ = bot.refund()  # review due in 24 h
    bot.clock.advance(timedelta(hours=1))
    ticket, _ = bot.ticket()  # first answer due in 4 h: sooner
    bot.clock.advance(timedelta(hours=1))

    status, _ = bot.driver.event(
        {"type": "app_home_opened", "user": "UAGENT1", "tab": "home"}, "Ev1"
    )

    assert status == 200
    [published] = bot.slack.wait_for("views.publish")
    assert published["user_id"] == "UAGENT1"
    shown = texts(published["view"])
    assert published["view"]["type"] == "home"
    assert shown.index(ticket.id) < shown.index(refund.id)
    assert "due in 3h 00m" in shown
    assert "due in 22h 00m" in shown


def test_app_home_of_someone_without_a_role_says_so(bot: Bot) -> None:
    bot.driver.event({"type": "app_home_opened", "user": "UNOBODY", "tab": "home"}, "Ev7")

    [published] = bot.slack.wait_for("views.publish")
    assert "not set up as support staff" in texts(published["view"])


def test_slash_command_looks_an_order_up_for_the_caller_only(bot: Bot) -> None:
    refund, _ = bot.refund()

    status, answer = bot.driver.command("UAGENT1", f"order {refund.order_id}")

    assert status == 200
    assert answer["response_type"] == "ephemeral"
    shown = texts(answer)
    assert f"`{refund.order_id}`" in shown
    assert "*completed*" in shown
    for step in ("place", "pay", "deliver", "complete"):
        assert f"{step}:" in shown
    assert f"`{refund.id}` 1.99 USD · in_review" in shown


def test_the_order_view_shows_what_the_buyer_has_escaped(bot: Bot) -> None:
    pm = Actor("pm", "product_manager")
    bot.flow.catalogue.add(pm, sku="club", title="Club <!channel>", description="d", price=Money(999, "USD"), kind="subscription", period="month")  # fmt: skip
    order_id = bot.order()  # 100 gems, delivered
    club = bot.flow.orders.place(Actor.buyer("u1"), "club")
    bot.flow.orders.pay(Actor.buyer("u1"), club.id, token="tok_approve")
    sub = bot.flow.subscriptions.for_order(SYSTEM, club.id)

    _, answer = bot.driver.command("UAGENT1", f"order {order_id}")

    shown = texts(answer)
    assert "*What the buyer has now*" in shown
    assert "100 gems `gems` x1 (consumable) no end" in shown
    assert "Club &lt;!channel&gt; `club` (subscription) until" in shown and "· active" in shown
    assert "<!channel>" not in shown
    bot.flow.subscriptions.revoked(SYSTEM, sub.id, reason="family sharing withdrawn")
    _, after = bot.driver.command("UAGENT1", f"order {order_id}")
    assert "club" not in texts(after)


def test_slash_command_queue_help_and_unknown_order(bot: Bot) -> None:
    refund, _ = bot.refund()

    _, queue = bot.driver.command("UAGENT1", "queue")
    _, help_ = bot.driver.command("ULEAD", "")
    _, missing = bot.driver.command("ULEAD", "order ord_nope")

    assert refund.id in texts(queue)
    assert "/iap order <order id>" in help_["text"]
    assert missing["text"] == "order 'ord_nope' does not exist. Nothing was changed."


def test_reminders_and_escalations_are_posted_once_however_often_sweep_runs(bot: Bot) -> None:
    refund, _ = bot.refund()
    posts = len(bot.slack.to("chat.postMessage"))

    bot.clock.advance(timedelta(hours=19))
    bot.flow.sweep()
    bot.flow.sweep()
    reminders = bot.slack.wait_for("chat.postMessage", posts + 1)[posts:]
    assert len(reminders) == 1
    assert "Reminder: the review of refund" in texts(reminders[0])
    assert "in 5h 00m" in texts(reminders[0])

    bot.clock.advance(timedelta(hours=6))
    bot.flow.sweep()
    bot.flow.sweep()
    escalations = bot.slack.wait_for("chat.postMessage", posts + 2)[posts + 1 :]
    assert len(escalations) == 1
    assert "<@ULEAD>" in texts(escalations[0])
    assert "escalated to you" in texts(escalations[0])
    assert buttons(escalations[0]) == ["refund_approve", "refund_reject"]
    assert len(bot.slack.to("chat.postMessage")) == posts + 2
    assert ("escalate", "system", "system") in bot.audit(refund.id)
