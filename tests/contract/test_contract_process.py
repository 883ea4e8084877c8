"""The whole process through the public API, the same on every store."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    ConflictError,
    Flow,
    IdempotencyKeyReused,
    InvalidInput,
    ManualClock,
    NotFound,
    PermissionDenied,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier

BUYER = Actor.buyer("u1")
OTHER = Actor.buyer("u2")
AGENT = Actor.agent("a1")
DEV = Actor("dev", "developer")


def test_order_lifecycle_is_stored_with_one_audit_event_per_change(
    flow: Flow, notifier: MemoryNotifier
) -> None:
    order = flow.orders.place(BUYER, "gems")
    flow.orders.pay(BUYER, order.id, token="tok_approve")
    flow.orders.deliver(SYSTEM, order.id)
    done = flow.orders.complete(BUYER, order.id)

    stored = flow.orders.get(DEV, order.id)
    assert stored == done
    assert (stored.status, stored.version, stored.amount.amount) == ("completed", 4, 199)
    assert stored.platform_transaction_id and stored.paid_at == flow.clock.now()
    trail = [(e.event, e.from_state, e.to_state, e.role) for e in flow.history(DEV, order.id)]
    assert trail == [
        ("place", None, "pending_payment", "buyer"),
        ("pay", "pending_payment", "paid", "buyer"),
        ("deliver", "paid", "delivered", "system"),
        ("complete", "delivered", "completed", "buyer"),
    ]
    assert [n.topic for n in notifier.sent] == ["order.paid"]
    assert flow.store.pending_deadlines(order.id) == []


def test_a_declined_payment_and_errors_write_nothing(flow: Flow) -> None:
    order = flow.orders.place(BUYER, "gems")
    with pytest.raises(PermissionDenied):
        flow.orders.pay(OTHER, order.id, token="tok_approve")
    with pytest.raises(NotFound):
        flow.orders.deliver(SYSTEM, "ord_missing")
    assert len(flow.history(DEV, order.id)) == 1
    failed = flow.orders.pay(BUYER, order.id, token="tok_decline")
    assert flow.orders.get(DEV, order.id).status == failed.status == "payment_failed"


def test_query_orders_filters_and_pages_newest_first(flow: Flow, clock: ManualClock) -> None:
    made = []
    for i in range(7):
        buyer = BUYER if i % 3 else OTHER
        order = flow.orders.place(buyer, "gems")
        if i % 2:
            flow.orders.pay(buyer, order.id, token="tok_approve")
        made.append(flow.orders.get(DEV, order.id))
        clock.advance(timedelta(minutes=1))
    newest_first = [o.id for o in reversed(made)]

    seen, cursor = [], None
    while True:
        page = flow.orders.query(DEV, limit=3, cursor=cursor)
        seen += [o.id for o in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == newest_first

    mine = flow.orders.query(BUYER, limit=50).items
    assert [o.id for o in mine] == [o.id for o in reversed(made) if o.user_id == "u1"]
    paid = flow.orders.query(DEV, status="paid", limit=50).items
    assert {o.id for o in paid} == {o.id for o in made if o.status == "paid"}
    window = flow.orders.query(
        DEV, since=made[2].created_at, until=made[5].created_at, limit=50
    ).items
    assert [o.id for o in window] == [made[4].id, made[3].id, made[2].id]
    with pytest.raises(InvalidInput):
        flow.orders.query(DEV, cursor="not-a-cursor")


def test_a_subscription_lists_its_first_order_and_renewals(flow: Flow, clock: ManualClock) -> None:
    first = flow.orders.place(BUYER, "club")
    flow.orders.pay(BUYER, first.id, token="tok_approve")
    other = flow.orders.place(BUYER, "club")  # another subscription of the same buyer
    flow.orders.pay(BUYER, other.id, token="tok_approve")
    renewals = []
    for _ in range(3):
        clock.advance(timedelta(days=30))
        renewals.append(flow.orders.renew(SYSTEM, first.id, token="tok_approve"))
    flow.orders.place(BUYER, "gems")
    page = flow.orders.query(BUYER, subscription_id=first.id, limit=2)
    assert [o.id for o in page.items] == [renewals[2].id, renewals[1].id]
    rest = flow.orders.query(BUYER, subscription_id=first.id, cursor=page.next_cursor)
    assert [o.id for o in rest.items] == [renewals[0].id, first.id]
    assert rest.next_cursor is None
    assert flow.orders.query(OTHER, subscription_id=first.id).items == []
    with pytest.raises(InvalidInput, match="subscription_id"):
        flow.orders.query(BUYER, subscription_id=" ")


def test_refund_queue_is_soonest_deadline_first(flow: Flow, clock: ManualClock) -> None:
    refunds = []
    for _ in range(3):
        order = flow.orders.pay(BUYER, flow.orders.place(BUYER, "gems").id, token="tok_approve")
        refunds.append(flow.refunds.request(BUYER, order.id, reason="changed my mind"))
        clock.advance(timedelta(minutes=5))
    assert [r.id for r in flow.refunds.queue(AGENT)] == [r.id for r in refunds]

    flow.refunds.reject(AGENT, refunds[0].id, reason="used already")
    flow.refunds.approve(AGENT, refunds[1].id)
    assert [r.id for r in flow.refunds.queue(AGENT)] == [refunds[2].id]
    assert flow.refunds.get(DEV, refunds[1].id).status == "refunded"
    assert flow.orders.get(DEV, refunds[1].order_id).status == "refunded"
    assert [r.status for r in flow.refunds.queue(BUYER, status=["rejected", "refunded"])] == [
        "rejected",
        "refunded",
    ]
    assert flow.refunds.queue(OTHER) == []


def test_tickets_keep_their_conversation(flow: Flow, clock: ManualClock) -> None:
    first = flow.feedback.submit(BUYER, rating=2, body="gems did not arrive")
    clock.advance(timedelta(minutes=1))
    second = flow.feedback.submit(OTHER, rating=5, body="great")
    flow.feedback.answer(AGENT, first.id, body="sorry, sent again")
    flow.feedback.reopen(BUYER, first.id, body="still nothing")
    ticket = flow.feedback.get(DEV, first.id)
    assert ticket.status == "reopened" and ticket.reopen_count == 1
    assert ticket.body == "gems did not arrive"
    assert [(m.role, m.body) for m in ticket.messages] == [
        ("support_agent", "sorry, sent again"),
        ("buyer", "still nothing"),
    ]
    assert [t.id for t in flow.feedback.queue(AGENT)] == [first.id, second.id]
    assert flow.feedback.queue(AGENT)[0].messages == ticket.messages
    flow.feedback.resolve(AGENT, first.id)
    assert [t.id for t in flow.feedback.queue(AGENT, status="resolved")] == [first.id]
    events = [e.event for e in flow.history(DEV, first.id)]
    assert events == ["submit", "answer", "reopen", "resolve"]


def test_the_sweep_acts_on_each_due_deadline_once(
    flow: Flow, clock: ManualClock, notifier: MemoryNotifier
) -> None:
    unpaid = flow.orders.place(BUYER, "gems")
    order = flow.orders.pay(BUYER, flow.orders.place(BUYER, "gems").id, token="tok_approve")
    kinds = {d.kind for d in flow.store.pending_deadlines(None)}
    assert kinds == {"order_payment", "order_delivery"}
    flow.orders.deliver(SYSTEM, order.id)  # in time: no delivery deadline stands
    refund = flow.refunds.request(BUYER, order.id, reason="not what I wanted")
    ticket = flow.feedback.submit(BUYER, rating=1, body="broken")
    kinds = {d.kind for d in flow.store.pending_deadlines(None)}
    assert kinds == {"order_payment", "refund_review", "ticket_first_response", "ticket_resolution"}

    clock.advance(timedelta(hours=3, minutes=30))  # past 75% of the 4 h first response
    first = flow.sweep()
    assert (first.expired, first.reminded, first.escalated) == (1, 1, 0)
    assert flow.orders.get(DEV, unpaid.id).status == "expired"

    clock.advance(timedelta(hours=30))
    second = flow.sweep()
    assert (second.expired, second.escalated) == (0, 2)  # the review and the first response
    assert flow.refunds.get(DEV, refund.id).escalated
    assert flow.feedback.get(DEV, ticket.id).escalated
    again = flow.sweep()
    assert (again.expired, again.reminded, again.escalated) == (0, 0, 0)
    topics = sorted(n.topic for n in notifier.sent if n.topic.startswith("deadline"))
    assert topics.count("deadline.escalated") == 2
    assert [e.event for e in flow.history(DEV, unpaid.id)] == ["place", "expire"]


def test_idempotency_keys_return_the_first_result(flow: Flow) -> None:
    first = flow.orders.place(BUYER, "gems", idempotency_key="k-1")
    again = flow.orders.place(BUYER, "gems", idempotency_key="k-1")
    assert again == first
    assert len(flow.orders.query(BUYER, limit=50).items) == 1
    with pytest.raises(IdempotencyKeyReused):
        flow.orders.place(BUYER, "club", idempotency_key="k-1")
    paid = flow.orders.pay(BUYER, first.id, token="tok_approve", idempotency_key="k-2")
    assert flow.orders.pay(BUYER, first.id, token="tok_approve", idempotency_key="k-2") == paid
    assert [e.event for e in flow.history(DEV, first.id)] == ["place", "pay"]


def test_two_deciders_at_once_one_wins(
    flow: Flow, store_url: str, clock: ManualClock, notifier: MemoryNotifier
) -> None:
    order = flow.orders.pay(BUYER, flow.orders.place(BUYER, "gems").id, token="tok_approve")
    refund = flow.refunds.request(BUYER, order.id, reason="double charge")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(event: str, agent: Actor) -> None:
        with open_flow(store_url, clock=clock, notifier=notifier) as other:
            barrier.wait()
            try:
                if event == "approve":
                    other.refunds.approve(agent, refund.id)
                else:
                    other.refunds.reject(agent, refund.id, reason="not eligible")
                outcomes.append(event)
            except ConflictError:
                outcomes.append("conflict")

    threads = [
        threading.Thread(target=decide, args=("approve", Actor.agent("a1"))),
        threading.Thread(target=decide, args=("reject", Actor.agent("a2"))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["approve", "conflict"], ["conflict", "reject"])
    decisions = [e for e in flow.history(DEV, refund.id) if e.event in ("approve", "reject")]
    assert len(decisions) == 1


def test_the_same_key_twice_at_once_runs_the_command_once(
    flow: Flow, store_url: str, clock: ManualClock, notifier: MemoryNotifier
) -> None:
    barrier = threading.Barrier(3)
    placed: list[str] = []

    def place() -> None:
        with open_flow(store_url, clock=clock, notifier=notifier) as other:
            barrier.wait()
            placed.append(other.orders.place(BUYER, "gems", idempotency_key="tap-1").id)

    threads = [threading.Thread(target=place) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(placed) == 3 and len(set(placed)) == 1
    assert [o.id for o in flow.orders.query(BUYER, limit=50).items] == placed[:1]
