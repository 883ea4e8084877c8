"""Throughput of 1, 2, 4 and 8 worker processes on PostgreSQL: iap-flow against raw psycopg.

1. Disjoint orders: each worker runs the persisted lifecycle of benchmarks/pg_lifecycle.py
   (place, pay, deliver, complete; one transaction per step) on its own buyers and orders,
   all in one schema, started together by a barrier. Raw psycopg workers write the same rows.
2. Mixed (iap-flow only): each worker also leaves every 5th order unpaid, has every 4th
   completed order refunded (the buyer asks, an agent approves and the sandbox pays out, or
   rejects every other one) and files feedback on every 4th (submitted, answered, resolved),
   while a sweeper process sweeps beside them, expiring the unpaid orders (placed an hour
   earlier by the workers' clock, so only they are due).

Rounds are interleaved (raw, iap-flow, iap-flow, raw, ...) so a machine that gets busier or
quieter during the run moves both sides alike.

    IAP_FLOW_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python benchmarks/pg_workers.py [ORDERS_PER_WORKER] [--async-commit] [--no-mixed]

Prints orders/s for each worker count (median of rounds), the speed-up over one worker and
iap-flow / raw. The machine's cores are shared by the server and the workers.
``--async-commit`` runs with ``synchronous_commit=off`` (no WAL flush wait; CPU and round
trips only).
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pg_lifecycle as lifecycle  # the sibling benchmarks, found through sys.path
from machine import describe, postgres_version

ROUNDS = 3
COUNTS = (1, 2, 4, 8)
AGENT = ("agent", "support_agent")
UNPAID_BEFORE = timedelta(hours=1)  # unpaid orders are placed this much earlier: due now


def machine() -> str:
    return describe(postgres_version(lifecycle.server_url()))


def _work(kind: str, base: str, schema: str, n: int, tag: str, barrier: Any, out: Any) -> None:
    if kind == "mixed":
        begin, end, ops = _mixed(base, schema, n, tag, barrier)
        out.put((begin, end, ops))
        return
    run = lifecycle.sdk if kind == "sdk" else lifecycle.raw
    elapsed = run(base, schema, n, tag, barrier)  # connects, waits for all, then times
    end = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    out.put((end - elapsed, end, {}))


class _Clock:
    """A clock the worker sets, back an hour for an abandoned order (ManualClock only moves on)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def _mixed(base: str, schema: str, n: int, tag: str, barrier: Any) -> tuple[float, float, Any]:
    from iap_flow import SYSTEM, Actor, open_flow
    from iap_flow.adapters.notifiers import MemoryNotifier

    clock = _Clock(lifecycle.START)
    flow = open_flow(
        lifecycle.store_url(base, schema),
        clock=clock,
        notifier=MemoryNotifier(),
        platforms=[lifecycle.TaggedSandbox(tag)],
    )
    agent = Actor(*AGENT)
    ops = dict.fromkeys(("orders", "unpaid", "refunds", "tickets", "commands"), 0)
    barrier.wait()
    begin = time.perf_counter()
    for i in range(n):
        buyer = Actor.buyer(f"u{tag}{i % 1000}")
        if i % 5 == 4:  # abandoned an hour ago: the sweeper expires it
            clock.at = lifecycle.START - UNPAID_BEFORE
            flow.orders.place(buyer, "gems")
            clock.at = lifecycle.START
            ops["unpaid"] += 1
            ops["commands"] += 1
            continue
        order = flow.orders.place(buyer, "gems")
        flow.orders.pay(buyer, order.id, token="tok_approve")
        flow.orders.deliver(SYSTEM, order.id)
        flow.orders.complete(buyer, order.id)
        ops["orders"] += 1
        ops["commands"] += 4
        if i % 4 == 1:
            refund = flow.refunds.request(buyer, order.id, reason="Bought by mistake")
            if i % 8 == 1:
                flow.refunds.approve(agent, refund.id)
            else:
                flow.refunds.reject(agent, refund.id, reason="Used already, sorry")
            ops["refunds"] += 1
            ops["commands"] += 2
        if i % 4 == 3:
            ticket = flow.feedback.submit(buyer, rating=2, body="Gems arrived late")
            flow.feedback.answer(agent, ticket.id, body="Sorry, fixed now")
            flow.feedback.resolve(agent, ticket.id)
            ops["tickets"] += 1
            ops["commands"] += 3
    end = time.perf_counter()
    flow.close()
    return begin, end, ops


def _sweeper(base: str, schema: str, stop: Any, out: Any) -> None:
    from iap_flow import ManualClock, open_flow
    from iap_flow.adapters.notifiers import MemoryNotifier
    from iap_flow.domain.errors import ConflictError

    flow = open_flow(
        lifecycle.store_url(base, schema),
        clock=ManualClock(lifecycle.START),
        notifier=MemoryNotifier(),
    )
    expired = sweeps = conflicts = 0
    while True:
        last = stop.is_set()  # one more sweep after the workers stop: what they left
        try:
            expired += flow.sweep().expired
        except ConflictError:  # a sweep stopped by a worker's change: the next one resumes
            conflicts += 1
        sweeps += 1
        if last:
            break
        stop.wait(0.02)
    flow.close()
    out.put((sweeps, expired, conflicts))


