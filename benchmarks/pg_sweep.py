"""The sweep on PostgreSQL: 1,000 due among 1,000,000 deadlines, iap-flow against raw psycopg.

A fresh schema laid out by the store holds N orders over 10,000 users and N payment deadlines,
all far in the future but the last 1,000: those orders are unpaid and expire. Each side, in
one transaction, takes the due deadlines (``FOR UPDATE SKIP LOCKED``, as any number of
sweepers would), and for each: reads its order locked, UPDATEs it (version checked), INSERTs
the audit event and the buyer's notification (claimed by the sweeper, which sends it), marks
the deadline fired; after the COMMIT it marks the notifications delivered. Raw psycopg runs
it pipelined (the writes queued, a round trip per read), as the store does. Rounds alternate
the sides on the same schema, put back between them.

    IAP_FLOW_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python benchmarks/pg_sweep.py [N]

Prints the machine, N, rounds, each side's median and the ratio (target <= 1.1x).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pg_lifecycle as lifecycle  # the sibling benchmarks, found through sys.path
from machine import describe, postgres_version

from iap_flow import SYSTEM, ManualClock, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.codec import ts

DUE = 1_000
ROUNDS = 5
TARGET = 1.1
START = lifecycle.START
NOW = START + timedelta(days=3000)


def build(conn: psycopg.Connection[Any], n: int) -> None:
    """N orders and N deadlines, made in the server; the last DUE of each are due (``conn``
    in autocommit, as :func:`reset` wants it)."""
    start, step, first_due = ts(START), "30 seconds", n - DUE
    conn.execute(
        "INSERT INTO orders SELECT 'ord_' || lpad(i::text, 20, '0'), 'u' || (i %% 10000), 'gems',"
        " 'Gems', 'consumable', NULL, 199, 'USD', 'sandbox', NULL, NULL,"
        " CASE WHEN i >= %s THEN 'pending_payment' ELSE 'completed' END, 1,"
        " %s::timestamptz + i * %s::interval, %s::timestamptz + i * %s::interval, NULL"
        " FROM generate_series(0, %s - 1) AS i",
        (first_due, start, step, start, step, n),
    )
    conn.execute(
        "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state)"
        " SELECT 'order_payment', 'ord_' || lpad(i::text, 20, '0'),"
        " CASE WHEN i >= %s THEN %s::timestamptz ELSE %s::timestamptz END, NULL, 'pending'"
        " FROM generate_series(0, %s - 1) AS i",
        (first_due, start, ts(START + timedelta(days=3650 * 2)), n),
    )
    conn.execute("VACUUM ANALYZE orders")
    conn.execute("VACUUM ANALYZE deadlines")


def reset(conn: psycopg.Connection[Any]) -> None:
    """Put the schema back as built: the expired orders pending again, the sweep's rows gone."""
    t = ts(START)
    conn.execute(
        "UPDATE orders SET status = 'pending_payment', version = 1, updated_at = created_at"
        " WHERE id IN (SELECT subject_id FROM deadlines WHERE due_at <= %s)",
        (t,),
    )
    conn.execute("UPDATE deadlines SET state = 'pending' WHERE due_at <= %s", (t,))
    conn.execute("DELETE FROM audit_events")
    conn.execute("DELETE FROM outbox")
    conn.execute("VACUUM orders, deadlines, audit_events, outbox")


