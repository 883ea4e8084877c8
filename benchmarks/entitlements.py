"""The entitlement check for one buyer, as an app backend asks it on every request.

1,000,000 orders and 100,000 subscriptions over 100,000 buyers on SQLite (generated with
executemany, not through the API). ``flow.entitlements.active(actor, user_id)`` is timed for
random buyers beside the raw sqlite3 doing the same lookup on its own connection (the same
two indexed queries and the same rule: non-consumables held, consumables counted,
subscriptions until their period or grace end). Target: p50 <= 0.1 ms and <= 2x raw.

    python benchmarks/entitlements.py [N_ORDERS] [N_SUBSCRIPTIONS]
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

from iap_flow import SYSTEM, Actor, ManualClock, open_flow
from iap_flow.adapters import subscription_rows as rows
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sqlite_store import SQLiteStore
from iap_flow.codec import ORDER_COLUMNS, ts

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START + timedelta(days=400)
USERS = 100_000
ORDER_STATUSES = ["completed"] * 5 + ["delivered", "paid", "refunded", "payment_failed"]
SUB_STATUSES = ["active"] * 5 + ["cancelled", "in_grace_period", "on_hold", "expired", "revoked"]
KINDS = [("gems", "consumable")] * 6 + [("no_ads", "non_consumable"), ("club", "subscription")]


def build(path: Path, n_orders: int, n_subs: int) -> None:
    SQLiteStore(str(path)).close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(12)
    marks = ", ".join("?" * len(ORDER_COLUMNS))
    insert = f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({marks})"
    conn.execute("BEGIN")
    batch = []
    for i in range(n_orders):
        sku, kind = rng.choice(KINDS)
        at = ts(START + timedelta(seconds=i * 30))
        status = rng.choice(ORDER_STATUSES)
        paid = None if status == "payment_failed" else at
        batch.append(
            (
                f"ord_{i:020d}",
                f"u{rng.randrange(USERS)}",
                sku,
                sku,
                kind,
                "month" if kind == "subscription" else None,
                199,
                "USD",
                "sandbox",
                None,
                None,
                status,
                1,
                at,
                at,
                paid,
                0,
            )
        )
        if len(batch) == 20_000:
            conn.executemany(insert, batch)
            batch.clear()
    conn.executemany(insert, batch)
    subs = []
    for i in range(n_subs):
        end = NOW + timedelta(days=rng.randrange(-60, 30))
        status = rng.choice(SUB_STATUSES)
        grace = ts(end + timedelta(days=7)) if status == "in_grace_period" else None
        created = ts(START)
        subs.append(
            (
                f"sub_{i:020d}",
                f"u{i % USERS}",
                "club",
                "sandbox",
                status,
                f"ord_sub_{i}",
                f"ord_sub_{i}",
                ts(end - timedelta(days=30)),
                ts(end),
                grace,
                None,
                1,
                1,
                created,
                created,
            )
        )
    conn.executemany(rows.INSERT, subs)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def raw_lookup(conn: sqlite3.Connection, user: str, now: str) -> list[tuple[str, object]]:
    """The same lookup and rule by hand: what a team writing its own SQL would do."""
    out: list[tuple[str, object]] = []
    units: dict[str, int] = {}
    for _, sku, kind, status in conn.execute(rows.HELD_NOW, (user,)):
        if kind == "non_consumable":
            out.append((sku, None))
        elif status != "paid":
            units[sku] = units.get(sku, 0) + 1
    out.extend(units.items())
    for _, sku, status, _, end, grace in conn.execute(rows.SUBSCRIPTIONS_NOW, (user,)):
        until = grace if status == "in_grace_period" else end
        if status in ("active", "cancelled", "in_grace_period") and now < until:
            out.append((sku, until))
    return out


def p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def main() -> None:
    n_orders = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_subs = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        t = time.perf_counter()
        build(path, n_orders, n_subs)
        print(
            f"built {n_orders:,} orders, {n_subs:,} subscriptions in {time.perf_counter() - t:.1f} s"
        )
        rng = random.Random(3)
        users = [f"u{rng.randrange(USERS)}" for _ in range(5_000)]
        flow = open_flow(f"sqlite:///{path}", clock=ManualClock(NOW), notifier=MemoryNotifier())
        raw = sqlite3.connect(str(path))
        raw.execute("PRAGMA cache_size = -65536")
        now = ts(NOW)
        staff = Actor.agent("bench")
        for user in users[:500]:  # warm both caches alike
            flow.entitlements.active(staff, user)
            raw_lookup(raw, user, now)
        sdk: list[float] = []
        manual: list[float] = []
        found = 0
        for user in users:  # interleaved, so load on the machine hits both alike
            t = time.perf_counter()
            got = flow.entitlements.active(staff, user)
            sdk.append(time.perf_counter() - t)
            t = time.perf_counter()
            raw_lookup(raw, user, now)
            manual.append(time.perf_counter() - t)
            found += len(got)
        flow.entitlements.active(SYSTEM, users[0])
        a, b = p50_us(sdk), p50_us(manual)
        print(f"entitlements per buyer: {found / len(users):.2f} on average")
        print(
            f"flow.entitlements.active p50 {a:.1f} us (p90 {statistics.quantiles(sdk, n=10)[-1] * 1e6:.1f} us)"
        )
        print(f"raw sqlite3 same lookup   p50 {b:.1f} us")
        print(f"ratio {a / b:.2f}x raw; target p50 <= 100 us and <= 2x raw")
        raw.close()
        flow.close()


if __name__ == "__main__":
    main()
