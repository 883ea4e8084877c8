"""The service process: delivery deadline, ticket priorities, business hours, the clock paused
while waiting on the buyer, the warning before a breach, escalation levels, bad ratings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    BusinessCalendar,
    DeadlineKind,
    InvalidInput,
    OrderStatus,
    PermissionDenied,
    Policy,
    RatingReason,
    TicketPriority,
    TicketStatus,
)

SHANGHAI = BusinessCalendar(tz="Asia/Shanghai", holidays=frozenset({date(2026, 3, 4)}))
"""Monday to Friday 09:00-18:00 in Shanghai; Wednesday 4 March 2026 is a holiday."""
# The worlds start on Monday 2 March 2026 09:00 UTC: 17:00 in Shanghai, an hour before close.


def due(world: Any, subject_id: str) -> dict[DeadlineKind, datetime]:
    return {d.kind: d.due_at for d in world.flow.store.pending_deadlines(subject_id)}


def test_a_paid_order_not_delivered_warns_on_call_then_tells_a_lead(world: Any) -> None:
    order = world.order()  # paid at the start; delivery within 1 h
    assert due(world, order.id) == {DeadlineKind.ORDER_DELIVERY: world.start + timedelta(hours=1)}
    world.advance(minutes=45)  # 75 %: the warning
    assert world.flow.sweep().reminded == 1
    [warning] = [n for n in world.notifier.sent if n.topic == "deadline.reminder"]
    assert (warning.recipient, warning.payload["kind"]) == ("developer", "order_delivery")
    world.advance(minutes=15)
    assert world.flow.sweep().escalated == 1
    [told] = [n for n in world.notifier.sent if n.topic == "deadline.escalated"]
    assert (told.recipient, told.payload["order_id"], told.payload["amount"]) == (
        "support_lead",
        order.id,
        order.amount.amount,
    )
    assert world.flow.orders.get(SYSTEM, order.id).status is OrderStatus.PAID  # it stays
    [event] = [e for e in world.flow.history(SYSTEM, order.id) if e.event == "escalate"]
    assert (event.from_state, event.to_state, event.data) == (
        "paid",
        "paid",
        {"deadline": "order_delivery"},
    )
    world.advance(days=14)
    assert world.flow.sweep().escalated == 0  # told once


def test_a_delivered_or_refunded_order_is_never_escalated(world: Any) -> None:
    delivered = world.order(upto="delivered")
    held = world.order(upto="awaiting_delivery")
    world.flow.orders.deliver(SYSTEM, held.id)
    world.advance(days=2)
    assert world.flow.sweep().escalated == 0
    assert due(world, delivered.id) == due(world, held.id) == {}


@pytest.mark.parametrize(
    ("priority", "first", "resolution"),
    [("urgent", 1, 8), ("high", 2, 24), ("normal", 4, 72), ("low", 8, 120)],
)
def test_each_priority_has_its_targets(
    world: Any, priority: str, first: int, resolution: int
) -> None:
    ticket = world.flow.feedback.submit(world.buyer, rating=4, body="question", priority=priority)
    assert ticket.priority is TicketPriority(priority)
    expected = {
        DeadlineKind.TICKET_FIRST_RESPONSE: world.start + timedelta(hours=first),
        DeadlineKind.TICKET_RESOLUTION: world.start + timedelta(hours=resolution),
    }
    assert due(world, ticket.id) == expected
    stored = world.flow.feedback.get(SYSTEM, ticket.id)
    assert (stored.first_response_due, stored.resolution_due) == tuple(expected.values())


def test_targets_come_from_the_policy(make_world: Any) -> None:
    policy = Policy(
        ticket_targets={TicketPriority.URGENT: (timedelta(minutes=30), timedelta(hours=2))}
    )
    w = make_world(policy=policy)
    ticket = w.flow.feedback.submit(w.buyer, rating=5, body="?", priority="urgent")
    assert due(w, ticket.id)[DeadlineKind.TICKET_FIRST_RESPONSE] == w.start + timedelta(minutes=30)
    high = w.flow.feedback.submit(w.buyer, rating=5, body="?", priority="high")  # not listed:
    assert due(w, high.id)[DeadlineKind.TICKET_FIRST_RESPONSE] == w.start + timedelta(hours=4)


def test_feedback_targets_count_business_hours_and_store_deadlines_do_not(
    make_world: Any,
) -> None:
    w = make_world(policy=Policy(ticket_calendar=SHANGHAI))
    ticket = w.ticket()  # Monday 17:00 Shanghai
    # 4 h: 1 h on Monday, Tuesday 09:00-12:00 (Shanghai) = Tuesday 04:00 UTC
    first = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)
    # 72 h = 8 working days of 9 h: Mon 1 h, Tue 9, (Wed holiday), Thu 9, Fri 9, Mon 9, Tue 9,
    # Wed 9, Thu 9, Fri 8 h: Friday 13 March 17:00 Shanghai
    resolution = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)
    assert due(w, ticket.id) == {
        DeadlineKind.TICKET_FIRST_RESPONSE: first,
        DeadlineKind.TICKET_RESOLUTION: resolution,
    }
    order = w.order(upto="pending_payment")  # wall clock: 30 min, whatever the hour
    assert due(w, order.id) == {DeadlineKind.ORDER_PAYMENT: w.start + timedelta(minutes=30)}
    refund = w.refund()
    assert due(w, refund.id)[DeadlineKind.REFUND_REVIEW] == w.start + timedelta(hours=24)
    # the warning at 75 % of 4 working hours: 3 h = Tuesday 11:00 Shanghai
    [deadline] = [
        d for d in w.flow.store.pending_deadlines(ticket.id) if d.kind.value.endswith("response")
    ]
    assert deadline.remind_at == datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


def test_waiting_on_the_buyer_stops_the_clock_and_the_reply_restarts_it(world: Any) -> None:
    fb = world.flow.feedback
    ticket = world.ticket()  # first response due at 4 h, resolution at 72 h
    world.advance(hours=1)
    asked = fb.ask_buyer(world.agent, ticket.id, body="Which device do you use?")
    assert (asked.status, asked.waiting_since) == (TicketStatus.WAITING_ON_BUYER, world.clock.now())
    assert due(world, ticket.id) == {}  # nothing can breach while waiting
    question = world.notifier.sent[-1]
    assert (question.topic, question.recipient) == ("ticket.waiting_on_buyer", "u1")
    world.advance(days=3)  # far past both targets: no breach while waiting
    assert world.flow.sweep().escalated == 0
    replied = fb.buyer_reply(world.buyer, ticket.id, body="An iPhone 15")
    assert (replied.status, replied.waiting_since) == (TicketStatus.REOPENED, None)
    # the 3 h and 71 h that were left run again from now
    assert due(world, ticket.id) == {
        DeadlineKind.TICKET_FIRST_RESPONSE: world.clock.now() + timedelta(hours=3),
        DeadlineKind.TICKET_RESOLUTION: world.clock.now() + timedelta(hours=71),
    }
    assert world.notifier.sent[-1].topic == "ticket.buyer_replied"
    world.advance(hours=3)
    assert world.flow.sweep().escalated == 1  # the first response, 4 h of agent time in all


def test_the_pause_counts_business_hours(make_world: Any) -> None:
    w = make_world(policy=Policy(ticket_calendar=SHANGHAI))
    fb = w.flow.feedback
    ticket = w.ticket()  # Monday 17:00 Shanghai; first response Tuesday 12:00
    w.advance(minutes=30)  # 17:30: 30 min used, 3.5 h left
    fb.ask_buyer(w.agent, ticket.id, body="Which device?")
    w.clock.set(datetime(2026, 3, 5, 0, 0, tzinfo=UTC))  # Thursday 08:00 Shanghai, not open
    fb.buyer_reply(w.buyer, ticket.id, body="iPhone")
    # 3.5 h from Thursday's opening at 09:00: 12:30 Shanghai = 04:30 UTC
    first = due(w, ticket.id)[DeadlineKind.TICKET_FIRST_RESPONSE]
    assert first == datetime(2026, 3, 5, 4, 30, tzinfo=UTC)
    assert SHANGHAI.is_working(first)


def test_a_reply_after_a_passed_target_does_not_bring_it_back(world: Any) -> None:
    fb = world.flow.feedback
    ticket = world.ticket()
    world.advance(hours=5)
    assert world.flow.sweep().escalated == 1  # first response passed: a lead is told
    fb.ask_buyer(world.lead, ticket.id, body="Which device?")
    world.advance(hours=1)
    fb.buyer_reply(world.buyer, ticket.id, body="iPhone")
    kinds = set(due(world, ticket.id))
    # the resolution target goes on; the lead's window starts again; the first response,
    # already breached, is not opened a second time
    assert kinds == {DeadlineKind.TICKET_RESOLUTION, DeadlineKind.TICKET_ESCALATION}


def test_a_ticket_waiting_on_the_buyer_can_be_resolved(world: Any) -> None:
    ticket = world.ticket()
    world.flow.feedback.ask_buyer(world.agent, ticket.id, body="Still a problem?")
    resolved = world.flow.feedback.resolve(world.agent, ticket.id, note="no answer, closing")
    assert (resolved.status, resolved.waiting_since) == (TicketStatus.RESOLVED, None)
    assert due(world, ticket.id) == {}


def test_only_the_buyer_replies_and_only_staff_ask(world: Any) -> None:
    ticket = world.ticket()
    with pytest.raises(PermissionDenied):
        world.flow.feedback.ask_buyer(world.buyer, ticket.id, body="?")
    world.flow.feedback.ask_buyer(world.agent, ticket.id, body="Which device?")
    before = world.snapshot()
    with pytest.raises(PermissionDenied):
        world.flow.feedback.buyer_reply(world.other_buyer, ticket.id, body="not mine")
    assert world.snapshot() == before


def test_escalation_levels_each_have_their_time(make_world: Any) -> None:
    w = make_world(policy=Policy(escalation_window=timedelta(hours=2)))
    ticket = w.ticket()
    w.advance(hours=4)
    w.flow.sweep()
    w.advance(hours=2)
    w.flow.sweep()
    w.advance(days=10)
    w.flow.sweep()
    told = [
        (n.recipient, n.payload["kind"], n.payload["level"])
        for n in w.notifier.sent
        if n.topic == "deadline.escalated"
    ]
    assert told == [
        ("support_lead", "ticket_first_response", 1),
        ("support_manager", "ticket_escalation", 2),
        ("support_manager", "ticket_resolution", 2),  # the top level is told again
    ]
    assert w.flow.feedback.get(SYSTEM, ticket.id).level == 2


def test_a_bad_rating_takes_a_reason_now_or_later(world: Any) -> None:
    fb = world.flow.feedback
    given = fb.submit(world.buyer, rating=1, body="Waited an hour", reason="slow_delivery")
    assert given.reason is RatingReason.SLOW_DELIVERY
    assert world.notifier.sent[-1].topic == "ticket.opened"
    assert world.notifier.sent[-1].payload["reason"] == "slow_delivery"
    later = fb.submit(world.buyer, rating=2, body="Meh")
    assert world.notifier.sent[-1].topic == "ticket.reason_requested"
    explained = fb.explain(world.buyer, later.id, reason="too_expensive")
    assert fb.get(SYSTEM, later.id).reason is RatingReason.TOO_EXPENSIVE == explained.reason
    [event] = [e for e in world.flow.history(SYSTEM, later.id) if e.event == "explain"]
    assert (event.from_state, event.to_state, event.data) == (
        "open",
        "open",
        {"reason": "too_expensive"},
    )


@pytest.mark.parametrize(
    ("rating", "reason", "message"),
    [(2, "bored", "reason must be one of"), (4, None, "only a rating of 2 or less")],
)
def test_a_reason_that_does_not_fit_is_refused(
    world: Any, rating: int, reason: str | None, message: str
) -> None:
    fb = world.flow.feedback
    if reason is not None:
        before = world.snapshot()
        with pytest.raises(InvalidInput, match=message):
            fb.submit(world.buyer, rating=rating, body="x", reason=reason)
        assert world.snapshot() == before
        return
    ticket = fb.submit(world.buyer, rating=rating, body="fine")
    before = world.snapshot()
    with pytest.raises(InvalidInput, match=message):
        fb.explain(world.buyer, ticket.id, reason="other")
    assert world.snapshot() == before


def test_a_priority_that_is_not_one_is_refused(world: Any) -> None:
    before = world.snapshot()
    with pytest.raises(InvalidInput, match="priority must be one of"):
        world.flow.feedback.submit(world.buyer, rating=3, body="x", priority="asap")
    assert world.snapshot() == before


def test_a_business_calendar_keeps_holidays_in_local_dates() -> None:
    cal = BusinessCalendar(tz="Asia/Shanghai", opens=time(10), closes=time(12))
    # Saturday 7 March 2026 10:00 Shanghai: closed; Monday 9 March 10:00 opens
    saturday = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)
    assert not cal.is_working(saturday)
    assert cal.add(saturday, timedelta(minutes=1)) == datetime(2026, 3, 9, 2, 1, tzinfo=UTC)


def test_the_migration_gives_open_tickets_their_due_times(tmp_path: Any) -> None:
    """A store of the previous schema: its open ticket gets the due times of its deadlines."""
    import sqlite_utils

    from iap_flow import open_flow
    from iap_flow.adapters.sqlite_schema import MIGRATIONS

    # the store as it was just before the service levels' step (later steps run after it)
    step = next(v for v, f in MIGRATIONS.items() if "service level" in (f.__doc__ or ""))
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for version in range(1, step):
        MIGRATIONS[version](db)
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute(f"INSERT INTO meta VALUES ('schema_version', '{step - 1}')")
    at, first, last = (
        "2026-03-02T09:00:00.000000+00:00",
        "2026-03-02T13:00:00.000000+00:00",
        "2026-03-05T09:00:00.000000+00:00",
    )
    db.execute(
        "INSERT INTO tickets (id, user_id, rating, body, status, version, created_at,"
        " updated_at, escalated) VALUES ('tkt_1', 'u1', 2, 'late', 'open', 1, ?, ?, 1)",
        (at, at),
    )
    for kind, when in (("ticket_first_response", first), ("ticket_resolution", last)):
        db.execute(
            "INSERT INTO deadlines (kind, subject_id, due_at, state) VALUES (?, 'tkt_1', ?, ?)",
            (kind, when, "pending"),
        )
    db.conn.commit()
    db.close()
    with open_flow(f"sqlite:///{path}") as flow:
        ticket = flow.feedback.get(SYSTEM, "tkt_1")
    assert (ticket.priority, ticket.level, ticket.reason) == (TicketPriority.NORMAL, 1, None)
    assert ticket.first_response_due == datetime.fromisoformat(first)
    assert ticket.resolution_due == datetime.fromisoformat(last)
