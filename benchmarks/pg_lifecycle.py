"""Persisted lifecycle (place, pay, deliver, complete): iap-flow on PostgreSQL vs raw psycopg.

Both sides write the same rows as benchmarks/lifecycle.py, one transaction per step, in one
run, each in its own fresh schema (created by the store, so the same tables and indexes):
  place    -> INSERT order, INSERT audit event, INSERT payment deadline
  (claim)  -> INSERT the payment's idempotency key, claimed before the platform is charged,
              its own transaction (the caller passes a key, as an app paying should)
  pay      -> UPDATE order (version checked), INSERT audit event, close the deadline,
              INSERT outbox notification (claimed by the writer, which sends it itself),
              the key's result
  (sent)   -> UPDATE outbox delivered, its own transaction
  deliver  -> UPDATE order (version checked), INSERT audit event
  complete -> UPDATE order (version checked), INSERT audit event
Raw psycopg runs two ways: plainly (a round trip per statement, rowcount checked) and
pipelined (a step's writes in one round trip, rowcount checked, then COMMIT). The SDK also
reads the product before placing and the order before charging it, as it does in service.

    IAP_FLOW_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python benchmarks/pg_lifecycle.py [N] [--async-commit]

(the URL falls back to IAP_FLOW_TEST_POSTGRES_URL, then to the local default). Prints the
median of several rounds for each side and the ratios SDK / raw. ``--async-commit`` runs
both sides with ``synchronous_commit=off``: no wait for the WAL flush, so what is left is
round trips and CPU (the flush is most of a commit here, and the noisiest part).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict

from iap_flow import SYSTEM, Actor, ManualClock, Money, Order, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform
from iap_flow.codec import ORDER_COLUMNS, ts
from iap_flow.ports import PaymentResult

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import describe, postgres_version  # the sibling module, found through sys.path

ROUNDS = 5
START = datetime(2026, 1, 1, tzinfo=UTC)
INSERT_ORDER = (
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES "
    f"({', '.join(['%s'] * len(ORDER_COLUMNS))})"
)
AUDIT = (
    "INSERT INTO audit_events (aggregate, aggregate_id, event, from_state, to_state,"
    " actor_id, role, at, data) VALUES ('order', %s, %s, %s, %s, %s, %s, %s, %s)"
)
UPDATE = (
    "UPDATE orders SET status = %s, version = %s, updated_at = %s, paid_at = %s,"
    " platform_transaction_id = %s WHERE id = %s AND version = %s"
)
DEADLINE = (
    "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state)"
    " VALUES ('order_payment', %s, %s, NULL, 'pending')"
)
DELIVERY = (
    "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state)"
    " VALUES ('order_delivery', %s, %s, %s, 'pending')"
)
CLOSE = (
    "UPDATE deadlines SET state = 'done' WHERE subject_id = %s AND state IN"
    " ('pending', 'reminded') AND kind = ANY(%s)"
)
OUTBOX = (
    "INSERT INTO outbox (topic, recipient, payload, created_at, claimed_until)"
    " VALUES (%s, %s, %s, %s, %s) RETURNING id"
)
DELIVERED = "UPDATE outbox SET delivered_at = %s, attempts = attempts + 1 WHERE id = %s"
CLAIM = (
    "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
    " VALUES (%s, 'order.pay', %s, '', %s) ON CONFLICT (key) DO NOTHING"
)
RESULT = "UPDATE idempotency SET result = %s WHERE key = %s AND result = ''"


def server_url() -> str:
    return os.environ.get(
        "IAP_FLOW_BENCH_POSTGRES_URL",
        os.environ.get("IAP_FLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )


APP = "iap_flow_bench"
"""The benchmark's connections carry this application_name (pg_waits.py samples them)."""


def async_commit(base: str) -> str:
    """``base`` with ``synchronous_commit=off`` for its sessions: commits do not wait for the
    WAL flush, so what is left is round trips and CPU (the flush is the noisiest part)."""
    return base + f"{'&' if '?' in base else '?'}options={quote('-c synchronous_commit=off')}"


def store_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}&application_name={APP}"


