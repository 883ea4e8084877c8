"""The relays' envelope and per-subject ordering (pure logic; the relays themselves are tested
against real servers in tests/e2e/relays)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from iap_flow import IapFlowError, Notification
from iap_flow.adapters.relays.envelope import HeldBack, SubjectOrder, envelope, subject_of

AT = datetime(2026, 12, 1, tzinfo=UTC)


def note(i: int, **payload: str) -> Notification:
    return Notification("order.paid", "u_1", dict(payload), AT, id=i)


def test_subject_is_the_order_then_refund_then_ticket_then_recipient() -> None:
    assert subject_of(note(1, order_id="ord_1", refund_id="rfd_1")) == "ord_1"
    assert subject_of(note(1, refund_id="rfd_1")) == "rfd_1"
    assert subject_of(note(1, ticket_id="tkt_1")) == "tkt_1"
    assert subject_of(note(1)) == "u_1"


def test_envelope_carries_the_outbox_id_and_refuses_an_unsaved_notification() -> None:
    env = envelope(note(42, order_id="ord_9"))
    doc = json.loads(env.body)
    assert (env.id, doc["id"], doc["subject"], doc["audience"]) == (42, 42, "ord_9", "buyer")
    with pytest.raises(IapFlowError, match="no outbox id"):
        envelope(Notification("t", "u", {}, AT))


def test_a_failed_message_holds_later_ones_about_its_subject_until_it_goes() -> None:
    now = [0.0]
    order = SubjectOrder(lapse=60, clock=lambda: now[0])
    first, second, other = (
        envelope(note(1, order_id="A")),
        envelope(note(2, order_id="A")),
        envelope(note(3, order_id="B")),
    )
    order.failed(first)
    with pytest.raises(HeldBack, match="waits for 1"):
        order.check(second)
    order.check(other)  # another subject is not held
    order.check(first)  # the failed one itself may go again
    order.sent(first)
    order.check(second)
    order.failed(second)
    now[0] = 61.0  # the hold lapses (the message may be another process's now)
    order.check(envelope(note(4, order_id="A")))