_DUE = (
    "SELECT id, subject_id FROM deadlines WHERE state IN ('pending', 'reminded') AND due_at <= %s"
    " ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED"
)
_ORDER = "SELECT user_id, version, status FROM orders WHERE id = %s FOR UPDATE"
_EXPIRE = (
    "UPDATE orders SET status = 'expired', version = %s, updated_at = %s"
    " WHERE id = %s AND version = %s"
)
_AUDIT = (
    "INSERT INTO audit_events (aggregate, aggregate_id, event, from_state, to_state, actor_id,"
    " role, at, data) VALUES ('order', %s, 'expire', 'pending_payment', 'expired', 'system',"
    " 'system', %s, '{}')"
)
_OUTBOX = (
    "INSERT INTO outbox (topic, recipient, payload, created_at, claimed_until, audience)"
    " VALUES ('order.expired', %s, %s, %s, %s, 'buyer') RETURNING id"
)
_FIRED = "UPDATE deadlines SET state = 'fired' WHERE id = %s"
_DELIVERED = "UPDATE outbox SET delivered_at = %s, attempts = attempts + 1 WHERE id = ANY(%s)"


def raw_sweep(conn: psycopg.Connection[Any]) -> float:
    """Seconds for the sweep's writes through psycopg, pipelined, one transaction."""
    t, lease = ts(NOW), ts(NOW + timedelta(seconds=60))
    begin = time.perf_counter()
    notes = []
    with conn.pipeline():
        due = conn.execute(_DUE, (t, DUE)).fetchall()
        for deadline_id, order_id in due:
            row = conn.execute(_ORDER, (order_id,)).fetchone()
            assert row is not None and row[2] == "pending_payment"
            user, version = row[0], row[1]
            updated = conn.execute(_EXPIRE, (version + 1, t, order_id, version))
            conn.execute(_AUDIT, (order_id, t))
            payload = json.dumps({"order_id": order_id})
            notes.append(conn.execute(_OUTBOX, (user, payload, t, lease)))
            conn.execute(_FIRED, (deadline_id,))
            del updated
    ids = [cur.fetchone()[0] for cur in notes]  # type: ignore[index]
    conn.commit()
    conn.execute(_DELIVERED, (t, ids))
    conn.commit()
    elapsed = time.perf_counter() - begin
    assert len(due) == DUE
    return elapsed


def sdk_sweep(url: str) -> float:
    flow = open_flow(url, clock=ManualClock(NOW), notifier=MemoryNotifier())
    begin = time.perf_counter()
    result = flow.sweep(SYSTEM)
    elapsed = time.perf_counter() - begin
    assert result.expired == DUE, result
    flow.close()
    return elapsed


def main() -> list[tuple[str, str, str]]:
    """Runs and prints the benchmark; returns its README table row."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    base = lifecycle.server_url()
    print(describe(postgres_version(base)))
    with lifecycle.fresh_schema(base, "sweep") as schema:
        given = conninfo_to_dict(base).get("options") or ""
        options = f"{given} -c search_path={schema}"
        admin = psycopg.connect(base, options=options, autocommit=True)
        conn = psycopg.connect(base, options=options)
        begin = time.perf_counter()
        build(admin, n)
        print(f"built N={n:,} orders and {n:,} deadlines in {time.perf_counter() - begin:.1f} s")
        sdk_times, raw_times = [], []
        for r in range(ROUNDS):
            for side in ("raw", "sdk") if r % 2 == 0 else ("sdk", "raw"):
                if side == "raw":
                    raw_times.append(raw_sweep(conn))
                else:
                    sdk_times.append(sdk_sweep(lifecycle.store_url(base, schema)))
                reset(admin)
        conn.close()
        admin.close()
    s, w = statistics.median(sdk_times) * 1000, statistics.median(raw_times) * 1000
    print(
        f"PostgreSQL sweep: {DUE} expired among N={n:,} deadlines, median of {ROUNDS} rounds:"
        f" iap-flow {s:.1f} ms | raw psycopg, same writes, {w:.1f} ms | ratio {s / w:.2f}x"
        f" (target <= {TARGET}x)"
    )
    return [
        (
            f"sweep with 1,000 due among {n:,} deadlines, PostgreSQL (`pg_sweep.py`)",
            f"<= {TARGET}x raw",
            f"**{s / w:.2f}x** raw psycopg doing the same writes ({s:.0f} ms against {w:.0f} ms)",
        )
    ]


if __name__ == "__main__":
    main()
