"""The composition root's own reads: audit trails and deadlines as each role may see them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from iap_flow import SYSTEM, Actor, InvalidInput, PermissionDenied


def test_a_buyer_reads_their_own_orders_trail_and_no_one_elses(world: Any) -> None:
    mine = world.order(upto="pending_payment")
    assert [e.event for e in world.flow.history(world.buyer, mine.id)] == ["place"]
    assert world.flow.pending_deadlines(world.buyer, mine.id)
    with pytest.raises(PermissionDenied):
        world.flow.history(world.other_buyer, mine.id)
    with pytest.raises(PermissionDenied):
        world.flow.pending_deadlines(world.other_buyer, mine.id)
    with pytest.raises(PermissionDenied):  # a product's trail is staff's
        world.flow.history(world.buyer, mine.sku)


def test_an_inbound_event_is_recorded_once_with_what_it_did(world: Any) -> None:
    flow = world.flow
    assert flow.event_result(SYSTEM, "test", "evt-1") is None
    assert flow.record_event(SYSTEM, "test", "evt-1", {"outcome": "paid"}) is True
    assert flow.record_event(SYSTEM, "test", "evt-1", {"outcome": "other"}) is False
    assert flow.event_result(SYSTEM, "test", "evt-1") == {"outcome": "paid"}
    with pytest.raises(PermissionDenied):
        flow.record_event(world.buyer, "test", "evt-2", {})


def test_on_call_reads_are_staffs_and_the_outbox_is_no_report(world: Any) -> None:
    flow = world.flow
    order = flow.orders.place(world.buyer, "gems")
    assert [d.subject_id for d in flow.deadlines_due(SYSTEM, within=timedelta(days=1))] == [
        order.id
    ]
    assert flow.deadlines_due(SYSTEM) == []  # none is overdue yet
    backlog = flow.outbox_backlog(SYSTEM)
    assert backlog.pending == len(flow.outbox_pending(SYSTEM)) and backlog.failing == 0
    for read in (flow.outbox_backlog, flow.deadlines_due, flow.outbox_pending):
        with pytest.raises(PermissionDenied):
            read(world.buyer)
    analyst = Actor("da_1", "data_analyst")
    assert flow.report_rows(analyst, "orders_by_status", {"since": None, "until": None}) == [
        {"status": "pending_payment", "n": 1}
    ]
    with pytest.raises(InvalidInput):
        flow.report_rows(analyst, "outbox_pending", {"after": 0, "limit": 10})
