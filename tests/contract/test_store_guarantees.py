"""Store guarantees behind "money moves once", the same on every store: opaque cursors,
text refused alike, outbox claims renewed and marked as they are sent, delivery marks that
never raise, opening without the write lock, typed faults and store entry points."""

from __future__ import annotations

import base64
import sqlite3
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    Audience,
    Flow,
    InvalidInput,
    ManualClock,
    Notification,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.delivery import send_claimed
from iap_flow.domain.errors import SchemaTooNew
from iap_flow.ports import OrderQuery

RawSql = Callable[[str], list[tuple[object, ...]]]

BUYER = Actor.buyer("u1")
DEV = Actor("dev", "developer")
EVERYONE = tuple(Audience)

GARBAGE_CURSORS = [
    "",
    "garbage",
    "2026-01-01T00:00:00.000000+00:00|ord_1",  # the old, readable form
    "c1.",
    "c1.!!!!",
    "c1." + base64.urlsafe_b64encode(b"[1, 2]").decode(),
    "c1." + base64.urlsafe_b64encode(b'["not a time", "ord_1"]').decode(),
    "c1." + base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "ord_1"]').decode(),  # naive
    "c1." + base64.urlsafe_b64encode(b'["2026-01-01T00:00:00.000000+00:00", ""]').decode(),
    "c1." + base64.urlsafe_b64encode(b'["2026-01-01T00:00:00.000000+00:00", "\\u0000"]').decode(),
    "c1." + "A" * 500,
]


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS)
def test_a_garbage_cursor_is_refused(flow: Flow, cursor: str) -> None:
    flow.orders.place(BUYER, "gems")
    with pytest.raises(InvalidInput) as refused:
        flow.orders.query(DEV, cursor=cursor)
    assert refused.value.field == "cursor"
    with pytest.raises(InvalidInput):
        flow.store.query_orders(OrderQuery(cursor=cursor))


def test_cursors_are_opaque_and_page_through_everything(flow: Flow, clock: ManualClock) -> None:
    placed = []
    for _ in range(7):
        placed.append(flow.orders.place(BUYER, "gems").id)
        if len(placed) % 3:  # some share a creation time: the id breaks the tie
            clock.advance(timedelta(seconds=1))
    seen: list[str] = []
    cursor = None
    while True:
        page = flow.orders.query(DEV, limit=3, cursor=cursor)
        seen.extend(o.id for o in page.items)
        if page.next_cursor is None:
            break
        assert "|" not in page.next_cursor and "ord_" not in page.next_cursor
        cursor = page.next_cursor
    assert seen == sorted(placed, key=lambda i: (flow.orders.get(DEV, i).created_at, i))[::-1]


@pytest.mark.parametrize("bad", ["a\x00b", "lone \ud800 surrogate", "\udfff"])
def test_nul_and_lone_surrogates_are_refused_alike_and_write_nothing(
    flow: Flow, raw_sql: RawSql, bad: str
) -> None:
    before = raw_sql("SELECT (SELECT COUNT(*) FROM tickets), (SELECT COUNT(*) FROM audit_events)")
    with pytest.raises(InvalidInput):
        flow.feedback.submit(BUYER, rating=3, body=bad)
    with pytest.raises(InvalidInput):
        flow.catalogue.add(
            Actor("pm", "product_manager"),
            sku="x1",
            title=bad,
            description="d",
            price=flow.catalogue.get("gems").price,
            kind="consumable",
        )
    with pytest.raises(InvalidInput):
        flow.store.get_order(bad)
    after = raw_sql("SELECT (SELECT COUNT(*) FROM tickets), (SELECT COUNT(*) FROM audit_events)")
    assert after == before


class SlowNotifier:
    """Each send takes ``seconds`` on the manual clock; ``die_after`` sends, the process
    "dies" (a BaseException nothing catches)."""

    def __init__(self, clock: ManualClock, seconds: int, die_after: int | None = None) -> None:
        self.clock, self.seconds, self.die_after = clock, seconds, die_after
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        if self.die_after is not None and len(self.sent) >= self.die_after:
            raise SystemExit("killed")
        self.clock.advance(timedelta(seconds=self.seconds))
        self.sent.append(notification)


def _tickets(flow: Flow, n: int) -> None:
    for i in range(n):
        flow.feedback.submit(BUYER, rating=3, body=f"note {i}")


def test_a_batch_longer_than_its_lease_is_renewed_and_sent_once(
    store_url: str, clock: ManualClock
) -> None:
    """Five notifications at 20 s each take 100 s under a 60 s lease: the worker renews it,
    so a second worker that looks in the middle finds nothing to take."""
    with (
        open_flow(store_url, clock=clock, deliver_inline=False) as first,
        open_flow(store_url, clock=clock, deliver_inline=False) as second,
    ):
        _tickets(first, 5)
        batch = first.store.claim_notifications(10, clock.now(), 60, EVERYONE)
        assert len(batch) == 5
        slow = SlowNotifier(clock, 20)
        stolen: list[Notification] = []

        class Peeking(SlowNotifier):
            def send(self, notification: Notification) -> None:
                slow.send(notification)
                stolen.extend(second.store.claim_notifications(10, clock.now(), 60, EVERYONE))

        sent = send_claimed(first.store, Peeking(clock, 0), batch, clock, 60)
        assert sent == 5 and stolen == []
        assert len({n.id for n in slow.sent}) == 5
        assert second.store.claim_notifications(10, clock.now(), 60, EVERYONE) == []


