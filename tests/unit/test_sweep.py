"""The sweep: unpaid orders expire, reviews and tickets are reminded then escalated; each
deadline is acted on exactly once however often the sweep runs, and nothing is early."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iap_flow import (
    SYSTEM,
    ConcurrentModification,
    OrderStatus,
    RefundStatus,
    SweepResult,
    TicketStatus,
    TransitionNotAllowed,
)
from iap_flow.adapters.sandbox import SandboxPlatform
from iap_flow.services import sweep as sweep_module


def deadline_events(world: Any, subject_id: str) -> list[tuple[str, str]]:
    return [(e.event, e.role) for e in world.flow.history(SYSTEM, subject_id)[1:]]


def test_an_unpaid_order_expires_after_30_minutes(world: Any) -> None:
    order = world.order(upto="pending_payment")
    world.advance(minutes=29, seconds=59)
    assert world.flow.sweep() == SweepResult()
    world.advance(seconds=1)
    assert world.flow.sweep().expired == 1
    expired = world.flow.orders.get(SYSTEM, order.id)
    assert expired.status is OrderStatus.EXPIRED
    assert deadline_events(world, order.id) == [("expire", "system")]
    assert (world.notifier.sent[-1].topic, world.notifier.sent[-1].recipient) == (
        "order.expired",
        "u1",
    )
    assert world.flow.sweep() == SweepResult()


def test_a_buyer_cannot_pay_an_expired_order_and_is_not_charged(world: Any) -> None:
    order = world.order(upto="pending_payment")
    world.advance(hours=1)
    world.flow.sweep()
    before = world.snapshot()
    with pytest.raises(TransitionNotAllowed, match="expired"):
        world.flow.orders.pay(world.buyer, order.id, token="tok_approve")
    assert world.platform.ledger == []  # refused before the platform was asked
    assert world.snapshot() == before


def test_a_buyer_cannot_pay_a_cancelled_order(world: Any) -> None:
    order = world.order(upto="pending_payment")
    world.flow.orders.cancel(world.buyer, order.id)
    with pytest.raises(TransitionNotAllowed, match="cancelled"):
        world.flow.orders.pay(world.buyer, order.id, token="tok_approve")
    assert world.platform.ledger == []


def test_a_payment_the_platform_confirms_after_expiry_still_pays(world: Any) -> None:
    """The store charged the buyer (its notification came late): the money is recorded."""
    order = world.order(upto="pending_payment")
    world.advance(hours=1)
    world.flow.sweep()
    paid = world.flow.platform_events.purchased(
        SYSTEM, platform="sandbox", transaction_id="late_1", sku=order.sku, user_id=order.user_id
    )
    assert (paid.id, paid.status) == (order.id, OrderStatus.PAID)
    assert [e.event for e in world.flow.history(SYSTEM, order.id)] == ["place", "expire", "pay"]
    world.advance(hours=1)
    assert world.flow.sweep().expired == 0


def test_paid_and_cancelled_orders_never_expire(world: Any) -> None:
    world.order()
    cancelled = world.order(upto="pending_payment")
    world.flow.orders.cancel(world.buyer, cancelled.id)
    world.advance(days=1)
    assert world.flow.sweep().expired == 0


def test_a_refund_review_is_reminded_then_escalated_to_a_lead(world: Any) -> None:
    refund = world.refund()
    world.advance(hours=17, minutes=59)
    assert world.flow.sweep().reminded == 0
    world.advance(minutes=1)  # 75% of 24 h
    assert world.flow.sweep().reminded == 1
    reminder = world.notifier.sent[-1]
    assert (reminder.topic, reminder.recipient, reminder.payload["subject_id"]) == (
        "deadline.reminder",
        "support_agent",
        refund.id,
    )
    assert world.flow.sweep() == SweepResult()
    world.advance(hours=6)
    assert world.flow.sweep().escalated == 1
    escalated = world.flow.refunds.get(SYSTEM, refund.id)
    assert (escalated.status, escalated.escalated) == (RefundStatus.IN_REVIEW, True)
    assert deadline_events(world, refund.id)[-1] == ("escalate", "system")
    note = world.notifier.sent[-1]
    assert (note.topic, note.recipient, note.payload["order_id"]) == (
        "deadline.escalated",
        "support_lead",
        refund.order_id,
    )
    assert world.flow.sweep() == SweepResult()
    # a lead still decides it
    assert world.flow.refunds.approve(world.lead, refund.id).status is RefundStatus.REFUNDED


def test_a_late_sweep_escalates_without_reminding(world: Any) -> None:
    refund = world.refund()
    world.advance(days=3)
    assert world.flow.sweep() == SweepResult(escalated=1, delivered=1)
    assert [e for e, _ in deadline_events(world, refund.id)] == ["open_review", "escalate"]


def test_a_decision_in_time_leaves_nothing_to_escalate(world: Any) -> None:
    refund = world.refund()
    world.advance(hours=23)
    world.flow.refunds.reject(world.agent, refund.id, reason="used already")
    world.advance(days=2)
    assert world.flow.sweep() == SweepResult()


def test_ticket_first_response_and_resolution_deadlines(world: Any) -> None:
    silent = world.ticket()
    answered = world.ticket()
    world.advance(hours=2)
    world.flow.feedback.answer(world.agent, answered.id, body="looking")
    world.advance(hours=1)  # 3 h: 75% of the 4 h first response
    assert world.flow.sweep().reminded == 1
    world.advance(hours=1)  # 4 h
    assert world.flow.sweep().escalated == 1
    assert world.flow.feedback.get(SYSTEM, silent.id).escalated
    assert not world.flow.feedback.get(SYSTEM, answered.id).escalated
    assert world.flow.feedback.get(SYSTEM, silent.id).level == 1
    world.advance(hours=8)  # 12 h: the lead's 8 h passed too: the manager is told
    assert world.flow.sweep().escalated == 1
    told = [n for n in world.notifier.sent if n.topic == "deadline.escalated"]
    assert [(n.recipient, n.payload["level"]) for n in told] == [
        ("support_lead", 1),
        ("support_manager", 2),
    ]
    world.advance(hours=42)  # 54 h: 75% of 72 h, for both
    assert world.flow.sweep().reminded == 2
    world.advance(hours=18)  # 72 h
    assert world.flow.sweep().escalated == 2
    assert world.flow.feedback.get(SYSTEM, answered.id).escalated
    assert world.flow.feedback.get(SYSTEM, answered.id).status is TicketStatus.ANSWERED
    escalations = [e for e in world.flow.history(SYSTEM, silent.id) if e.event == "escalate"]
    assert [(e.from_state, e.to_state, e.data["deadline"]) for e in escalations] == [
        ("open", "open", "ticket_first_response"),
        ("open", "open", "ticket_escalation"),
        ("open", "open", "ticket_resolution"),
    ]
    world.advance(days=30)  # the answered ticket's lead had 8 h: its manager is told
    assert world.flow.sweep().escalated == 1
    assert world.flow.sweep() == SweepResult()


def test_a_reopened_ticket_gets_fresh_deadlines(world: Any) -> None:
    ticket = world.ticket(upto="reopened")
    world.advance(hours=4)
    assert world.flow.sweep().escalated == 1  # the new first-response deadline
    assert world.flow.feedback.get(SYSTEM, ticket.id).status is TicketStatus.REOPENED


@given(steps=st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=40))
def test_each_deadline_is_acted_on_once_however_often_the_sweep_runs(
    make_world: Any, steps: list[int]
) -> None:
    w = make_world()
    order, refund, ticket = w.order(upto="pending_payment"), w.refund(), w.ticket()
    totals: Counter[str] = Counter()
    # the last day: the lead's 8 h, counted from whenever the escalation happened, pass too
    for minutes in [*steps, 5 * 24 * 60, 24 * 60]:
        w.advance(minutes=minutes)
        result = w.flow.sweep()
        totals.update(expired=result.expired, reminded=result.reminded, escalated=result.escalated)
    assert totals["expired"] == 1
    # the review; the first response (to the lead), the lead's time (to the manager), the
    # resolution; the refunded order was delivered (w.refund), so no delivery escalation
    assert totals["escalated"] == 4
    assert totals["reminded"] <= 3
    trail = Counter(
        e.event for i in (order.id, refund.id, ticket.id) for e in w.flow.history(SYSTEM, i)
    )
    assert (trail["expire"], trail["escalate"]) == (1, 4)
    reminders = [n for n in w.notifier.sent if n.topic == "deadline.reminder"]
    assert len(reminders) == totals["reminded"]
    assert len({n.payload["kind"] for n in reminders}) == len(reminders)


def test_a_sweep_as_of_an_earlier_time_acts_only_on_what_was_due_then(world: Any) -> None:
    early = world.order(upto="pending_payment")
    world.advance(minutes=20)
    late = world.order(upto="pending_payment")
    world.advance(minutes=20)
    assert world.flow.sweep(now=world.clock.now() - timedelta(minutes=5)).expired == 1
    assert world.flow.orders.get(SYSTEM, early.id).status is OrderStatus.EXPIRED
    assert world.flow.orders.get(SYSTEM, late.id).status is OrderStatus.PENDING_PAYMENT


def test_more_due_than_one_batch_are_all_handled(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_module, "BATCH", 3)
    orders = [world.order(upto="pending_payment") for _ in range(10)]
    world.advance(hours=1)
    assert world.flow.sweep().expired == 10
    assert {world.flow.orders.get(SYSTEM, o.id).status for o in orders} == {OrderStatus.EXPIRED}


def test_breaches_are_recorded_for_the_report(world: Any) -> None:
    world.refund()
    world.ticket()
    world.order(upto="pending_payment")
    world.advance(days=4)
    world.flow.sweep()
    assert world.flow.report(world.analyst).breaches == {
        "refund_review": 1,
        "ticket_first_response": 1,
        "ticket_resolution": 1,
    }


class _LosesFirstOrderUpdate:
    """A store whose first version-checked order update loses the race, as on a server
    database when a command commits between the sweep's read and its write."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def transaction(self) -> Any:
        outer = self
        inner = self._store.transaction()

        class Tx:
            def __getattr__(self, name: str) -> Any:
                return getattr(self._tx, name)

            def update_order(self, order: Any, expected_version: int) -> None:
                if not outer.lost:
                    outer.lost += 1
                    raise ConcurrentModification(
                        kind="order", id=order.id, expected_version=expected_version
                    )
                self._tx.update_order(order, expected_version)

            def __enter__(self) -> Any:
                self._tx = inner.__enter__()
                return self

            def __exit__(self, *exc: Any) -> Any:
                return inner.__exit__(*exc)

        return Tx()