def run(kind: str, workers: int, n: int, base: str | None = None) -> tuple[float, dict[str, int]]:
    """Orders per second of ``workers`` processes doing ``n`` iterations each, and (mixed)
    the counts of what they did."""
    base = base or lifecycle.server_url()
    ctx = multiprocessing.get_context("spawn")
    with lifecycle.fresh_schema(base, f"{kind}{workers}") as schema:
        barrier = ctx.Barrier(workers)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_work, args=(kind, base, schema, n, f"w{w}x", barrier, out))
            for w in range(workers)
        ]
        stop, swept = ctx.Event(), ctx.Queue()
        sweeper = ctx.Process(target=_sweeper, args=(base, schema, stop, swept))
        if kind == "mixed":
            sweeper.start()
        for p in procs:
            p.start()
        spans = [out.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode:
                raise SystemExit(f"a {kind} worker failed (exit code {p.exitcode})")
        totals: dict[str, int] = {}
        for _, _, ops in spans:
            for k, v in ops.items():
                totals[k] = totals.get(k, 0) + v
        if kind == "mixed":
            stop.set()
            totals["sweeps"], totals["expired"], totals["conflicts"] = swept.get(timeout=120)
            sweeper.join()
    wall = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    if kind == "mixed":
        totals["commands_per_s"] = round((totals["commands"]) / wall)
        return totals["orders"] / wall, totals
    return workers * n / wall, totals


def throughput(kind: str, workers: int, n: int, base: str | None = None) -> float:
    """Orders per second of ``workers`` processes doing ``n`` lifecycles each."""
    return run(kind, workers, n, base)[0]


def main() -> list[tuple[str, str, str]]:
    """Runs and prints the benchmark; returns its README table rows."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 100
    base = lifecycle.server_url()
    mode = ""
    if "--async-commit" in sys.argv:
        base, mode = lifecycle.async_commit(base), ", synchronous_commit=off"
    kinds = ["raw", "sdk"] if "--no-mixed" in sys.argv else ["raw", "sdk", "mixed"]
    samples: dict[tuple[str, int], list[float]] = {}
    details: dict[int, list[dict[str, int]]] = {}
    print(machine())
    rows = []
    for r in range(ROUNDS):
        for workers in COUNTS:
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                rate, totals = run(kind, workers, n, base)
                samples.setdefault((kind, workers), []).append(rate)
                if kind == "mixed":
                    details.setdefault(workers, []).append(totals)
    rates = {key: statistics.median(values) for key, values in samples.items()}
    print(
        f"PostgreSQL lifecycle, N={n} orders per worker, disjoint orders{mode},"
        f" median of {ROUNDS} interleaved rounds"
    )
    for workers in COUNTS:
        s, r = rates["sdk", workers], rates["raw", workers]
        print(
            f"  {workers} worker(s): iap-flow {s:6.0f} orders/s"
            f" ({s / rates['sdk', 1]:.2f}x one worker)"
            f"   raw psycopg {r:6.0f} orders/s ({r / rates['raw', 1]:.2f}x)"
            f"   iap-flow / raw throughput {s / r:.2f} (target >= 0.90 at 4)"
        )
    sdk = " / ".join(f"{rates['sdk', w]:.0f}" for w in COUNTS)
    raw = " / ".join(f"{rates['raw', w]:.0f}" for w in COUNTS)
    ratios = " / ".join(f"{rates['sdk', w] / rates['raw', w]:.2f}" for w in COUNTS)
    rows.append(
        (
            f"PostgreSQL workers on disjoint orders, 1 / 2 / 4 / 8 processes{mode}"
            " (`pg_workers.py`)",
            ">= 0.90 of raw at 4",
            f"**{ratios}** of raw; {sdk} orders/s (raw psycopg: {raw})",
        )
    )
    if "mixed" in kinds:
        print(
            f"Mixed workload, N={n} iterations per worker (every 5th order left unpaid, every"
            " 4th refunded, every 4th with feedback) and a sweeper beside, median of"
            f" {ROUNDS} rounds"
        )
        for workers in COUNTS:
            m = rates["mixed", workers]
            last = details[workers][-1]
            cps = statistics.median(d["commands_per_s"] for d in details[workers])
            print(
                f"  {workers} worker(s): {m:6.0f} completed orders/s, {cps:6.0f} commands/s"
                f" ({m / rates['mixed', 1]:.2f}x one worker); last round: {last['refunds']}"
                f" refunds, {last['tickets']} tickets, {last['expired']} expired by"
                f" {last['sweeps']} sweeps ({last['conflicts']} stopped by a conflict)"
            )
        mixed = " / ".join(f"{rates['mixed', w]:.0f}" for w in COUNTS)
        commands = " / ".join(
            f"{statistics.median(d['commands_per_s'] for d in details[w]):.0f}" for w in COUNTS
        )
        rows.append(
            (
                "mixed workload on PostgreSQL (orders, unpaid orders, refunds decided and paid"
                f" out, feedback, a sweeper beside), 1 / 2 / 4 / 8 processes{mode}"
                " (`pg_workers.py`)",
                "report",
                f"{commands} commands/s ({mixed} completed orders/s)",
            )
        )
    return rows


if __name__ == "__main__":
    main()
