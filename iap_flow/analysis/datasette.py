"""Datasette canned queries for the report's questions, on any iap-flow SQLite file.

Installed with iap-flow, the plugin :mod:`iap_flow.analysis.datasette_plugin` offers them on
every database Datasette opens that is an iap-flow store (whatever its file name) or an
analyst export (``iap-flow export --format sqlite``), on Datasette 0.65 and 1.0 alike::

    datasette demo.db                      # staff: the store itself, with the canned queries
    iap-flow --db demo.db export --format sqlite --out analyst/
    datasette analyst/iap_flow_export.db   # analysts: pseudonymised data only

Without the plugin (Datasette in another environment), write a configuration keyed for the
file's name; the same file serves as ``-m`` metadata on 0.65 and ``-c`` config on 1.0::

    python -m iap_flow.analysis.datasette --db demo.db --out datasette.yaml
    datasette demo.db -c datasette.yaml    # 1.0;  0.65: datasette demo.db -m datasette.yaml

(Checked on 1.0a41: ``-c`` loads the queries; the instance title is metadata there, so add
``-m datasette.yaml`` too for it. ``-m`` alone on 1.0 loads no query.)

The canned queries are the report's own aggregates (``iap_flow.adapters.sql``) in SQLite's
dialect, so Datasette and ``iap-flow report`` give the same figures. Each takes optional
``since`` / ``until``: ISO 8601 instants (an offset such as ``+08:00`` is honoured; none
means UTC); leave them empty for all time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("datasette-metadata.json")
"""The shipped metadata file (database ``orders``)."""

Render = Callable[[str], str]
"""A report query's name -> its SQL in SQLite's dialect."""


def _hours(column: str) -> str:
    return f"ROUND({column} / 3600.0, 2) AS {column}_hours"


def _wrap(select: str, render: Render, name: str) -> str:
    return f"SELECT {select} FROM ({render(name)}) AS q"


RATE = "ROUND(100.0 * refunded / NULLIF(paid, 0), 2) AS refund_rate_pct"
SPREAD = "n, " + ", ".join(_hours(c) for c in ("mean", "p50", "p95"))

CANNED: dict[str, tuple[str, str, Callable[[Render], str]]] = {
    "refund_rate_by_product": (
        "Refund rate by product",
        "Refunded orders / paid orders, for orders created in the period.",
        lambda r: (
            _wrap(
                "key AS sku, title, currency, orders, paid, refunded, " + RATE + ", gross",
                r,
                "sales_by_product",
            )
            + " ORDER BY refund_rate_pct DESC"
        ),
    ),
    "refund_rate_by_platform": (
        "Refund rate by platform",
        "Refunded orders / paid orders per payment platform.",
        lambda r: _wrap(
            "key AS platform, currency, orders, paid, refunded, " + RATE, r, "sales_by_platform"
        ),
    ),
    "sales_by_day": (
        "Orders and revenue per day",
        "Orders created, paid and declined, and gross revenue (minor units) per UTC day.",
        lambda r: r("sales_by_day"),
    ),
    "refund_decisions": (
        "Refund decisions",
        "Approved, rejected, withdrawn and open refund requests.",
        lambda r: r("refund_decisions"),
    ),
    "refund_reasons": (
        "Most frequent refund reasons",
        "Reasons word for word; `iap-flow report` also groups them into topics.",
        lambda r: r("refund_reasons"),
    ),
    "review_by_reviewer": (
        "Refund review turnaround by reviewer",
        "Hours from request to decision (nearest-rank p50 / p95) per reviewer.",
        lambda r: _wrap(
            "key AS reviewer, " + SPREAD + ", rejected, escalated", r, "review_by_reviewer"
        ),
    ),
    "refund_execution": (
        "Refund execution time",
        "Hours from approval to the platform confirming the payout.",
        lambda r: _wrap(SPREAD, r, "refund_execution"),
    ),
    "breaches_by_kind": (
        "Deadline breaches per kind",
        "Deadlines due in the period, how many passed with the work undone, how many are open.",
        lambda r: r("breaches_by_kind"),
    ),
    "breaches_by_agent": (
        "Deadline breaches by agent",
        "Each breach counts against the staff member who last acted on the case before its deadline passed (else the unassigned queue).",
        lambda r: r("breaches_by_agent"),
    ),
    "escalations_by_kind": (
        "Escalations per kind",
        "Escalations to a support lead: missed deadlines and refunds the platform would not pay.",
        lambda r: r("escalations_by_kind"),
    ),
    "first_response": (
        "First response time",
        "Hours from a ticket to staff's first answer.",
        lambda r: _wrap(SPREAD, r, "first_response"),
    ),
    "service_by_agent": (
        "First response by agent",
        "Hours to the first answer, for the tickets each agent answered first; reopened tickets.",
        lambda r: _wrap("key AS agent, " + SPREAD + ", reopened, escalated", r, "service_by_agent"),
    ),
    "ratings_by_day": (
        "Ratings per day",
        "Tickets and their average rating per UTC day.",
        lambda r: _wrap("day, n, ROUND(1.0 * total / n, 2) AS average", r, "ratings_by_day"),
    ),
}


_SINCE = re.compile(r"OR ([\w.]+) >= :since\)")
_UNTIL = re.compile(r"OR ([\w.]+) < :until\)")


def _for_forms(sql: str) -> str:
    """The period filter as Datasette runs it: an empty form field (never NULL) means no
    bound, and a bound compares instants, so ``2026-03-02T08:00+08:00`` means midnight UTC."""
    sql = sql.replace(":since IS NULL", ":since = ''").replace(":until IS NULL", ":until = ''")
    sql = _SINCE.sub(r"OR julianday(\1) >= julianday(:since))", sql)
    return _UNTIL.sub(r"OR julianday(\1) < julianday(:until))", sql)


def tables_used(sql: str) -> set[str]:
    """The tables a canned query reads (``FROM x`` / ``JOIN x``)."""
    return set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", sql, flags=re.I)) - {
        "q",
        "d",
        "r",
        "a",
        "f",
    }


def queries(render: Render) -> dict[str, dict[str, str]]:
    """Every canned query: name -> title, description and SQL."""
    return {
        name: {"title": title, "description": description, "sql": _for_forms(make(render))}
        for name, (title, description, make) in CANNED.items()
    }


def build(render: Render, db_name: str = "orders") -> dict[str, Any]:
    """The metadata document for database ``db_name`` (the SQLite file's stem)."""
    return {
        "title": "iap-flow orders",
        "description": "Orders, refunds, tickets, deadlines and the audit trail of iap-flow.",
        "databases": {db_name: {"queries": queries(render)}},
    }


def for_database(db_name: str) -> dict[str, Any]:
    """The shipped metadata, keyed for ``db_name`` instead of ``orders``."""
    shipped = json.loads(PATH.read_text(encoding="utf-8"))
    shipped["databases"] = {db_name: shipped["databases"]["orders"]}
    return dict(shipped)


def sqlite_render() -> Render:
    """The SQLite store's rendering of the report queries (loaded by name: tooling only)."""
    sql = importlib.import_module("iap_flow.adapters.sql")
    store = importlib.import_module("iap_flow.adapters.sqlite_store")
    return lambda name: str(sql.render(name, seconds=store.seconds_between))


def main(argv: list[str] | None = None) -> int:
    """``python -m iap_flow.analysis.datasette``: print the metadata's path, or a copy."""
    parser = argparse.ArgumentParser(prog="python -m iap_flow.analysis.datasette")
    parser.add_argument("--db", help="SQLite file (or name) to key the canned queries for")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the shipped file")
    parser.add_argument(
        "--out", help="write to this file (datasette.yaml: JSON is YAML) instead of stdout"
    )
    args = parser.parse_args(argv)
    if args.regenerate:
        PATH.write_text(json.dumps(build(sqlite_render()), indent=2) + "\n", encoding="utf-8")
    if args.db:
        text = json.dumps(for_database(Path(args.db).stem), indent=2, ensure_ascii=False)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
    elif not args.regenerate:
        print(PATH)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
