"""Money moves once under races between OS processes, on SQLite and on PostgreSQL.

Each worker process has its own flow on the same store. The platform below counts every call
it is asked into a file all processes append to, so the test sees each charge and each payout
any process asked for, whichever process asked.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    IapFlowError,
    ManualClock,
    Money,
    Order,
    RefundNotAllowed,
    RefundRequest,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform
from iap_flow.ports import PaymentResult

WORKERS = 4
ORDERS = 30
START = datetime(2026, 3, 1, tzinfo=UTC)


class CountingPlatform(SandboxPlatform):
    """The sandbox platform, writing one line per charge or payout asked into a shared file."""

    def __init__(self, calls: str) -> None:
        super().__init__()
        self._calls = calls

    def _record(self, kind: str, key: str) -> None:
        with open(self._calls, "a") as out:  # short appends are atomic between processes
            out.write(f"{kind} {key} {os.getpid()}\n")

    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        self._record("charge", idempotency_key)
        return super().charge(order, token, idempotency_key)

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        self._record("refund", idempotency_key)
        return super().refund(refund, order, idempotency_key)


def calls(path: str, kind: str) -> Counter[str]:
    lines = Path(path).read_text().splitlines() if Path(path).exists() else []
    return Counter(line.split()[1] for line in lines if line.split()[0] == kind)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    base = os.environ.get("IAP_FLOW_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("IAP_FLOW_TEST_POSTGRES_URL is not set: the PostgreSQL race needs a server")
    psycopg = pytest.importorskip("psycopg")
    schema = f"test_race_{uuid.uuid4().hex[:12]}"
    yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def flow_on(url: str, calls_file: str) -> Any:
    return open_flow(
        url, platforms=[CountingPlatform(calls_file)], clock=ManualClock(START),
        notifier=MemoryNotifier(),
    )  # fmt: skip


def setup_orders(url: str, calls_file: str, *, paid: bool) -> list[str]:
    with flow_on(url, calls_file) as flow:
        pm = Actor("pm", "product_manager")
        flow.catalogue.add(
            pm, sku="gems", title="Gems", description="100 gems", price=Money(499, "USD"),
            kind="consumable",
        )  # fmt: skip
        ids = []
        for n in range(ORDERS):
            buyer = Actor.buyer(f"u{n}")
            order = flow.orders.place(buyer, "gems")
            if paid:
                flow.orders.pay(buyer, order.id, token="tok_approve")
            ids.append(order.id)
        return ids


def race(target: Any, *args: Any) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(w, barrier, results, *args)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    failed = [r for r in out if isinstance(r, str)]
    assert not failed, failed[0]
    return out


def _pay_with_one_key(worker: int, barrier: Any, results: Any, url: str, calls_file: str,
                      ids: list[str]) -> None:  # fmt: skip
    try:
        out = []
        with flow_on(url, calls_file) as flow:
            barrier.wait()
            for n, order_id in enumerate(ids):
                paid = flow.orders.pay(
                    Actor.buyer(f"u{n}"), order_id, token="tok_approve",
                    idempotency_key=f"tap-{order_id}",
                )  # fmt: skip
                out.append((paid.id, paid.status.value, paid.platform_transaction_id))
        results.put(out)
    except BaseException as exc:
        results.put(f"worker {worker}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def test_one_key_from_four_processes_charges_once_and_all_get_the_first_result(
    store_url: str, tmp_path: Path
) -> None:
    calls_file = str(tmp_path / "calls.txt")
    ids = setup_orders(store_url, calls_file, paid=False)
    answers = race(_pay_with_one_key, store_url, calls_file, ids)
    assert all(a == answers[0] for a in answers)  # every caller got the same, first, result
    assert {status for _, status, _ in answers[0]} == {"paid"}
    charged = calls(calls_file, "charge")
    assert sorted(charged) == sorted(f"{i}:charge:1" for i in ids)
    assert set(charged.values()) == {1}  # the platform was asked once per order, not per caller
    with flow_on(store_url, calls_file) as flow:
        for order_id in ids:
            events = [e.event for e in flow.history(SYSTEM, order_id)]
            assert events == ["place", "pay"]


def _request_then_decide(worker: int, barrier: Any, results: Any, url: str, calls_file: str,
                         ids: list[str]) -> None:  # fmt: skip
    try:
        accepted, refused = [], 0
        with flow_on(url, calls_file) as flow:
            barrier.wait()
            for n, order_id in enumerate(ids):
                try:
                    refund = flow.refunds.request(Actor.buyer(f"u{n}"), order_id, reason="mistap")
                except RefundNotAllowed:
                    refused += 1
                    continue
                accepted.append(refund.id)
            barrier.wait()
            with flow.store.transaction() as tx:
                mine = [r.id for o in ids for r in tx.refunds_for_order(o)]
            for refund_id in mine:
                try:
                    flow.refunds.approve(Actor.lead(f"lead{worker}"), refund_id)
                except IapFlowError:
                    continue
        results.put((accepted, refused))
    except BaseException as exc:
        results.put(f"worker {worker}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def test_racing_refund_requests_make_one_refund_per_order_and_pay_it_once(
    store_url: str, tmp_path: Path
) -> None:
    calls_file = str(tmp_path / "calls.txt")
    ids = setup_orders(store_url, calls_file, paid=True)
    out = race(_request_then_decide, store_url, calls_file, ids)
    accepted = [rid for made, _ in out for rid in made]
    assert len(accepted) == ORDERS  # exactly one request won per order
    assert sum(refused for _, refused in out) == ORDERS * (WORKERS - 1)
    paid_out = calls(calls_file, "refund")
    assert sorted(paid_out) == sorted(accepted)
    assert set(paid_out.values()) == {1}  # each refund paid out once, by one of four leads
    with flow_on(store_url, calls_file) as flow:
        for order_id in ids:
            assert flow.orders.get(SYSTEM, order_id).status.value == "refunded"