def test_a_batch_that_loses_a_race_is_swept_again_and_counted_once(world: Any) -> None:
    orders = [world.order(upto="pending_payment") for _ in range(3)]
    world.advance(minutes=31)
    racing = _LosesFirstOrderUpdate(world.flow._ctx.store)
    world.flow._ctx.store = racing
    result = world.flow.sweep()
    assert racing.lost == 1
    assert (result.expired, result.delivered) == (3, 3)
    for order in orders:
        assert deadline_events(world, order.id) == [("expire", "system")]
    assert [n.topic for n in world.notifier.sent].count("order.expired") == 3
    assert world.flow.sweep() == SweepResult()


class _RaisingPayouts(SandboxPlatform):
    """A platform adapter with a bug: paying out one order's refund raises."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()

    def refund(self, refund: Any, order: Any, idempotency_key: str) -> Any:
        if order.id in self.broken:
            raise RuntimeError("adapter bug")
        return super().refund(refund, order, idempotency_key)


def test_one_stuck_refund_does_not_stop_the_sweep() -> None:
    from iap_flow import Actor, ManualClock, Money, Policy, open_flow
    from iap_flow.adapters.notifiers import MemoryNotifier

    start = datetime(2026, 3, 1, tzinfo=UTC)
    clock, platform, inbox = ManualClock(start), _RaisingPayouts(), MemoryNotifier()
    policy = Policy(refund_max_attempts=3)
    flow = open_flow("sqlite://", clock=clock, platforms=[platform], notifier=inbox, policy=policy)
    pm, lead = Actor("pm", "product_manager"), Actor.lead("lead")
    flow.catalogue.add(
        pm, sku="gems", title="Gems", description="x", price=Money(99, "USD"), kind="consumable"
    )
    orders = []
    for n in range(3):
        buyer = Actor.buyer(f"u{n}")
        order = flow.orders.place(buyer, "gems")
        flow.orders.pay(buyer, order.id, token="tok_approve")
        flow.orders.deliver(SYSTEM, order.id)  # delivered: no delivery deadline stands
        orders.append(order)
    stuck = flow.refunds.request(Actor.buyer("u0"), orders[0].id, reason="mistap")
    platform.broken.add(orders[0].id)
    # The approval stands and the approver gets it: the adapter's bug is a failed attempt.
    approved = flow.refunds.approve(lead, stuck.id)
    assert (approved.status, approved.last_error) == ("failed", "RuntimeError: adapter bug")
    unpaid = flow.orders.place(Actor.buyer("u1"), "gems")  # expires in 30 minutes
    escalated = retried = failed = 0
    for _ in range(6):
        clock.advance(timedelta(hours=3))
        result = flow.sweep()  # never raises, whatever the stuck refund does
        failed += result.failed
        retried += result.retried
        escalated += result.escalated
    assert flow.orders.get(SYSTEM, unpaid.id).status is OrderStatus.EXPIRED
    # attempts 2 and 3 raised inside the adapter and failed; then a lead was told and
    # retries stopped
    assert (retried, failed, escalated) == (2, 0, 1)
    refund = flow.refunds.get(SYSTEM, stuck.id)
    assert refund.escalated and refund.last_error == "RuntimeError: adapter bug"
    assert [n.topic for n in inbox.sent].count("refund.escalated") == 1
    assert not [d for d in flow.store.pending_deadlines(stuck.id) if d.kind.value == "refund_retry"]
