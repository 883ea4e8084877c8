"""Refund review in Slack: the review card, Approve, Reject with a reason, double and
concurrent clicks, the agent's amount limit, and people without a role."""

from __future__ import annotations

import threading

from slack_bot import CHANNEL, Bot, buttons, texts

from iap_flow import SYSTEM, Actor, RefundStatus


def test_a_new_request_appears_in_the_review_channel_with_what_a_reviewer_needs(bot: Bot) -> None:
    first, _ = bot.refund()
    bot.flow.refunds.reject(Actor.agent("UAGENT1"), first.id, reason="Gems were delivered")
    refund, message = bot.refund()

    assert message["channel"] == CHANNEL
    shown = texts(message)
    for needed in (
        "`u1`",  # buyer
        "100 gems (`gems`)",  # product
        "1.99 USD",  # amount
        "sandbox",  # platform
        "*Purchased*",
        "*Paid*",
        "The gems never arrived",  # reason
        f"`{first.id}`",  # the earlier refund, with its outcome
        "rejected",
        "*Review due*",
        "in 1d 0h",
    ):
        assert needed in shown, needed
    assert buttons(message) == ["refund_approve", "refund_reject"]
    assert refund.status is RefundStatus.IN_REVIEW


def test_approve_decides_at_once_and_updates_the_message_in_place(bot: Bot) -> None:
    refund, message = bot.refund()

    status, body = bot.driver.click("UAGENT1", "refund_approve", refund.id, message=message)

    assert (status, body) == (200, "")
    update = bot.slack.wait_for("chat.update")[0]
    assert (update["channel"], update["ts"]) == (message["channel"], message["ts"])
    assert "Approved by <@UAGENT1> at" in texts(update)
    assert "09:00 UTC" in texts(update)
    assert "refunded" in texts(update)
    assert buttons(update) == []
    done = bot.flow.refunds.get(SYSTEM, refund.id)
    assert done.status is RefundStatus.REFUNDED
    assert done.decided_by == "UAGENT1"
    assert ("approve", "UAGENT1", "support_agent") in bot.audit(refund.id)
    assert [n.topic for n in bot.buyers.to("u1")][-1] == "refund.succeeded"
    assert len(bot.platform.refunded(refund.order_id)) == 1


def test_reject_asks_for_a_reason_in_a_modal_and_refuses_a_short_one(bot: Bot) -> None:
    refund, message = bot.refund()

    status, _ = bot.driver.click("UAGENT2", "refund_reject", refund.id, message=message)
    assert status == 200
    opened = bot.slack.wait_for("views.open")[0]
    view = opened["view"]
    assert opened["trigger_id"].startswith("trigger.")
    assert view["callback_id"] == "refund_reject_view"
    assert bot.slack.to("chat.update") == []

    before = bot.snapshot()
    status, answer = bot.driver.submit("UAGENT2", view, {"reason": "  no "})
    assert status == 200
    assert answer["response_action"] == "errors"
    assert "at least 5 characters" in answer["errors"]["reason"]
    assert bot.snapshot() == before

    status, answer = bot.driver.submit(
        "UAGENT2", view, {"reason": "Gems were delivered on 1 March"}
    )
    assert (status, answer) == (200, {})
    update = bot.slack.wait_for("chat.update")[0]
    assert update["ts"] == message["ts"]
    assert "Rejected by <@UAGENT2>: Gems were delivered on 1 March" in texts(update)
    assert buttons(update) == []
    rejected = bot.flow.refunds.get(SYSTEM, refund.id)
    assert rejected.status is RefundStatus.REJECTED
    assert ("reject", "UAGENT2", "support_agent") in bot.audit(refund.id)
    note = bot.buyers.to("u1")[-1]
    assert (note.topic, note.payload["reason"]) == (
        "refund.rejected",
        "Gems were delivered on 1 March",
    )


def test_a_second_click_gets_an_ephemeral_already_decided(bot: Bot) -> None:
    refund, message = bot.refund()

    bot.driver.click("UAGENT1", "refund_approve", refund.id, message=message)
    bot.slack.wait_for("chat.update")
    bot.driver.click("UAGENT1", "refund_approve", refund.id, message=message)

    [whisper] = bot.slack.wait_for("chat.postEphemeral")
    assert whisper["user"] == "UAGENT1"
    assert whisper["channel"] == CHANNEL
    assert "already decided by <@UAGENT1>" in whisper["text"]
    assert [e for e in bot.audit(refund.id) if e[0] == "approve"] == [
        ("approve", "UAGENT1", "support_agent")
    ]
    assert len(bot.platform.refunded(refund.order_id)) == 1


