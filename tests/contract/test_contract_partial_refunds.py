"""Partial refunds on every store: what a buyer asks for, what staff grant, what the platform
reports, and the money adding up. Any sequence of refunds of an order never exceeds what was
paid, and the order's refunded total is, to the cent, the sum of its refunds and of what the
sandbox paid out; the database itself refuses a total over what was paid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iap_flow import (
    SYSTEM,
    Actor,
    Flow,
    InvalidInput,
    ManualClock,
    Money,
    OrderStatus,
    RefundNotAllowed,
    RefundStatus,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.ports import PaymentKind
from iap_flow.testing import SandboxPlatform

RawSql = Callable[[str], list[tuple[object, ...]]]
PM = Actor("pm", "product_manager")
START = datetime(2026, 1, 1, tzinfo=UTC)
BUYER = Actor.buyer("u1")
LEAD = Actor.lead("lead_1")
PRICE = 999


@pytest.fixture
def sandbox() -> SandboxPlatform:
    return SandboxPlatform(instance="partial")


@pytest.fixture
def paying(store_url: str, sandbox: SandboxPlatform) -> Iterator[Flow]:
    """A flow on the store paying refunds out through the sandbox (its ledger is the money)."""
    clock = ManualClock(START)
    with open_flow(
        store_url, clock=clock, notifier=MemoryNotifier(), platforms=[sandbox], seed=3
    ) as flow:
        for sku, kind in (("pack", "consumable"), ("album", "non_consumable")):
            flow.catalogue.add(
                PM, sku=sku, title=sku, description="d", price=Money(PRICE, "USD"), kind=kind
            )
        yield flow


def bought(flow: Flow, sku: str = "pack") -> str:
    order = flow.orders.place(BUYER, sku)
    flow.orders.pay(BUYER, order.id, token="tok_approve")
    flow.orders.deliver(SYSTEM, order.id)
    return order.id


def paid_out(sandbox: SandboxPlatform, order_id: str) -> int:
    return sum(e.amount.amount for e in sandbox.ledger if e.kind is PaymentKind.REFUND and e.order_id == order_id)  # fmt: skip


def test_staff_grant_less_than_asked_and_the_rest_follows(
    paying: Flow, sandbox: SandboxPlatform
) -> None:
    order_id = bought(paying, "album")
    asked = paying.refunds.request(BUYER, order_id, reason="one track is broken")
    assert asked.amount == Money(PRICE, "USD")
    with pytest.raises(InvalidInput):
        paying.refunds.approve(LEAD, asked.id, amount=Money(PRICE + 1, "USD"))
    with pytest.raises(InvalidInput):
        paying.refunds.approve(LEAD, asked.id, amount=Money(0, "USD"))
    with pytest.raises(InvalidInput):
        paying.refunds.approve(LEAD, asked.id, amount=Money(100, "EUR"))
    granted = paying.refunds.approve(LEAD, asked.id, amount=Money(300, "USD"))
    assert (granted.status, granted.amount) == (RefundStatus.REFUNDED, Money(300, "USD"))
    assert paid_out(sandbox, order_id) == 300  # the platform was called with the grant
    order = paying.orders.get(SYSTEM, order_id)
    assert (order.status, order.refunded, order.refundable) == (
        OrderStatus.PARTIALLY_REFUNDED,
        Money(300, "USD"),
        Money(699, "USD"),
    )
    assert [e.sku for e in paying.entitlements.active(BUYER, "u1")] == ["album"]  # kept

    with pytest.raises(InvalidInput):  # no more than what remains
        paying.refunds.request(BUYER, order_id, reason="more", amount=Money(700, "USD"))
    second = paying.refunds.request(BUYER, order_id, reason="more", amount=Money(200, "USD"))
    paying.refunds.approve(LEAD, second.id)
    assert paying.orders.get(SYSTEM, order_id).refunded == Money(500, "USD")
    rest = paying.refunds.request(BUYER, order_id, reason="all of it after all")
    assert rest.amount == Money(499, "USD")  # a full refund after partial ones: the rest
    paying.refunds.approve(LEAD, rest.id)
    done = paying.orders.get(SYSTEM, order_id)
    assert (done.status, done.refunded) == (OrderStatus.REFUNDED, done.amount)
    assert paid_out(sandbox, order_id) == PRICE
    assert paying.entitlements.active(BUYER, "u1") == []  # the whole amount: access ends
    with pytest.raises(RefundNotAllowed):
        paying.refunds.request(BUYER, order_id, reason="again")


def test_a_platform_full_refund_after_a_partial_refunds_the_rest(paying: Flow) -> None:
    order_id = bought(paying)
    events = paying.platform_events
    part = events.refunded(
        SYSTEM, order_id, reason="console", amount=Money(250, "USD"), platform_refund_id="p-1"
    )
    assert part.amount == Money(250, "USD")
    again = events.refunded(
        SYSTEM, order_id, reason="console", amount=Money(250, "USD"), platform_refund_id="p-1"
    )  # reported again (another notification, the reconciliation): recorded once
    assert again.id == part.id
    assert paying.orders.get(SYSTEM, order_id).refunded == Money(250, "USD")
    rest = events.refunded(SYSTEM, order_id, reason="chargeback")
    assert rest.amount == Money(749, "USD")
    over = events.refunded(SYSTEM, order_id, reason="late report", amount=Money(5, "USD"))
    assert over.id == rest.id  # already refunded in full: nothing more
    assert paying.orders.get(SYSTEM, order_id).refunded == Money(PRICE, "USD")
    amounts = [r.amount.amount for r in paying.refunds.of_order(SYSTEM, order_id)]
    assert amounts == [250, 749]


def test_the_database_holds_the_refunded_total_within_what_was_paid(
    paying: Flow, raw_sql: RawSql
) -> None:
    order_id = bought(paying)
    paying.platform_events.refunded(SYSTEM, order_id, reason="x", amount=Money(400, "USD"))
    # the CHECK on the order's refunded total
    with pytest.raises(Exception, match="orders_refunded_within_paid"):
        raw_sql(f"UPDATE orders SET refunded_amount = amount + 1 WHERE id = '{order_id}'")
    with pytest.raises(Exception, match="orders_refunded_within_paid"):
        raw_sql(f"UPDATE orders SET refunded_amount = -1 WHERE id = '{order_id}'")
    # the trigger on completed refunds: a second one for more than remains
    asked = paying.refunds.request(BUYER, order_id, reason="y", amount=Money(500, "USD"))
    raw_sql(f"UPDATE refunds SET amount = 600 WHERE id = '{asked.id}'")
    with pytest.raises(Exception, match="refunds_within_paid"):
        raw_sql(f"UPDATE refunds SET status = 'refunded' WHERE id = '{asked.id}'")
    # through the store's own write (bypassing the services): a typed refusal
    order = paying.orders.get(SYSTEM, order_id)
    order.refunded_amount = PRICE + 1
    with pytest.raises(RefundNotAllowed), paying.store.transaction() as tx:
        tx.update_order(order, order.version)
    assert paying.orders.get(SYSTEM, order_id).refunded == Money(400, "USD")


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("ask"), st.integers(0, PRICE + 50), st.integers(0, PRICE + 50)),
        st.tuples(st.just("platform"), st.integers(-5, PRICE + 50), st.just(0)),
        st.tuples(st.just("platform_all"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_any_sequence_of_partial_refunds_adds_up_to_the_cent(
    paying: Flow, sandbox: SandboxPlatform, ops: list[tuple[str, int, int]]
) -> None:
    """Buyers ask for amounts (0: all that remains), staff grant less (0: as asked), the
    platform reports shares or refunds the rest, in any order and with bad amounts mixed in:
    what is refunded never exceeds what was paid, and the order's total is exactly the sum of
    its refunds (the sandbox paid out the ones staff granted)."""
    order_id = bought(paying)
    reported = 0
    for op, first, second in ops:
        before = paying.orders.get(SYSTEM, order_id).refunded_amount
        try:
            if op == "ask":
                amount = Money(first, "USD") if first else None
                asked = paying.refunds.request(BUYER, order_id, reason="r", amount=amount)
                grant = Money(second, "USD") if second else None
                paying.refunds.approve(LEAD, asked.id, amount=grant)
            elif op == "platform":
                amount = Money(first, "USD") if first > 0 else Money(0, "USD")
                paying.platform_events.refunded(SYSTEM, order_id, reason="p", amount=amount)
                reported += paying.orders.get(SYSTEM, order_id).refunded_amount - before
            else:
                paying.platform_events.refunded(SYSTEM, order_id, reason="all")
                reported += paying.orders.get(SYSTEM, order_id).refunded_amount - before
        except (InvalidInput, RefundNotAllowed):
            assert paying.orders.get(SYSTEM, order_id).refunded_amount == before
        order = paying.orders.get(SYSTEM, order_id)
        refunds = paying.refunds.of_order(SYSTEM, order_id)
        total = sum(r.amount.amount for r in refunds if r.status is RefundStatus.REFUNDED)
        assert 0 <= order.refunded_amount <= order.amount.amount
        assert order.refunded_amount == total == paid_out(sandbox, order_id) + reported
        expected = _state(order.refunded_amount, order.amount.amount)
        assert order.status is expected, (order.status, order.refunded_amount)
        for stuck in (r for r in refunds if r.status is RefundStatus.IN_REVIEW):
            paying.refunds.withdraw(BUYER, stuck.id)  # an ask left open (a bad grant)


def _state(refunded: int, paid: int) -> Any:
    if refunded == 0:
        return OrderStatus.DELIVERED
    return OrderStatus.REFUNDED if refunded == paid else OrderStatus.PARTIALLY_REFUNDED