@contextmanager
def fresh_schema(base: str, tag: str) -> Iterator[str]:
    """A new schema laid out by the store (tables, indexes, gems product); dropped after."""
    schema = f"bench_{tag}_{uuid.uuid4().hex[:8]}"
    with open_flow(store_url(base, schema), notifier=MemoryNotifier()) as flow:
        flow.catalogue.add(
            Actor("pm", "product_manager"),
            sku="gems",
            title="Gems",
            description="100 gems",
            price=Money(199, "USD"),
            kind="consumable",
        )
    try:
        yield schema
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class TaggedSandbox(SandboxPlatform):
    """The sandbox platform with the worker's tag in its transaction ids: each process's
    sandbox counts from 1, and the store keeps (platform, transaction id) unique."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self._tag = tag

    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        result = super().charge(order, token, idempotency_key)
        txn = f"{self._tag}{result.platform_transaction_id}"
        return attrs.evolve(result, platform_transaction_id=txn)


def sdk(base: str, schema: str, n: int, tag: str = "", barrier: Any = None) -> float:
    """Seconds for ``n`` lifecycles through the SDK (after ``barrier``, if given)."""
    notifier = MemoryNotifier()
    flow = open_flow(
        store_url(base, schema),
        clock=ManualClock(START),
        notifier=notifier,
        platforms=[TaggedSandbox(tag)],
    )
    buyers = [Actor.buyer(f"u{tag}{i % 1000}") for i in range(n)]
    if barrier is not None:
        barrier.wait()
    begin = time.perf_counter()
    for buyer in buyers:
        order = flow.orders.place(buyer, "gems")
        flow.orders.pay(buyer, order.id, token="tok_approve", idempotency_key=f"pay-{order.id}")
        flow.orders.deliver(SYSTEM, order.id)
        flow.orders.complete(buyer, order.id)
    elapsed = time.perf_counter() - begin
    assert len(notifier.sent) == n
    flow.close()
    return elapsed


def raw(
    base: str, schema: str, n: int, tag: str = "", barrier: Any = None, *, pipelined: bool = False
) -> float:
    """Seconds for ``n`` lifecycles written by hand with psycopg, one transaction per step."""
    given = conninfo_to_dict(base).get("options") or ""
    conn = psycopg.connect(base, options=f"{given} -c search_path={schema}", application_name=APP)
    now = START
    t = ts(now)
    due = ts(now + timedelta(minutes=30))
    deliver_by, warn_at = ts(now + timedelta(hours=1)), ts(now + timedelta(minutes=45))
    lease = ts(now + timedelta(seconds=60))
    step = _pipelined_step(conn) if pipelined else _plain_step(conn)
    if barrier is not None:
        barrier.wait()
    begin = time.perf_counter()
    for i in range(n):
        oid = f"ord_{tag}{i:020d}"
        user = f"u{tag}{i % 1000}"
        txn = f"pay_{tag}{i:08d}"
        order: tuple[Any, ...] = (oid, user, "gems", "Gems", "consumable", None, 199, "USD")
        order += ("sandbox", None, None, "pending_payment", 1, t, t, None, 0)
        step(
            [
                (INSERT_ORDER, order),
                (AUDIT, (oid, "place", None, "pending_payment", user, "buyer", t, None)),
                (DEADLINE, (oid, due)),
            ]
        )
        key = f"pay-{oid}"
        step([(CLAIM, (key, hashlib.sha256(key.encode()).hexdigest(), t))])
        payload = {"order_id": oid, "amount": 199, "currency": "USD", "transaction_id": txn}
        paid = [*order[:9], txn, None, "paid", 2, t, t, t]
        note = step(
            [
                (UPDATE, ("paid", 2, t, t, txn, oid, 1)),
                (AUDIT, (oid, "pay", "pending_payment", "paid", user, "buyer", t, _data(txn))),
                (CLOSE, (oid, ["order_payment"])),
                (DELIVERY, (oid, deliver_by, warn_at)),
                (RESULT, (json.dumps({"kind": "order", "row": paid}), key)),
                (OUTBOX, ("order.paid", user, json.dumps(payload), t, lease)),
            ]
        )
        step([(DELIVERED, (t, note))])
        step(
            [
                (UPDATE, ("delivered", 3, t, t, txn, oid, 2)),
                (AUDIT, (oid, "deliver", "paid", "delivered", "system", "system", t, None)),
                (CLOSE, (oid, ["order_delivery"])),
            ]
        )
        step(
            [
                (UPDATE, ("completed", 4, t, t, txn, oid, 3)),
                (AUDIT, (oid, "complete", "delivered", "completed", user, "buyer", t, None)),
            ]
        )
    elapsed = time.perf_counter() - begin
    conn.close()
    return elapsed


def _data(txn: str) -> str:
    return json.dumps({"transaction_id": txn})


Step = Callable[[list[tuple[str, tuple[Any, ...]]]], Any]


def _plain_step(conn: psycopg.Connection[Any]) -> Step:
    """Each statement its own round trip (BEGIN too), UPDATE rowcount checked, COMMIT."""
    cur = conn.cursor()

    def step(statements: list[tuple[str, tuple[Any, ...]]]) -> Any:
        last = None
        for sql, params in statements:
            cur.execute(sql, params)
            if (sql is UPDATE or sql is CLAIM) and cur.rowcount != 1:
                raise RuntimeError("lost update")
            last = cur.fetchone() if sql is OUTBOX else None
        conn.commit()
        return last and last[0]

    return step


def _pipelined_step(conn: psycopg.Connection[Any]) -> Step:
    """A step's writes sent together and waited for once, rowcount checked, then COMMIT."""

    def step(statements: list[tuple[str, tuple[Any, ...]]]) -> Any:
        with conn.pipeline():
            curs = [conn.execute(sql, params) for sql, params in statements]
        for (sql, _), cur in zip(statements, curs, strict=True):
            if (sql is UPDATE or sql is CLAIM) and cur.rowcount != 1:
                conn.rollback()
                raise RuntimeError("lost update")
        last = curs[-1].fetchone() if statements[-1][0] is OUTBOX else None
        conn.commit()
        return last and last[0]

    return step


