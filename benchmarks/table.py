"""Run the benchmarks and print the README's Performance table from what they measured.

Each benchmark's ``main()`` prints its own output (machine, N, rounds, ratios) and returns its
table rows; this runs them one after the other in this process (the PostgreSQL ones need a
server: ``IAP_FLOW_BENCH_POSTGRES_URL`` or ``IAP_FLOW_TEST_POSTGRES_URL``, else they are
left out) and prints the rows as Markdown at the end, ready to paste.

    python benchmarks/table.py [--quick] [--only NAME,NAME]

``--quick`` runs small N (minutes, not tens of minutes; the figures are then rougher).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # the sibling module, found through sys.path

BENCHMARKS: list[tuple[str, list[str], list[str], bool]] = [
    # module, argv, argv with --quick, needs PostgreSQL
    ("lifecycle", [], ["500"], False),
    ("django_peer", [], ["300"], False),
    ("queries", [], ["1000000"], False),
    ("pg_lifecycle", [], ["100"], True),
    ("pg_workers", [], ["50"], True),
    ("pg_workers", ["--async-commit", "--no-mixed"], ["50", "--async-commit", "--no-mixed"], True),
    ("pg_sweep", [], ["1000000"], True),
    ("report_1m", [], ["1000000", "100000"], False),
]


def main() -> None:
    quick = "--quick" in sys.argv
    only = None
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    postgres = bool(
        os.environ.get("IAP_FLOW_BENCH_POSTGRES_URL")
        or os.environ.get("IAP_FLOW_TEST_POSTGRES_URL")
    )
    rows: list[tuple[str, str, str]] = []
    for name, argv, quick_argv, needs_pg in BENCHMARKS:
        if (only and name not in only) or (needs_pg and not postgres):
            continue
        module = importlib.import_module(name)
        sys.argv = [f"{name}.py", *(quick_argv if quick else argv)]
        print(f"\n$ python benchmarks/{name}.py {' '.join(sys.argv[1:])}", flush=True)
        found = module.main()
        rows.extend(found or [])
    print(f"\nPerformance table ({describe()})\n")
    print("| measure | target | measured |")
    print("| --- | --- | --- |")
    for measure, target, measured in rows:
        print(f"| {measure} | {target} | {measured} |")


if __name__ == "__main__":
    main()
