"""Persisted order lifecycle (place, pay, deliver, complete): iap-flow on SQLite vs raw sqlite3.

Both sides write the same rows, one transaction per step, in one run on the same machine:
  place    -> INSERT order, INSERT audit event, INSERT payment deadline
  (claim)  -> INSERT the payment's idempotency key, claimed before the platform is charged,
              its own transaction (the caller passes a key, as an app paying should)
  pay      -> UPDATE order (version checked), INSERT audit event, close the deadline,
              INSERT the delivery deadline, INSERT outbox notification (the buyer's
              confirmation), the key's result
  deliver  -> UPDATE order, INSERT audit event, close the delivery deadline
  complete -> UPDATE order, INSERT audit event
The confirmation is written claimed by the writer (it sends it itself right after the commit)
and then marked delivered in its own transaction, as the SDK does with inline delivery.

    python benchmarks/lifecycle.py [N]

Prints the machine, N, the median of interleaved rounds for each side and the ratio
SDK / raw (target <= 1.25x).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from iap_flow import SYSTEM, Actor, ManualClock, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sqlite_store import SQLiteStore
from iap_flow.codec import ORDER_COLUMNS, ts

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # the sibling module, found through sys.path

ROUNDS = 5
TARGET = 1.25


def sdk(path: Path, n: int) -> float:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    notifier = MemoryNotifier()
    flow = open_flow(f"sqlite:///{path}", clock=clock, notifier=notifier, seed=7)
    flow.catalogue.add(
        Actor("pm", "product_manager"),
        sku="gems",
        title="Gems",
        description="100 gems",
        price=Money(199, "USD"),
        kind="consumable",
    )
    buyers = [Actor.buyer(f"u{i % 1000}") for i in range(n)]
    start = time.perf_counter()
    for buyer in buyers:
        order = flow.orders.place(buyer, "gems")
        flow.orders.pay(buyer, order.id, token="tok_approve", idempotency_key=f"pay-{order.id}")
        flow.orders.deliver(SYSTEM, order.id)
        flow.orders.complete(buyer, order.id)
    elapsed = time.perf_counter() - start
    assert len(notifier.sent) == n
    flow.close()
    return elapsed


def raw(path: Path, n: int) -> float:
    SQLiteStore(str(path)).close()  # same schema and indexes as the SDK
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    x = conn.execute
    insert_order = (
        f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES "
        f"({', '.join('?' * len(ORDER_COLUMNS))})"
    )
    audit = (
        "INSERT INTO audit_events (aggregate, aggregate_id, event, from_state, to_state,"
        " actor_id, role, at, data) VALUES ('order', ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    update = (
        "UPDATE orders SET status = ?, version = ?, updated_at = ?, paid_at = ?,"
        " platform_transaction_id = ? WHERE id = ? AND version = ?"
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    t = ts(now)
    due = ts(now + timedelta(minutes=30))
    deliver_by, warn_at = ts(now + timedelta(hours=1)), ts(now + timedelta(minutes=45))
    lease = ts(now + timedelta(seconds=60))
    start = time.perf_counter()
    for i in range(n):
        oid = f"ord_{i:020d}"
        user = f"u{i % 1000}"
        txn = f"pay_{i:08d}"
        x("BEGIN IMMEDIATE")
        x(
            insert_order,
            (
                oid,
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
                "pending_payment",
                1,
                t,
                t,
                None,
                0,
            ),
        )
        x(audit, (oid, "place", None, "pending_payment", user, "buyer", t, None))
        x(
            "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state)"
            " VALUES ('order_payment', ?, ?, NULL, 'pending')",
            (oid, due),
        )
        x("COMMIT")
        key = f"pay-{oid}"
        x("BEGIN IMMEDIATE")
        claimed = x(
            "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
            " VALUES (?, 'order.pay', ?, '', ?) ON CONFLICT (key) DO NOTHING",
            (key, hashlib.sha256(key.encode()).hexdigest(), t),
        )
        assert claimed.rowcount == 1
        x("COMMIT")
        x("BEGIN IMMEDIATE")
        x(update, ("paid", 2, t, t, txn, oid, 1))
        x(
            audit,
            (
                oid,
                "pay",
                "pending_payment",
                "paid",
                user,
                "buyer",
                t,
                json.dumps({"transaction_id": txn}),
            ),
        )
        x(
            "UPDATE deadlines SET state = 'done' WHERE subject_id = ? AND state IN"
            " ('pending', 'reminded') AND kind IN (?)",
            (oid, "order_payment"),
        )
        x(
            "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state)"
            " VALUES ('order_delivery', ?, ?, ?, 'pending')",
            (oid, deliver_by, warn_at),
        )
        cur = x(
            "INSERT INTO outbox (topic, recipient, payload, created_at, claimed_until)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                "order.paid",
                user,
                json.dumps(
                    {"order_id": oid, "amount": 199, "currency": "USD", "transaction_id": txn}
                ),
                t,
                lease,
            ),
        )
        paid = (oid, user, "gems", "Gems", "consumable", None, 199, "USD", "sandbox", txn)
        x(
            "UPDATE idempotency SET result = ? WHERE key = ? AND result = ''",
            (json.dumps({"kind": "order", "row": [*paid, None, "paid", 2, t, t, t]}), key),
        )
        x("COMMIT")
        x("BEGIN IMMEDIATE")
        x(
            "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
            (t, cur.lastrowid),
        )
        x("COMMIT")
        x("BEGIN IMMEDIATE")
        x(update, ("delivered", 3, t, t, txn, oid, 2))
        x(audit, (oid, "deliver", "paid", "delivered", "system", "system", t, None))
        x(
            "UPDATE deadlines SET state = 'done' WHERE subject_id = ? AND state IN"
            " ('pending', 'reminded') AND kind IN (?)",
            (oid, "order_delivery"),
        )
        x("COMMIT")
        x("BEGIN IMMEDIATE")
        x(update, ("completed", 4, t, t, txn, oid, 3))
        x(audit, (oid, "complete", "delivered", "completed", user, "buyer", t, None))
        x("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> list[tuple[str, str, str]]:
    """Runs and prints the benchmark; returns its README table row."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    print(describe())
    sdk_times, raw_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):  # interleaved, alternating who goes first
            first, second = (raw, sdk) if r % 2 == 0 else (sdk, raw)
            for side in (first, second):
                times = raw_times if side is raw else sdk_times
                times.append(side(Path(tmp) / f"{side.__name__}{r}.db", n))
    s, w = statistics.median(sdk_times), statistics.median(raw_times)
    changes = n * 4
    print(f"SQLite lifecycle, N={n} orders (4 state changes each), median of {ROUNDS} rounds")
    print(f"  raw sqlite3: {w:.3f} s  {w / changes * 1e6:6.1f} us/change  {n / w:8.0f} orders/s")
    print(f"  iap-flow   : {s:.3f} s  {s / changes * 1e6:6.1f} us/change  {n / s:8.0f} orders/s")
    print(f"  ratio SDK / raw: {s / w:.2f}x (target <= {TARGET}x)")
    return [
        (
            "persisted lifecycle (place, pay, deliver, complete), SDK vs raw sqlite3 writing the"
            " same rows, one transaction per step (`lifecycle.py`)",
            f"<= {TARGET}x",
            f"**{s / w:.2f}x** ({s / changes * 1e6:.0f} us per state change; raw"
            f" {w / changes * 1e6:.0f} us; {n / s:.0f} orders/s)",
        )
    ]


if __name__ == "__main__":
    main()
