"""Throughput of 1, 2 and 4 worker processes on disjoint orders, iap-flow on PostgreSQL.

Each worker runs the persisted lifecycle of benchmarks/pg_lifecycle.py (place, pay, deliver,
complete; one transaction per step) on its own buyers and orders, all in one schema, started
together by a barrier. Raw psycopg workers write the same rows in the same run, for a ratio.

    IAP_FLOW_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python benchmarks/pg_workers.py [ORDERS_PER_WORKER]

Prints orders/s for each worker count (median of rounds), the speed-up over one worker and
SDK / raw. The machine has 2 cores, shared by the server and the workers.
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pg_lifecycle as lifecycle  # the sibling benchmark, found through sys.path

ROUNDS = 3
COUNTS = (1, 2, 4)


def _work(kind: str, base: str, schema: str, n: int, tag: str, barrier: Any, out: Any) -> None:
    run = lifecycle.sdk if kind == "sdk" else lifecycle.raw
    elapsed = run(base, schema, n, tag, barrier)  # connects, waits for all, then times
    end = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    out.put((end - elapsed, end))


def throughput(kind: str, workers: int, n: int) -> float:
    """Orders per second of ``workers`` processes doing ``n`` lifecycles each."""
    base = lifecycle.server_url()
    ctx = multiprocessing.get_context("spawn")
    with lifecycle.fresh_schema(base, f"{kind}{workers}") as schema:
        barrier = ctx.Barrier(workers)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_work, args=(kind, base, schema, n, f"w{w}x", barrier, out))
            for w in range(workers)
        ]
        for p in procs:
            p.start()
        spans = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode:
                raise SystemExit(f"a {kind} worker failed (exit code {p.exitcode})")
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return float(workers * n / wall)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    rates: dict[tuple[str, int], float] = {}
    for kind in ("raw", "sdk"):
        for workers in COUNTS:
            rates[kind, workers] = statistics.median(
                throughput(kind, workers, n) for _ in range(ROUNDS)
            )
    print(
        f"PostgreSQL lifecycle, {n} orders per worker, disjoint orders, median of {ROUNDS} rounds"
    )
    for workers in COUNTS:
        s, r = rates["sdk", workers], rates["raw", workers]
        print(
            f"  {workers} worker(s): iap-flow {s:6.0f} orders/s"
            f" ({s / rates['sdk', 1]:.2f}x one worker)"
            f"   raw psycopg {r:6.0f} orders/s ({r / rates['raw', 1]:.2f}x)"
            f"   SDK time / raw time {r / s:.2f}x"
        )


if __name__ == "__main__":
    main()
