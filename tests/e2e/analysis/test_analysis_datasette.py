"""The shipped Datasette metadata: in step with the report's SQL, and its canned queries run."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from analysis_history import ANALYST, build_known_history

from iap_flow.analysis import analyse
from iap_flow.analysis.datasette import CANNED, PATH, build, for_database, main, sqlite_render


@pytest.fixture
def orders_db(world_class: Any, tmp_path: Path) -> Path:
    """``orders.db`` holding the known history (the name the shipped metadata is keyed by)."""
    db = tmp_path / "orders.db"
    w = world_class(f"sqlite:///{db}")
    build_known_history(w)
    w.close()
    return db


def test_shipped_file_matches_the_report_sql() -> None:
    """Regenerate with ``python -m iap_flow.analysis.datasette --regenerate``."""
    assert json.loads(PATH.read_text(encoding="utf-8")) == build(sqlite_render())


def test_every_canned_query_runs_with_empty_form_fields(orders_db: Path) -> None:
    queries = for_database("orders")["databases"]["orders"]["queries"]
    assert set(queries) == set(CANNED)
    conn = sqlite3.connect(orders_db)
    conn.row_factory = sqlite3.Row
    try:
        results = {
            name: [dict(r) for r in conn.execute(q["sql"], {"since": "", "until": ""})]
            for name, q in queries.items()
        }
    finally:
        conn.close()
    assert all(results.values()), [n for n, rows in results.items() if not rows]
    rates = {r["sku"]: r["refund_rate_pct"] for r in results["refund_rate_by_product"]}
    assert rates == {"gems": round(100 * 5 / 12, 2), "no_ads": 0.0}
    assert {r["agent"] for r in results["breaches_by_agent"]} == {"(unassigned queue)"}
    reviewers = {r["reviewer"]: r for r in results["review_by_reviewer"]}
    assert (reviewers["agent_1"]["p50_hours"], reviewers["agent_1"]["p95_hours"]) == (3.0, 10.0)


def test_canned_queries_agree_with_the_report(world_class: Any, orders_db: Path) -> None:
    conn = sqlite3.connect(orders_db)
    try:
        sql = for_database("orders")["databases"]["orders"]["queries"]["sales_by_day"]["sql"]
        day = conn.execute(sql, {"since": "2026-03-02", "until": "2026-03-03"}).fetchall()
    finally:
        conn.close()
    w = world_class(f"sqlite:///{orders_db}", seed_catalogue=False)
    try:
        a = analyse(
            w.flow,
            ANALYST,
            since=datetime(2026, 3, 2, tzinfo=UTC),
            until=datetime(2026, 3, 3, tzinfo=UTC),
        )
    finally:
        w.close()
    assert [(r[0], r[2]) for r in day] == [(d.key, d.orders) for d in a.sales.by_day]


def test_metadata_for_another_file_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == str(PATH)
    assert main(["--db", "/data/demo.db"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["databases"]) == ["demo"]
    assert set(doc["databases"]["demo"]["queries"]) == set(CANNED)


def test_datasette_serves_a_canned_query(orders_db: Path) -> None:
    datasette_app = pytest.importorskip("datasette.app", reason="datasette is not installed")
    ds = datasette_app.Datasette([str(orders_db)], metadata=for_database("orders"))

    async def fetch() -> Any:
        response = await ds.client.get(
            "/orders/refund_rate_by_product.json?since=&until=&_shape=array"
        )
        return response.status_code, response.json()

    status, rows = asyncio.run(fetch())
    assert status == 200
    assert {r["sku"]: r["refunded"] for r in rows} == {"gems": 5, "no_ads": 0}
