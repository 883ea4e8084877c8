"""Notifications through the public API: a batch that outlives its lease is not delivered
again by a second deliverer, and a deliverer that dies mid-batch leaves only what it had not
sent (each row is marked as it is sent). Two flows on one store, one shared manual clock,
so the 60 s lease runs out in the middle of a batch deterministically."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from iap_flow import SYSTEM, Actor, ManualClock, Notification, open_flow

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BUYER = Actor.buyer("u1")


class Slow:
    """Each send takes 20 s of the shared clock; while the first flow sends, the second one
    runs its own delivery (another worker coming by)."""

    def __init__(
        self, clock: ManualClock, sent: Counter[int], die_after: int | None = None
    ) -> None:
        self.clock, self.sent, self.die_after = clock, sent, die_after
        self.other: object = None
        self.count = 0

    def send(self, notification: Notification) -> None:
        if self.die_after is not None and self.count >= self.die_after:
            raise SystemExit("killed mid-batch")
        self.count += 1
        self.clock.advance(timedelta(seconds=20))
        assert notification.id is not None
        self.sent[notification.id] += 1
        if self.other is not None:
            self.other.deliver_notifications(SYSTEM)  # type: ignore[attr-defined]


class Counting:
    def __init__(self, sent: Counter[int]) -> None:
        self.sent = sent

    def send(self, notification: Notification) -> None:
        assert notification.id is not None
        self.sent[notification.id] += 1


def test_a_batch_longer_than_its_lease_is_delivered_once(store_url: str) -> None:
    clock, sent = ManualClock(T0), Counter[int]()
    slow = Slow(clock, sent)
    with (
        open_flow(store_url, clock=clock, notifier=slow, deliver_inline=False) as first,
        open_flow(store_url, clock=clock, notifier=Counting(sent), deliver_inline=False) as second,
    ):
        for i in range(6):
            first.feedback.submit(BUYER, rating=3, body=f"note {i}")
        slow.other = second
        first.deliver_notifications(SYSTEM)  # 6 x 20 s under a 60 s lease
        slow.other = None
        second.deliver_notifications(SYSTEM)
    assert len(sent) == 6
    assert [n for n in sent.values() if n > 1] == [], f"delivered twice: {dict(sent)}"


def test_a_deliverer_killed_mid_batch_leaves_only_the_unsent(store_url: str) -> None:
    clock, sent = ManualClock(T0), Counter[int]()
    with (
        open_flow(
            store_url, clock=clock, notifier=Slow(clock, sent, die_after=2), deliver_inline=False
        ) as dying,
        open_flow(store_url, clock=clock, notifier=Counting(sent), deliver_inline=False) as second,
    ):
        for i in range(5):
            dying.feedback.submit(BUYER, rating=3, body=f"note {i}")
        with pytest.raises(SystemExit):
            dying.deliver_notifications(SYSTEM)
        clock.advance(timedelta(minutes=2))  # its lease is over
        second.deliver_notifications(SYSTEM)
    assert len(sent) == 5
    assert [n for n in sent.values() if n > 1] == [], f"sent again after the crash: {dict(sent)}"
