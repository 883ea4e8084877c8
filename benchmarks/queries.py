"""Reads and the sweep at scale, through the SDK on SQLite.

1. The 20 newest orders of one user filtered by status, at 1,000,000 orders (target p50 <= 1 ms),
   for a typical buyer and for a heavy one; beside the raw sqlite3 query that returns the same rows.
2. A sweep with 1,000 due among 1,000,000 deadlines (target <= 1.1x raw sqlite3 doing the same
   writes): the due ones are unpaid orders that expire (state change + audit event + buyer
   notification each). Rounds alternate raw and SDK on the same file, put back between them
   (the orders pending again, the new rows deleted, the WAL checkpointed).

    python benchmarks/queries.py [N_ORDERS]

Prints the machine, N, rounds and the ratios.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from iap_flow import SYSTEM, ManualClock, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sqlite_store import SQLiteStore
from iap_flow.codec import ORDER_COLUMNS, ts

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # the sibling module, found through sys.path

START = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = ["completed"] * 6 + ["delivered", "refunded", "payment_failed", "cancelled"]
DUE = 1_000
ROUNDS = 5
SWEEP_TARGET = 1.1


def build(path: Path, n: int) -> None:
    """n orders over 10,000 users (user u0 is heavy: 2 % of all orders) and n deadlines."""
    SQLiteStore(str(path)).close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(1)
    marks = ", ".join("?" * len(ORDER_COLUMNS))
    insert = f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({marks})"
    conn.execute("BEGIN")
    rows = []
    for i in range(n):
        user = "u0" if rng.random() < 0.02 else f"u{rng.randrange(1, 10_000)}"
        created = ts(START + timedelta(seconds=i * 30))
        due_order = i >= n - DUE
        status = "pending_payment" if due_order else rng.choice(STATUSES)
        rows.append(
            (
                f"ord_{i:020d}",
                user,
                "gems",
                "Gems",
                "consumable",
                None,
                199,
                "USD",
                "sandbox",
                None,
                None,
                status,
                1,
                created,
                created,
                None,
                0,
            )
        )
        if len(rows) == 10_000:
            conn.executemany(insert, rows)
            rows.clear()
    conn.executemany(insert, rows)
    # n deadlines: all but DUE far in the future; the DUE ones are those unpaid orders' expiry.
    far = ts(START + timedelta(days=3650))
    conn.executemany(
        "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state) VALUES (?, ?, ?, NULL, 'pending')",
        (
            (
                "order_payment",
                f"ord_{i:020d}",
                far if i < n - DUE else ts(START),
            )
            for i in range(n)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def time_query(flow, user: str, rounds: int = 300) -> list[float]:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        page = flow.orders.query(SYSTEM, user_id=user, status="completed", limit=20)
        samples.append(time.perf_counter() - t)
        assert len(page.items) == 20
    return samples


def time_raw(path: Path, user: str, rounds: int = 300) -> list[float]:
    conn = sqlite3.connect(str(path))
    sql = (
        f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE user_id = ? AND status = ?"
        " ORDER BY created_at DESC, id DESC LIMIT 21"
    )
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        rows = conn.execute(sql, (user, "completed")).fetchall()
        samples.append(time.perf_counter() - t)
        assert len(rows) == 21
    conn.close()
    return samples


def raw_sweep(path: Path, now: datetime) -> int:
    """The sweep's writes with plain sqlite3, one transaction: the floor for the same rows."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    for pragma in (
        "journal_mode = WAL",
        "synchronous = NORMAL",
        "cache_size = -65536",
        "mmap_size = 268435456",
    ):
        conn.execute(f"PRAGMA {pragma}")
    t, lease = ts(now), ts(now + timedelta(seconds=60))
    x = conn.execute
    conn.execute("BEGIN IMMEDIATE")
    due = x(
        "SELECT id, subject_id FROM deadlines WHERE state IN ('pending', 'reminded')"
        " AND due_at <= ? ORDER BY due_at LIMIT 1000",
        (t,),
    ).fetchall()
    outbox = []
    for deadline_id, order_id in due:
        user, version = x(
            "SELECT user_id, version FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        x(
            "UPDATE orders SET status = 'expired', version = ?, updated_at = ? WHERE id = ? AND version = ?",
            (version + 1, t, order_id, version),
        )
        x(
            "INSERT INTO audit_events (aggregate, aggregate_id, event, from_state, to_state, actor_id,"
            " role, at, data) VALUES ('order', ?, 'expire', 'pending_payment', 'expired', 'system',"
            " 'system', ?, NULL)",
            (order_id, t),
        )
        cur = x(
            "INSERT INTO outbox (topic, recipient, payload, created_at, claimed_until)"
            " VALUES ('order.expired', ?, ?, ?, ?)",
            (user, f'{{"order_id": "{order_id}"}}', t, lease),
        )
        outbox.append((t, cur.lastrowid))
        x("UPDATE deadlines SET state = 'fired' WHERE id = ?", (deadline_id,))
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?", outbox
    )
    conn.execute("COMMIT")
    conn.close()
    return len(due)


