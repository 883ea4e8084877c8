"""A transaction is all or nothing on every store, however it ends: an error in the caller's
code after writes were sent (PostgreSQL sends them as they are queued) leaves none of them,
and a nested block rolled back leaves the outer block's writes to commit."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from iap_flow import Actor, ConcurrentModification, Flow, OrderStatus
from iap_flow.domain.models import AuditEvent

START = datetime(2026, 1, 1, tzinfo=UTC)
BUYER = Actor.buyer("u1")


class Stop(Exception):
    """The caller's own error, not the store's."""


def _event(order_id: str, name: str) -> AuditEvent:
    return AuditEvent("order", order_id, name, "x", "x", "dev", "developer", START)


def test_an_error_in_the_block_after_writes_leaves_none_of_them(flow: Flow) -> None:
    store = flow.store
    order = flow.orders.place(BUYER, "gems")
    paid = attrs.evolve(order, status=OrderStatus.PAID, version=order.version + 1)
    with pytest.raises(Stop), store.transaction() as tx:
        tx.add_audit(_event(order.id, "note"))
        tx.update_order(paid, expected_version=order.version)
        assert tx.get_order(order.id) == paid  # sent and seen inside the transaction
        raise Stop
    assert store.get_order(order.id) == order
    assert [e.event for e in store.history(order.id)] == ["place"]
    with store.transaction() as tx:  # the connection went back to the pool clean
        tx.add_audit(_event(order.id, "after"))
    assert [e.event for e in store.history(order.id)] == ["place", "after"]


def test_an_error_in_a_nested_block_rolls_back_the_whole_transaction(flow: Flow) -> None:
    store = flow.store
    order = flow.orders.place(BUYER, "gems")
    with pytest.raises(Stop), store.transaction() as outer:
        outer.add_audit(_event(order.id, "outer"))
        with store.transaction() as inner:
            inner.add_audit(_event(order.id, "inner"))
        raise Stop
    assert [e.event for e in store.history(order.id)] == ["place"]


def test_a_conflict_in_a_nested_block_keeps_the_outer_writes(flow: Flow) -> None:
    store = flow.store
    order = flow.orders.place(BUYER, "gems")
    stale = attrs.evolve(order, version=9)
    with store.transaction() as outer:
        with pytest.raises(ConcurrentModification), store.transaction() as inner:
            inner.add_audit(_event(order.id, "inner"))
            inner.update_order(stale, expected_version=8)
        outer.add_audit(_event(order.id, "outer"))
    assert [e.event for e in store.history(order.id)] == ["place", "outer"]
