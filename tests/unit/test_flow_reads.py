"""The composition root's own reads: audit trails and deadlines as each role may see them."""

from __future__ import annotations

from typing import Any

import pytest

from iap_flow import SYSTEM, PermissionDenied


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
