"""The outbox: notifications are written with the change that causes them and delivered at
least once: a notifier that fails, or a crash between the commit and the send, loses none."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from iap_flow import SYSTEM, Notification, OrderStatus
from iap_flow.adapters.notifiers import JsonLinesNotifier, MemoryNotifier


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


class FlakyNotifier(MemoryNotifier):
    """Raises ``error`` on the sends numbered in ``fail_on`` (1 = the first), else works."""

    def __init__(self, fail_on: set[int], error: BaseException) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.error = error
        self.tries = 0

    def send(self, notification: Notification) -> None:
        self.tries += 1
        if self.tries in self.fail_on:
            raise self.error
        super().send(notification)


def test_inline_delivery_right_after_the_commit(world: Any) -> None:
    order = world.order()
    [row] = world.outbox()
    assert row["delivered_at"] is not None and row["attempts"] == 1
    [note] = world.notifier.sent
    assert note.id == row["id"]
    assert (note.topic, note.payload["order_id"], note.created_at) == (
        "order.paid",
        order.id,
        world.clock.now(),
    )
    assert world.flow.deliver_notifications() == 0  # nothing left


def test_a_failing_notifier_keeps_the_notification_for_the_next_delivery(make_world: Any) -> None:
    notifier = FlakyNotifier({1}, ConnectionError("sink down"))
    w = make_world(notifier=notifier)
    order = w.order()  # the change commits although the notification could not be sent
    assert w.flow.orders.get(SYSTEM, order.id).status is OrderStatus.PAID
    [row] = w.outbox(pending=True)
    assert (row["attempts"], row["last_error"]) == (1, "ConnectionError: sink down")
    assert notifier.sent == []
    assert w.flow.deliver_notifications() == 1
    assert [n.payload["order_id"] for n in notifier.sent] == [order.id]
    assert w.outbox(pending=True) == []
    assert w.flow.deliver_notifications() == 0


def test_the_sweep_delivers_what_is_pending(make_world: Any) -> None:
    notifier = FlakyNotifier({1, 2}, RuntimeError("boom"))
    w = make_world(notifier=notifier)
    w.order()
    w.order()
    assert len(w.outbox(pending=True)) == 2
    assert w.flow.sweep().delivered == 2
    assert len(notifier.sent) == 2


def test_a_crash_between_commit_and_send_loses_nothing(make_world: Any) -> None:
    notifier = FlakyNotifier({1}, Crash())
    w = make_world(notifier=notifier)
    order = w.order(upto="pending_payment")
    with pytest.raises(Crash):
        w.flow.orders.pay(w.buyer, order.id, token="tok_approve")
    assert w.flow.orders.get(SYSTEM, order.id).status is OrderStatus.PAID  # committed
    assert len(w.outbox(pending=True)) == 1
    # the dying process had claimed it: others leave it alone until the claim lapses
    assert w.flow.deliver_notifications() == 0
    w.advance(seconds=61)
    assert w.flow.deliver_notifications() == 1
    assert [n.topic for n in notifier.sent] == ["order.paid"]
    assert w.outbox(pending=True) == []


def test_a_crash_mid_batch_resends_the_unconfirmed_at_least_once(make_world: Any) -> None:
    notifier = FlakyNotifier({2}, Crash())  # the second send of the batch dies
    w = make_world(notifier=notifier, deliver_inline=False)
    for _ in range(3):
        w.order()
    with pytest.raises(Crash):
        w.flow.deliver_notifications()
    assert len(notifier.sent) == 1
    w.advance(seconds=61)
    # what was sent is marked before the crash propagates: only the one in flight and the
    # rest go out again
    assert w.flow.deliver_notifications() == 2
    ids = [n.id for n in notifier.sent]
    assert sorted(ids) == [r["id"] for r in w.outbox()], "none sent twice"
    assert w.outbox(pending=True) == []


def test_without_inline_delivery_notifications_wait_in_order(make_world: Any) -> None:
    w = make_world(deliver_inline=False)
    first, second = w.order(), w.order()
    assert w.notifier.sent == []
    assert w.flow.deliver_notifications() == 2
    assert [n.payload["order_id"] for n in w.notifier.sent] == [first.id, second.id]


def test_a_rolled_back_command_leaves_no_notification(world: Any) -> None:
    refund = world.refund()
    world.flow.refunds.reject(world.agent, refund.id, reason="not eligible")
    before = world.count("outbox")
    with pytest.raises(Exception, match="already decided"):
        world.flow.refunds.reject(world.lead, refund.id, reason="not eligible")
    assert world.count("outbox") == before


def test_json_lines_to_a_file_and_to_a_stream(tmp_path: Path, make_world: Any) -> None:
    path = tmp_path / "notes.jsonl"
    w = make_world(notifier=JsonLinesNotifier(path))
    order = w.order()
    w.refund()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["topic"] for line in lines] == [
        "order.paid",
        "order.paid",
        "refund.review_requested",
    ]
    assert lines[0]["payload"]["order_id"] == order.id
    assert lines[0]["recipient"] == "u1"
    stream = io.StringIO()
    note = Notification("t", "r", {"text": "退款"}, w.clock.now() + timedelta(0), id=9)
    JsonLinesNotifier(stream).send(note)
    assert json.loads(stream.getvalue()) == {
        "id": 9,
        "topic": "t",
        "recipient": "r",
        "payload": {"text": "退款"},
        "created_at": w.clock.now().isoformat(),
    }
    assert "退款" in stream.getvalue()  # readable, not escaped
