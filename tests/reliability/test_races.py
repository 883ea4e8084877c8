"""Races between OS processes on one store, each process its own flow, meeting at a barrier
before every contested item; money goes through a file ledger all of them share.

- the same idempotency key paying one order from four processes: one charge, one result
- two refund requests for one order at once: at most one refund paid out
- two leads approving the same refund at once: one wins, the other gets AlreadyDecided
- two sweepers on the same due deadlines: each deadline acted on once
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rel_settings import SCALE

from iap_flow import (
    Actor,
    AlreadyDecided,
    Flow,
    IapFlowError,
    ManualClock,
    Money,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox_ledger import FileLedgerPlatform
from iap_flow.ports import PaymentKind

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ITEMS = 6 * SCALE
PM = Actor("pm", "product_manager")
DEV = Actor("dev", "developer")


def _flow(url: str, ledger: str, at: datetime = T0) -> Flow:
    return open_flow(
        url,
        clock=ManualClock(at),
        platforms=[FileLedgerPlatform(ledger)],
        notifier=MemoryNotifier(),
    )


def _outcome(call: Callable[[], Any]) -> tuple[str, str]:
    """``("ok", what)``, ``(error type, message)`` for an iap-flow error, or ``("UNTYPED", ...)``."""
    try:
        return "ok", call()
    except IapFlowError as exc:
        return type(exc).__name__, str(exc)
    except Exception as exc:  # a finding: report it whole
        return "UNTYPED", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"


def _racer(
    job: str, url: str, ledger: str, items: list[Any], n: int, barrier: Any, out: Any
) -> None:
    """Child process ``n``: play ``job`` on every item, at the same moment as the others."""
    try:
        flow = _flow(url, ledger, T0 + timedelta(hours=2) if job == "sweep" else T0)
        results: list[Any] = []
        for item in items:
            barrier.wait(timeout=120)
            results.append(JOBS[job](flow, item, n))
        flow.close()
        out.put((n, results))
    except BaseException as exc:
        out.put((n, [("CRASH", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")]))


def _pay(flow: Flow, item: tuple[str, str], n: int) -> tuple[str, Any]:
    order_id, user = item
    return _outcome(
        lambda: (lambda o: (o.status.value, o.platform_transaction_id))(
            flow.orders.pay(
                Actor.buyer(user), order_id, token="tok_approve", idempotency_key=f"pay-{order_id}"
            )
        )
    )


def _request_and_approve(flow: Flow, item: tuple[str, str], n: int) -> tuple[str, Any]:
    order_id, user = item
    asked = _outcome(
        lambda: (
            flow.refunds.request(
                Actor.buyer(user),
                order_id,
                reason="bought twice",
                idempotency_key=f"rq-{n}-{order_id}",
            ).id
        )
    )
    if asked[0] != "ok":
        return asked
    return _outcome(lambda: flow.refunds.approve(Actor.lead(f"lead_{n}"), asked[1]).status.value)


def _approve(flow: Flow, refund_id: str, n: int) -> tuple[str, Any]:
    return _outcome(lambda: flow.refunds.approve(Actor.lead(f"lead_{n}"), refund_id).status.value)


def _sweep(flow: Flow, item: int, n: int) -> tuple[str, Any]:
    return _outcome(lambda: flow.sweep().expired)


JOBS: dict[str, Callable[[Flow, Any, int], tuple[str, Any]]] = {
    "pay": _pay,
    "refund": _request_and_approve,
    "approve": _approve,
    "sweep": _sweep,
}


def _race(job: str, url: str, ledger: Path, items: list[Any], processes: int) -> list[list[Any]]:
    """Run ``processes`` racers; their results, by racer."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(job, url, str(ledger), items, n, barrier, out))
        for n in range(processes)
    ]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    by_racer = [got[n] for n in range(processes)]
    crashes = [r for rs in by_racer for r in rs if r[0] in ("CRASH", "UNTYPED")]
    assert not crashes, crashes[0][1]
    return by_racer


