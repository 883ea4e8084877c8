"""Where PostgreSQL workers wait: wait events and lock waits sampled during a worker run.

Runs ``benchmarks/pg_workers.py``'s lifecycle with W worker processes (raw psycopg, then
iap-flow) while a sampler polls ``pg_stat_activity`` and ``pg_locks`` for the benchmark's
backends (``application_name`` iap_flow_bench) every few milliseconds, then prints, per side,
what share of samples the backends spent in each state and wait event, the lock waits seen,
and with ``pg_stat_statements`` loaded, the statements by calls and server time.

    IAP_FLOW_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python benchmarks/pg_waits.py [WORKERS] [ORDERS_PER_WORKER] [--async-commit]

``ClientRead`` means the server waits for the client (the client is the bottleneck);
``WALWrite``/``WALSync`` the commit's flush; ``Lock``/``LWLock`` a shared lock or a hot page.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pg_lifecycle as lifecycle  # the sibling benchmarks, found through sys.path
import pg_workers as workers

_ACTIVITY = (
    "SELECT state, coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-')"
    " FROM pg_stat_activity WHERE application_name = %s"
)
_LOCKS = (
    "SELECT l.locktype, l.mode, coalesce(l.relation::regclass::text, l.objid::text, '-')"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE NOT l.granted AND a.application_name = %s"
)
_STATEMENTS = (
    "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
    " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
    " WHERE query NOT LIKE '%%pg_stat%%' AND query NOT LIKE '%%pg_locks%%'"
    " ORDER BY total_exec_time DESC LIMIT 12"
)


class Sampler(threading.Thread):
    """Polls the benchmark's backends until stopped; counts states, waits and lock waits."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(base, autocommit=True)
        self.states: Counter[str] = Counter()
        self.locks: Counter[str] = Counter()
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        conn, app = self.conn, lifecycle.APP
        while not self._halt.is_set():
            rows = conn.execute(_ACTIVITY, (app,)).fetchall()
            if rows:
                self.samples += 1
                for state, kind, event in rows:
                    self.states[f"{state:<20} {kind}:{event}"] += 1
                for locktype, mode, what in conn.execute(_LOCKS, (app,)).fetchall():
                    self.locks[f"{locktype} {mode} on {what}"] += 1
            time.sleep(0.002)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _statements(base: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(base, autocommit=True) as conn:
        try:
            return conn.execute(_STATEMENTS).fetchall()
        except psycopg.Error:
            return []


def _reset(base: str) -> bool:
    with psycopg.connect(base, autocommit=True) as conn:
        try:
            conn.execute("SELECT pg_stat_statements_reset()")
        except psycopg.Error:
            return False
    return True


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 4
    n = int(args[1]) if len(args) > 1 else 150
    base = lifecycle.server_url()
    if "--async-commit" in sys.argv:
        base = lifecycle.async_commit(base)
    print(f"{workers.machine()}; {count} workers x {n} orders, wait events sampled every ~2 ms")
    for kind in ("raw", "sdk"):
        statements = _reset(base)
        sampler = Sampler(base)
        sampler.start()
        rate = workers.throughput(kind, count, n, base)
        sampler.stop()
        total = sum(sampler.states.values()) or 1
        print(f"\n{kind}: {rate:.0f} orders/s; {sampler.samples} samples")
        for what, seen in sampler.states.most_common(10):
            print(f"  {seen / total:6.1%}  {what}")
        lock_total = sum(sampler.locks.values())
        print(f"  lock waits: {lock_total} backend-samples" + (":" if lock_total else ""))
        for what, seen in sampler.locks.most_common(5):
            print(f"    {seen:6d}  {what}")
        if statements:
            print("  statements by server time (calls, ms, query):")
            for calls, ms, query in _statements(base):
                print(f"    {calls:7d} {ms:9.1f}  {query}")


if __name__ == "__main__":
    main()