def ms(samples: list[float], q: float) -> float:
    return (
        statistics.quantiles(samples, n=100)[int(q) - 1] * 1000 if q < 100 else max(samples) * 1000
    )


def reset(path: Path) -> None:
    """Put the file back as built: the expired orders pending again, the sweep's rows gone."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    t = ts(START)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE orders SET status = 'pending_payment', version = 1, updated_at = created_at"
        " WHERE id IN (SELECT subject_id FROM deadlines WHERE due_at <= ?)",
        (t,),
    )
    conn.execute("UPDATE deadlines SET state = 'pending' WHERE due_at <= ?", (t,))
    conn.execute("DELETE FROM audit_events")
    conn.execute("DELETE FROM outbox")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def sdk_sweep(path: Path, clock: ManualClock) -> float:
    """Seconds for one sweep through the SDK (the flow opened before the clock starts)."""
    flow = open_flow(f"sqlite:///{path}", clock=clock, notifier=MemoryNotifier())
    t = time.perf_counter()
    result = flow.sweep(SYSTEM)
    elapsed = time.perf_counter() - t
    assert result.expired == DUE, result
    flow.close()
    return elapsed


def timed_raw_sweep(path: Path, now: datetime) -> float:
    t = time.perf_counter()
    assert raw_sweep(path, now) == DUE
    return time.perf_counter() - t


def main() -> list[tuple[str, str, str]]:
    """Runs and prints the benchmark; returns its README table rows."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(describe())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        t = time.perf_counter()
        build(path, n)
        print(f"built N={n:,} orders and {n:,} deadlines in {time.perf_counter() - t:.1f} s")
        clock = ManualClock(START + timedelta(days=3000))
        flow = open_flow(f"sqlite:///{path}", clock=clock, notifier=MemoryNotifier())
        for label, user in (("typical buyer", "u4242"), ("heavy buyer (2% of orders)", "u0")):
            sdk = time_query(flow, user)
            raw = time_raw(path, user)
            ratio = statistics.median(sdk) / statistics.median(raw)
            print(
                f"20 newest completed orders, {label}, 300 rounds: SDK p50 {ms(sdk, 50):.3f} ms"
                f" p99 {ms(sdk, 99):.3f} ms | raw sqlite3 p50 {ms(raw, 50):.3f} ms"
                f" | ratio {ratio:.2f}x (target p50 <= 1 ms)"
            )
            rows.append((label, sdk, raw))
        flow.close()
        reset(path)
        sdk_times, raw_times = [], []
        for r in range(ROUNDS):
            for side in ("raw", "sdk") if r % 2 == 0 else ("sdk", "raw"):
                if side == "raw":
                    raw_times.append(timed_raw_sweep(path, clock.now()))
                else:
                    sdk_times.append(sdk_sweep(path, clock))
                reset(path)
        s, w = statistics.median(sdk_times) * 1000, statistics.median(raw_times) * 1000
        print(
            f"sweep: {DUE} expired among N={n:,} deadlines, median of {ROUNDS} rounds: SDK"
            f" {s:.1f} ms | raw sqlite3, same writes, {w:.1f} ms | ratio {s / w:.2f}x"
            f" (target <= {SWEEP_TARGET}x; includes the buyers' notifications)"
        )
        flow = open_flow(f"sqlite:///{path}", clock=clock, notifier=MemoryNotifier())
        flow.sweep(SYSTEM)
        t = time.perf_counter()
        again = flow.sweep(SYSTEM)
        print(f"sweep again: {again.expired} expired in {(time.perf_counter() - t) * 1000:.1f} ms")
        flow.close()
    (_, typical, typical_raw), (_, heavy, _) = rows
    return [
        (
            f"a user's 20 newest orders by status at {n:,} orders (`queries.py`)",
            "p50 <= 1 ms",
            f"**p50 {ms(typical, 50):.2f} ms** (heavy buyer {ms(heavy, 50):.2f} ms), p99"
            f" {ms(typical, 99):.2f} ms (raw sqlite3 {ms(typical_raw, 50):.2f} ms)",
        ),
        (
            f"sweep with 1,000 due among {n:,} deadlines, SQLite (`queries.py`)",
            f"<= {SWEEP_TARGET}x raw",
            f"**{s / w:.2f}x** raw sqlite3 doing the same writes ({s:.0f} ms against {w:.0f} ms)",
        ),
    ]


if __name__ == "__main__":
    main()