def test_a_worker_that_dies_mid_batch_leaves_only_the_unsent(
    store_url: str, clock: ManualClock
) -> None:
    with (
        open_flow(store_url, clock=clock, deliver_inline=False) as first,
        open_flow(store_url, clock=clock, deliver_inline=False) as second,
    ):
        _tickets(first, 5)
        batch = first.store.claim_notifications(10, clock.now(), 60, EVERYONE)
        dying = SlowNotifier(clock, 1, die_after=2)
        with pytest.raises(SystemExit):
            send_claimed(first.store, dying, batch, clock, 60)
        clock.advance(timedelta(seconds=61))
        rest = second.store.claim_notifications(10, clock.now(), 60, EVERYONE)
        assert [n.id for n in rest] == [n.id for n in batch[2:]]


def test_a_lease_taken_over_is_not_renewed_by_its_old_holder(
    store_url: str, clock: ManualClock
) -> None:
    with (
        open_flow(store_url, clock=clock, deliver_inline=False) as first,
        open_flow(store_url, clock=clock, deliver_inline=False) as second,
    ):
        _tickets(first, 2)
        mine = [n.id for n in first.store.claim_notifications(10, clock.now(), 60, EVERYONE)]
        assert first.store.renew_claims(mine, clock.now(), 60) == mine  # type: ignore[arg-type]
        clock.advance(timedelta(seconds=61))
        taken = [n.id for n in second.store.claim_notifications(1, clock.now(), 60, EVERYONE)]
        assert first.store.renew_claims(mine, clock.now(), 60) == [mine[1]]  # type: ignore[arg-type]
        assert second.store.renew_claims(taken, clock.now(), 60) == taken  # type: ignore[arg-type]
        assert second.store.mark_delivered(taken, clock.now()) is True  # type: ignore[arg-type]
        assert second.store.renew_claims(taken, clock.now(), 60) == []  # type: ignore[arg-type]


def test_inline_delivery_marks_once(store_url: str, clock: ManualClock) -> None:
    sink = MemoryNotifier()
    with open_flow(store_url, clock=clock, notifier=sink) as flow:
        flow.feedback.submit(BUYER, rating=3, body="hello")
        assert len(sink.sent) == 1
        assert flow.deliver_notifications(SYSTEM) == 0
        clock.advance(timedelta(seconds=120))
        assert flow.deliver_notifications(SYSTEM) == 0
        assert len(sink.sent) == 1


def test_a_schema_newer_than_the_code_is_refused_typed(
    store_url: str, flow: Flow, raw_sql: RawSql
) -> None:
    version = flow.store.schema_version  # type: ignore[attr-defined]
    flow.close()
    raw_sql("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(SchemaTooNew) as refused:
        open_flow(store_url)
    assert (refused.value.found, refused.value.supported) == (999, version)
    assert "upgrade iap-flow" in str(refused.value)


def test_stores_are_found_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package adds a store by declaring an ``iap_flow.stores`` entry point."""
    dist = tmp_path / "memo_store-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: memo-store\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[iap_flow.stores]\nmemo = iap_flow.adapters.sqlite_store:SQLiteStore\n"
    )
    with pytest.raises(InvalidInput, match="unknown store scheme 'memo'"):
        open_flow("memo://")
    monkeypatch.syspath_prepend(str(tmp_path))
    with open_flow("memo://") as flow:
        assert type(flow.store).__name__ == "SQLiteStore"


def test_sqlite_opens_without_the_write_lock_when_up_to_date(tmp_path: Path) -> None:
    """A writer holding the lock (a long import, a stuck process) does not stop others from
    opening the store and reading it."""
    from iap_flow.adapters.sqlite_store import SQLiteStore

    path = tmp_path / "flow.db"
    open_flow(f"sqlite:///{path}").close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = SQLiteStore(str(path), busy_timeout_ms=50)
        assert store.get_order("ord_x") is None
        store.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_sqlite_delivery_marks_after_commit_never_raise(tmp_path: Path) -> None:
    """The order is paid and its confirmation sent; a writer holding the lock while the
    delivery is recorded must not turn that success into "database is locked"."""
    from iap_flow.adapters.sqlite_store import SQLiteStore

    path = tmp_path / "flow.db"
    with open_flow(f"sqlite:///{path}", deliver_inline=False) as flow:
        flow.feedback.submit(BUYER, rating=3, body="hi")
    store = SQLiteStore(str(path), busy_timeout_ms=50)
    [note] = store.claim_notifications(5, flow.clock.now(), 60, EVERYONE)
    assert note.id is not None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert store.mark_delivered([note.id], flow.clock.now()) is False
        assert store.mark_failed(note.id, "x") is False
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.mark_delivered([note.id], flow.clock.now()) is True
    store.close()


def test_threads_sharing_a_store_hold_their_own_claims(store_url: str, clock: ManualClock) -> None:
    with open_flow(store_url, clock=clock, deliver_inline=False) as flow:
        _tickets(flow, 2)
        got: dict[str, list[int]] = {}

        def claim(name: str) -> None:
            got[name] = [
                n.id or 0 for n in flow.store.claim_notifications(1, clock.now(), 60, EVERYONE)
            ]

        for name in ("a", "b"):
            t = threading.Thread(target=claim, args=(name,))
            t.start()
            t.join()
        assert flow.store.renew_claims(got["a"] + got["b"], clock.now(), 60) == []  # type: ignore[attr-defined]
