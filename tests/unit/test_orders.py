"""Orders: placed, paid through the platform, delivered, completed; cancelled, declined,
timed out; renewals; queries by user, status and time with pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    DeadlineKind,
    Money,
    OrderStatus,
    Platform,
    PlatformUnavailable,
    ProductKind,
    TransitionNotAllowed,
)


def test_the_whole_lifecycle_with_its_audit_trail_and_notifications(world: Any) -> None:
    orders = world.flow.orders
    placed = orders.place(world.buyer, "gems")
    assert placed.id.startswith("ord_")
    assert (placed.status, placed.user_id, placed.amount) == (
        OrderStatus.PENDING_PAYMENT,
        "u1",
        Money(199, "USD"),
    )
    assert (placed.sku, placed.title, placed.kind) == ("gems", "100 gems", ProductKind.CONSUMABLE)
    assert placed.platform is Platform.SANDBOX
    world.advance(minutes=5)
    paid = orders.pay(world.buyer, placed.id, token="tok_approve")
    assert paid.status is OrderStatus.PAID
    assert paid.paid_at == world.start + timedelta(minutes=5)
    assert paid.platform_transaction_id
    delivered = orders.deliver(SYSTEM, placed.id)
    completed = orders.complete(world.buyer, placed.id)
    assert (delivered.status, completed.status) == (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
    assert completed.version == 4
    assert orders.get(world.buyer, placed.id) == completed
    trail = world.flow.history(SYSTEM, placed.id)
    assert [(e.event, e.from_state, e.to_state, e.actor_id, e.role) for e in trail] == [
        ("place", None, "pending_payment", "u1", "buyer"),
        ("pay", "pending_payment", "paid", "u1", "buyer"),
        ("deliver", "paid", "delivered", "system", "system"),
        ("complete", "delivered", "completed", "u1", "buyer"),
    ]
    assert trail[1].at == paid.paid_at
    [note] = world.notifier.sent
    assert (note.topic, note.recipient, note.payload["order_id"]) == ("order.paid", "u1", placed.id)
    [ledger] = world.platform.ledger
    assert (ledger.order_id, ledger.amount) == (placed.id, Money(199, "USD"))


def test_held_delivery_then_delivered(world: Any) -> None:
    order = world.order(upto="awaiting_delivery")
    assert order.status is OrderStatus.AWAITING_DELIVERY
    assert world.flow.orders.deliver(world.dev, order.id).status is OrderStatus.DELIVERED


def test_a_declined_charge_fails_the_order_and_tells_the_buyer(world: Any) -> None:
    order = world.order(upto="pending_payment")
    failed = world.flow.orders.pay(world.buyer, order.id, token="tok_decline")
    assert failed.status is OrderStatus.PAYMENT_FAILED
    assert world.platform.ledger == []
    assert world.topics() == ["order.payment_failed"]
    assert world.notifier.sent[0].payload["reason"] == "card declined"
    with pytest.raises(TransitionNotAllowed):
        world.flow.orders.pay(world.buyer, order.id, token="tok_approve")


def test_a_platform_timeout_changes_nothing_and_the_buyer_can_pay_again(world: Any) -> None:
    order = world.order(upto="pending_payment")
    before = world.snapshot()
    with pytest.raises(PlatformUnavailable, match="did not answer"):
        world.flow.orders.pay(world.buyer, order.id, token="tok_timeout")
    assert world.snapshot() == before
    assert world.flow.orders.pay(world.buyer, order.id, token="tok_approve").status == "paid"
    assert len(world.platform.ledger) == 1


def test_cancel_an_unpaid_order_only(world: Any) -> None:
    order = world.order(upto="pending_payment")
    assert world.flow.orders.cancel(world.buyer, order.id).status is OrderStatus.CANCELLED
    assert world.flow.store.pending_deadlines(order.id) == []
    paid = world.order()
    with pytest.raises(TransitionNotAllowed, match=r"cannot cancel order .*: it is paid"):
        world.flow.orders.cancel(world.agent, paid.id)


def test_paying_closes_the_payment_deadline(world: Any) -> None:
    order = world.order(upto="pending_payment")
    [deadline] = world.flow.store.pending_deadlines(order.id)
    assert deadline.due_at == world.start + timedelta(minutes=30)
    world.flow.orders.pay(world.buyer, order.id, token="tok_approve")
    # paying opens the delivery deadline in its place; delivering closes it
    [delivery] = world.flow.store.pending_deadlines(order.id)
    assert (delivery.kind, delivery.due_at) == (
        DeadlineKind.ORDER_DELIVERY,
        world.start + timedelta(hours=1),
    )
    world.flow.orders.deliver(SYSTEM, order.id)
    assert world.flow.store.pending_deadlines(order.id) == []


def test_another_process_changing_the_order_is_seen(file_world: Any, make_world: Any) -> None:
    w = file_world
    order = w.order()
    w.flow.orders.deliver(SYSTEM, order.id)  # w's flow now caches the delivered order
    other = make_world(f"sqlite:///{w.flow.store.path}", seed_catalogue=False)
    other.flow.orders.complete(w.buyer, order.id)  # completed behind w's back
    with pytest.raises(TransitionNotAllowed, match="it is completed"):
        w.flow.orders.complete(w.buyer, order.id)
    assert w.flow.orders.get(SYSTEM, order.id).version == 4
    assert len(w.flow.history(SYSTEM, order.id)) == 4


# -- subscriptions ---------------------------------------------------------------------------


def test_a_renewal_is_a_new_paid_order_linked_to_the_first(world: Any) -> None:
    first = world.order("pro_month")
    world.advance(days=30)
    renewal = world.flow.orders.renew(SYSTEM, first.id, token="tok_approve")
    assert renewal.id != first.id
    assert (renewal.subscription_id, renewal.status) == (first.id, OrderStatus.PAID)
    assert (renewal.sku, renewal.amount, renewal.period) == (first.sku, first.amount, first.period)
    assert renewal.user_id == "u1"
    trail = world.flow.history(SYSTEM, renewal.id)
    assert [(e.event, e.role) for e in trail] == [("renew", "system"), ("pay", "system")]
    with pytest.raises(Exception, match="is a renewal"):
        world.flow.orders.renew(SYSTEM, renewal.id, token="tok_approve")


def test_a_declined_renewal_fails_only_the_renewal(world: Any) -> None:
    first = world.order("pro_month")
    renewal = world.flow.orders.renew(SYSTEM, first.id, token="tok_decline")
    assert renewal.status is OrderStatus.PAYMENT_FAILED
    assert world.flow.orders.get(SYSTEM, first.id).status is OrderStatus.PAID


# -- payments the platform reports itself -----------------------------------------------------


def test_a_platform_purchase_pays_the_buyers_waiting_order(world: Any) -> None:
    order = world.order(upto="pending_payment")
    paid = world.flow.platform_events.purchased(
        SYSTEM, platform="sandbox", transaction_id="txn_1", sku=order.sku, user_id=order.user_id
    )
    assert (paid.id, paid.status, paid.platform_transaction_id) == (
        order.id,
        OrderStatus.PAID,
        "txn_1",
    )
    assert world.platform.ledger == []  # the platform charged; the sandbox moved nothing


def test_one_platform_transaction_pays_one_order(world: Any) -> None:
    first = world.order(upto="pending_payment")
    events = world.flow.platform_events
    events.purchased(
        SYSTEM, platform="sandbox", transaction_id="txn_1", sku=first.sku, user_id=first.user_id
    )
    before = world.snapshot()
    again = events.purchased(
        SYSTEM, platform="sandbox", transaction_id="txn_1", sku=first.sku, user_id=first.user_id
    )
    assert again.id == first.id
    assert world.snapshot() == before


# -- queries -----------------------------------------------------------------------------------


@pytest.fixture
def many(world: Any) -> list[Any]:
    """37 orders of two buyers, two hours apart, in assorted states."""
    made = []
    buyers = [world.buyer, world.other_buyer]
    for n in range(37):
        world.advance(hours=2)
        upto = ["pending_payment", "paid", "completed"][n % 3]
        made.append(world.order(buyer=buyers[n % 2], upto=upto))
    return made


@pytest.mark.parametrize("limit", [1, 5, 20, 200])
def test_pages_cover_every_order_once_newest_first(world: Any, many: list[Any], limit: int) -> None:
    seen, cursor = [], None
    while True:
        page = world.flow.orders.query(world.agent, limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        seen += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [o.id for o in seen] == [o.id for o in reversed(many)]


def test_filter_by_user_status_and_time(world: Any, many: list[Any]) -> None:
    q = world.flow.orders.query
    mine = q(world.buyer, limit=200).items
    assert {o.user_id for o in mine} == {"u1"}
    assert len(mine) == 19
    done = q(world.agent, user_id="u2", status="completed", limit=200).items
    assert done and all(o.user_id == "u2" and o.status == "completed" for o in done)
    some = q(world.analyst, status=[OrderStatus.PAID, "pending_payment"], limit=200).items
    assert {o.status for o in some} == {"paid", "pending_payment"}
    since, until = many[10].created_at, many[20].created_at
    window = q(world.dev, since=since, until=until, limit=200).items
    assert [o.id for o in window] == [o.id for o in reversed(many[10:20])]


def test_an_empty_result_has_no_cursor(world: Any) -> None:
    page = world.flow.orders.query(world.agent, user_id="nobody")
    assert (page.items, page.next_cursor) == ([], None)