def main() -> list[tuple[str, str, str]]:
    """Runs and prints the benchmark; returns its README table row."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 500
    base = server_url()
    if "--async-commit" in sys.argv:
        base = async_commit(base)
    print(describe(postgres_version(base)))
    sdk_times, raw_times, pipe_times = [], [], []
    for r in range(ROUNDS):  # interleaved, alternating who goes first
        for side in ("raw", "pipe", "sdk") if r % 2 == 0 else ("sdk", "pipe", "raw"):
            with fresh_schema(base, side) as schema:
                if side == "sdk":
                    sdk_times.append(sdk(base, schema, n))
                else:
                    times = pipe_times if side == "pipe" else raw_times
                    times.append(raw(base, schema, n, pipelined=side == "pipe"))
    s, w, p = (statistics.median(x) for x in (sdk_times, raw_times, pipe_times))
    changes = n * 4
    mode = " (synchronous_commit=off)" if "--async-commit" in sys.argv else ""
    print(
        f"PostgreSQL lifecycle, N={n} orders (4 state changes each){mode},"
        f" median of {ROUNDS} rounds"
    )
    for name, secs in (("raw psycopg", w), ("raw pipelined", p), ("iap-flow", s)):
        print(
            f"  {name:<14}: {secs:.3f} s  {secs / changes * 1e6:7.1f} us/change"
            f"  {n / secs:7.0f} orders/s"
        )
    print(f"  ratio SDK / raw psycopg:    {s / w:.2f}x (target <= 1.5x)")
    print(f"  ratio SDK / raw pipelined:  {s / p:.2f}x")
    return [
        (
            f"the same on PostgreSQL vs raw psycopg, one process{mode} (`pg_lifecycle.py`)",
            "<= 1.5x",
            f"**{s / w:.2f}x** raw, {s / p:.2f}x raw pipelined ({n / s:.0f} orders/s)",
        )
    ]


if __name__ == "__main__":
    main()