def test_two_staff_approving_at_once_make_exactly_one_decision(bot: Bot) -> None:
    refund, message = bot.refund()
    start = threading.Barrier(2)
    statuses: list[int] = []

    def click(user: str) -> None:
        start.wait()
        statuses.append(bot.driver.click(user, "refund_approve", refund.id, message=message)[0])

    threads = [threading.Thread(target=click, args=(u,)) for u in ("UAGENT1", "UAGENT2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [200, 200]
    [whisper] = bot.slack.wait_for("chat.postEphemeral")
    [update] = bot.slack.wait_for("chat.update")
    approvals = [e for e in bot.audit(refund.id) if e[0] == "approve"]
    assert len(approvals) == 1
    winner = approvals[0][1]
    loser = ({"UAGENT1", "UAGENT2"} - {winner}).pop()
    assert whisper["user"] == loser
    assert f"already decided by <@{winner}>" in whisper["text"]
    assert f"Approved by <@{winner}>" in texts(update)
    assert len(bot.platform.refunded(refund.order_id)) == 1


def test_above_the_agent_limit_a_lead_must_decide(bot: Bot) -> None:
    refund, message = bot.refund("gems_big")
    assert "Approve (lead)" in texts(message)
    assert "a lead must decide" in texts(message)

    before = bot.snapshot()
    bot.driver.click("UAGENT1", "refund_approve", refund.id, message=message)
    [whisper] = bot.slack.wait_for("chat.postEphemeral")
    assert "above your limit of 50.00 USD: a support lead must decide it" in whisper["text"]
    assert bot.snapshot() == before

    bot.driver.click("ULEAD", "refund_approve", refund.id, message=message)
    [update] = bot.slack.wait_for("chat.update")
    assert "Approved by <@ULEAD>" in texts(update)
    assert ("approve", "ULEAD", "support_lead") in bot.audit(refund.id)


def test_a_member_of_a_mapped_user_group_acts_in_its_role(bot: Bot) -> None:
    refund, message = bot.refund()

    bot.driver.click("UAGENT3", "refund_approve", refund.id, message=message)

    bot.slack.wait_for("chat.update")
    assert ("approve", "UAGENT3", "support_agent") in bot.audit(refund.id)
    assert [c["usergroup"] for c in bot.slack.to("usergroups.users.list")] == ["SAGENTS"]


def test_someone_without_a_role_is_refused_politely_and_nothing_changes(bot: Bot) -> None:
    refund, message = bot.refund()
    before = bot.snapshot()

    bot.driver.click("UNOBODY", "refund_approve", refund.id, message=message)
    bot.driver.click("UNOBODY", "refund_reject", refund.id, message=message)
    status, answer = bot.driver.command("UNOBODY", f"order {refund.order_id}")

    whispers = bot.slack.wait_for("chat.postEphemeral", 2)
    assert {w["user"] for w in whispers} == {"UNOBODY"}
    assert all("not set up as support staff" in w["text"] for w in whispers)
    assert status == 200
    assert answer["response_type"] == "ephemeral"
    assert "Nothing was changed" in answer["text"]
    assert bot.slack.to("views.open") == []
    assert bot.slack.to("chat.update") == []
    assert bot.snapshot() == before


def test_a_reject_submitted_after_someone_approved_is_refused_in_the_modal(bot: Bot) -> None:
    refund, message = bot.refund()
    bot.driver.click("UAGENT2", "refund_reject", refund.id, message=message)
    view = bot.slack.wait_for("views.open")[0]["view"]
    bot.driver.click("UAGENT1", "refund_approve", refund.id, message=message)
    bot.slack.wait_for("chat.update")

    status, answer = bot.driver.submit("UAGENT2", view, {"reason": "Gems were delivered"})

    assert status == 200
    assert answer["response_action"] == "errors"
    assert "already decided by <@UAGENT1>" in answer["errors"]["reason"]
    assert [e[0] for e in bot.audit(refund.id)].count("reject") == 0
    assert bot.flow.refunds.get(SYSTEM, refund.id).status is RefundStatus.REFUNDED
