"""Many worker processes on one PostgreSQL: every decision and every due deadline acted on once.

Four processes start together (a barrier) and race on the same 200 refunds, then on the same
due deadlines. Money goes through a sandbox platform whose ledger is a PostgreSQL table all
processes share, so the test sees every payout any process made.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    ConflictError,
    ManualClock,
    Money,
    Order,
    Policy,
    RefundRequest,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform
from iap_flow.ports import PaymentKind, PaymentResult

psycopg = pytest.importorskip("psycopg")

PG_ENV = "IAP_FLOW_TEST_POSTGRES_URL"
WORKERS = 4
START = datetime(2026, 3, 1, tzinfo=UTC)
LATER = START + timedelta(hours=80)  # past every deadline the setup opens
LEDGER = (
    "CREATE TABLE test_ledger (kind text NOT NULL, key text NOT NULL, order_id text NOT NULL,"
    " amount bigint NOT NULL, currency text NOT NULL, txn text NOT NULL, PRIMARY KEY (kind, key));"
    " CREATE TABLE test_ledger_replays (kind text NOT NULL, key text NOT NULL)"
)


class SharedLedgerPlatform(SandboxPlatform):
    """The sandbox platform with its refund ledger in PostgreSQL, shared by every process.

    Idempotent on the key like a real platform (a unique key on it); a repeated call is
    recorded in ``test_ledger_replays`` so the test can tell that nobody even asked twice.
    """

    def __init__(self, url: str, schema: str) -> None:
        super().__init__()
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"SET search_path TO {schema}")

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        txn = f"rfd_{uuid.uuid4().hex[:12]}"
        row = self._conn.execute(
            "INSERT INTO test_ledger VALUES ('refund', %s, %s, %s, %s, %s)"
            " ON CONFLICT (kind, key) DO NOTHING RETURNING txn",
            (idempotency_key, order.id, refund.amount.amount, refund.amount.currency, txn),
        ).fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO test_ledger_replays VALUES ('refund', %s)", (idempotency_key,)
            )
            row = self._conn.execute(
                "SELECT txn FROM test_ledger WHERE kind = 'refund' AND key = %s",
                (idempotency_key,),
            ).fetchone()
        return PaymentResult(
            True, PaymentKind.REFUND, refund.amount, platform_transaction_id=row[0]
        )


@pytest.fixture
def pg() -> Iterator[tuple[str, str, str]]:
    """(server URL, schema, store URL) of a fresh schema with the shared ledger in it."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: multi-process tests need a PostgreSQL server")
    schema = f"test_mp_{uuid.uuid4().hex[:12]}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with open_flow(url):  # creates the schema
        pass
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.execute(LEDGER)
    yield base, schema, url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _count(base: str, schema: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        return list(conn.execute(sql).fetchall())


def _run(target: Any, *args: Any) -> list[Any]:
    """Start WORKERS processes on ``target(worker, barrier, results, *args)``; their results."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(w, barrier, results, *args)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    failed = [r for r in out if isinstance(r, str)]
    assert not failed, failed[0]
    return out


def _decide(worker: int, barrier: Any, results: Any, base: str, schema: str, url: str) -> None:
    """Decide every refund: approve or reject by this worker's agent; conflicts are expected."""
    try:
        ids = _count(base, schema, "SELECT id FROM refunds ORDER BY id")
        order = [i for (i,) in ids]
        if worker % 2:
            order.reverse()
        platform = SharedLedgerPlatform(base, schema)
        won = []
        with open_flow(
            url, platforms=[platform], clock=ManualClock(START), notifier=MemoryNotifier()
        ) as flow:
            agent = Actor.agent(f"agent{worker}")
            barrier.wait()
            for n, refund_id in enumerate(order):
                event = "approve" if (worker + n) % 2 == 0 else "reject"
                try:
                    if event == "approve":
                        flow.refunds.approve(agent, refund_id)
                    else:
                        flow.refunds.reject(agent, refund_id, reason="outside the policy")
                except ConflictError:
                    continue
                won.append((refund_id, event, agent.id))
        results.put(won)
    except BaseException as exc:  # report it to the parent, which fails the test
        results.put(f"worker {worker}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def test_four_processes_decide_the_same_200_refunds_once_each(
    pg: tuple[str, str, str],
) -> None:
    base, schema, url = pg
    with open_flow(url, clock=ManualClock(START), notifier=MemoryNotifier(), seed=3) as flow:
        flow.catalogue.add(
            Actor("pm", "product_manager"),
            sku="gems",
            title="Gems",
            description="d",
            price=Money(199, "USD"),
            kind="consumable",
        )
        for i in range(200):
            buyer = Actor.buyer(f"u{i}")
            order = flow.orders.pay(buyer, flow.orders.place(buyer, "gems").id, token="tok_ok")
            flow.refunds.request(buyer, order.id, reason="bought by mistake")

    wins = [w for out in _run(_decide, base, schema, url) for w in out]

    by_refund = Counter(refund_id for refund_id, _, _ in wins)
    assert len(by_refund) == 200 and set(by_refund.values()) == {1}
    approved = {r for r, event, _ in wins if event == "approve"}
    stored = dict(_count(base, schema, "SELECT id, status FROM refunds"))
    assert stored == {r: "refunded" if r in approved else "rejected" for r, _, _ in wins}
    deciders = dict(_count(base, schema, "SELECT id, decided_by FROM refunds"))
    assert deciders == {r: who for r, _, who in wins}

    ledger = _count(base, schema, "SELECT key, order_id, amount FROM test_ledger")
    assert sorted(key for key, _, _ in ledger) == sorted(approved)
    assert {amount for _, _, amount in ledger} <= {199}
    assert _count(base, schema, "SELECT count(*) FROM test_ledger_replays") == [(0,)]

    events = Counter(
        dict(
            _count(
                base,
                schema,
                "SELECT event, count(*) FROM audit_events WHERE aggregate = 'refund'"
                " GROUP BY event",
            )
        )
    )
    assert events["approve"] + events["reject"] == 200
    assert events["approve"] == events["submit"] == events["confirm"] == len(approved)
    assert (
        _count(
            base,
            schema,
            "SELECT count(*) FROM audit_events WHERE event IN ('approve', 'reject')"
            " GROUP BY aggregate_id HAVING count(*) > 1",
        )
        == []
    )
    refunded_orders = _count(
        base,
        schema,
        "SELECT count(*) FROM audit_events WHERE aggregate = 'order' AND event = 'refund'",
    )
    assert refunded_orders == [(len(approved),)]


def _sweep(worker: int, barrier: Any, results: Any, url: str) -> None:
    """Sweep at LATER in small batches, so the four workers interleave on the same rows."""
    try:
        from iap_flow.services import sweep

        sweep.BATCH = 10
        notifier = MemoryNotifier()
        with open_flow(url, clock=ManualClock(LATER), notifier=notifier) as flow:
            barrier.wait()
            done = flow.sweep()
            done2 = flow.sweep()
        results.put(
            {
                "expired": done.expired + done2.expired,
                "escalated": done.escalated + done2.escalated,
                "sent": [n.id for n in notifier.sent],
            }
        )
    except BaseException as exc:  # report it to the parent, which fails the test
        results.put(f"worker {worker}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def test_four_processes_sweep_the_same_due_deadlines_once_each(
    pg: tuple[str, str, str],
) -> None:
    base, schema, url = pg
    # A ticket's two deadlines fall due together, so two workers may take one each.
    policy = Policy(ticket_first_response=timedelta(hours=4), ticket_resolution=timedelta(hours=4))
    clock = ManualClock(START)
    with open_flow(url, clock=clock, notifier=MemoryNotifier(), seed=5, policy=policy) as flow:
        flow.catalogue.add(
            Actor("pm", "product_manager"),
            sku="gems",
            title="Gems",
            description="d",
            price=Money(199, "USD"),
            kind="consumable",
        )
        for i in range(120):
            flow.orders.place(Actor.buyer(f"u{i}"), "gems")  # unpaid: expires after 30 min
        for i in range(40):
            buyer = Actor.buyer(f"r{i}")
            order = flow.orders.pay(buyer, flow.orders.place(buyer, "gems").id, token="tok_ok")
            flow.orders.deliver(SYSTEM, order.id)
            flow.refunds.request(buyer, order.id, reason="not for me")  # review: 24 h
            flow.feedback.submit(buyer, rating=2, body="slow", reason="slow_delivery")  # 4 h each
    before = {i for (i,) in _count(base, schema, "SELECT id FROM outbox")}

    out = _run(_sweep, url)

    assert sum(r["expired"] for r in out) == 120
    assert sum(r["escalated"] for r in out) == 40 + 40 * 2
    sent = [i for r in out for i in r["sent"]]
    assert len(sent) == len(set(sent))  # no notification delivered by two workers
    new = {i for (i,) in _count(base, schema, "SELECT id FROM outbox")} - before
    assert set(sent) == new
    assert _count(base, schema, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == [(0,)]
    topics = dict(_count(base, schema, "SELECT topic, count(*) FROM outbox GROUP BY topic"))
    assert topics["order.expired"] == 120 and topics["deadline.escalated"] == 120
    audit = dict(
        _count(
            base,
            schema,
            "SELECT event, count(*) FROM audit_events WHERE event IN ('expire', 'escalate')"
            " GROUP BY event",
        )
    )
    assert audit == {"expire": 120, "escalate": 120}
    twice = _count(
        base,
        schema,
        "SELECT aggregate_id FROM audit_events WHERE event = 'expire'"
        " GROUP BY aggregate_id HAVING count(*) > 1",
    )
    assert twice == []
    still_open = _count(
        base,
        schema,
        "SELECT kind, count(*) FROM deadlines WHERE state IN ('pending', 'reminded') GROUP BY kind",
    )
    assert still_open == [("ticket_escalation", 40)]  # each escalated ticket's lead window


def _open(worker: int, barrier: Any, results: Any, url: str) -> None:
    """Open a flow on a schema nobody created yet, all workers at the same moment."""
    try:
        barrier.wait()
        with open_flow(url) as flow:
            results.put(flow.store.schema_version)  # type: ignore[attr-defined]
    except BaseException as exc:  # report it to the parent, which fails the test
        results.put(f"worker {worker}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def test_four_processes_creating_the_schema_at_once_migrate_it_once() -> None:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: multi-process tests need a PostgreSQL server")
    schema = f"test_mig_{uuid.uuid4().hex[:12]}"
    from iap_flow.adapters.postgres.schema import SCHEMA_VERSION

    try:
        versions = _run(_open, f"{base}{'&' if '?' in base else '?'}schema={schema}")
        assert set(versions) == {SCHEMA_VERSION}
        rows = _count(base, schema, "SELECT key, value FROM meta")
        assert rows == [("schema_version", str(SCHEMA_VERSION))]
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