def _setup(url: str, ledger: Path, paid: bool) -> tuple[Flow, list[tuple[str, str]]]:
    flow = _flow(url, str(ledger))
    flow.catalogue.add(
        PM, sku="gems", title="Gems", description="d", price=Money(199, "USD"), kind="consumable"
    )
    items = []
    for i in range(ITEMS):
        buyer = Actor.buyer(f"u{i}")
        order = flow.orders.place(buyer, "gems")
        if paid:
            flow.orders.pay(buyer, order.id, token="tok_approve", idempotency_key=f"setup-{i}")
        items.append((order.id, buyer.id))
    return flow, items


def test_same_key_pay_from_four_processes_charges_once(store_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    flow, items = _setup(store_url, ledger, paid=False)
    flow.close()
    results = _race("pay", store_url, ledger, items, 4)
    for k, (order_id, _) in enumerate(items):
        seen = [racer[k] for racer in results]
        assert all(s[0] == "ok" for s in seen), f"{order_id}: {seen}"
        assert len({tuple(s[1]) for s in seen}) == 1, f"{order_id}: different results {seen}"
    platform = FileLedgerPlatform(ledger)
    charges = Counter(m.order_id for m in platform.moves(PaymentKind.CHARGE))
    assert charges == Counter(o for o, _ in items), "an order was charged twice"
    calls = platform.calls(PaymentKind.CHARGE)
    asked_again = {key: n for key, n in calls.items() if n > 1}
    # Holders of the key wait for the first and return its result: nobody asks twice.
    assert asked_again == {}, f"the platform was asked {sum(calls.values())} times for {len(items)}"
    print(f"\nsame-key pay x4: {len(items)} orders, 0 double charges, {sum(calls.values())} calls")


def test_two_refund_requests_for_one_order_pay_out_once(store_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    flow, items = _setup(store_url, ledger, paid=True)
    flow.close()
    results = _race("refund", store_url, ledger, items, 2)
    platform = FileLedgerPlatform(ledger)
    paid_back = Counter(m.order_id for m in platform.moves(PaymentKind.REFUND))
    doubled = [o for o, n in paid_back.items() if n > 1]
    assert doubled == [], f"{len(doubled)} of {len(items)} orders refunded twice"
    for k in range(len(items)):
        outcomes = [racer[k][0] for racer in results]
        assert outcomes.count("ok") >= 1, outcomes
    print(f"\ndouble refund request: {len(items)} orders, 0 refunded twice")


def test_two_leads_approving_one_refund_one_wins(store_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    flow, items = _setup(store_url, ledger, paid=True)
    refunds = [
        flow.refunds.request(Actor.buyer(user), order_id, reason="not as shown").id
        for order_id, user in items
    ]
    flow.close()
    results = _race("approve", store_url, ledger, refunds, 2)
    for k, refund_id in enumerate(refunds):
        outcomes = [racer[k] for racer in results]
        assert [o[0] for o in outcomes].count("ok") == 1, f"{refund_id}: {outcomes}"
        losers = [o for o in outcomes if o[0] != "ok"]
        assert [o[0] for o in losers] == [AlreadyDecided.__name__], f"{refund_id}: {losers}"
    paid_back = Counter(m.order_id for m in FileLedgerPlatform(ledger).moves(PaymentKind.REFUND))
    assert paid_back == Counter(o for o, _ in items), "a refund paid twice or not at all"
    print(f"\ndecision race: {len(refunds)} refunds, 0 paid twice")


def test_two_sweepers_expire_each_order_once(store_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    flow, items = _setup(store_url, ledger, paid=False)
    results = _race("sweep", store_url, ledger, [0], 2)
    expired = sum(racer[0][1] for racer in results)
    assert expired == len(items), f"sweepers expired {expired} of {len(items)}"
    for order_id, _ in items:
        events = [e.event for e in flow.history(DEV, order_id)]
        assert events == ["place", "expire"], f"{order_id}: {events}"
    flow.close()
    print(f"\ntwo sweepers: {len(items)} due deadlines, each acted on once")
