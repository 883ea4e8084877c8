"""The shipped Datasette metadata: in step with the report's SQL, and its canned queries run."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
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


def _ds(paths: list[Path], **options: Any) -> Any:
    """A real Datasette app with iap-flow's plugin registered (as its entry point does)."""
    datasette_app = pytest.importorskip("datasette.app", reason="datasette is not installed")
    from datasette.plugins import pm

    from iap_flow.analysis import datasette_plugin

    if not pm.is_registered(datasette_plugin):
        pm.register(datasette_plugin, name="iap_flow_test")
    return datasette_app.Datasette([str(p) for p in paths], **options)


def _get(ds: Any, path: str) -> tuple[int, Any]:
    async def fetch() -> Any:
        response = await ds.client.get(path)
        ok = response.headers.get("content-type", "").startswith("application/json")
        return response.status_code, response.json() if ok else response.text

    return asyncio.run(fetch())


def test_the_plugin_serves_any_file_name_and_compares_instants(
    orders_db: Path, tmp_path: Path
) -> None:
    demo = tmp_path / "shop_2026.db"
    demo.write_bytes(orders_db.read_bytes())
    other = tmp_path / "photos.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    ds = _ds([demo, other])
    status, rows = _get(ds, "/shop_2026/refund_rate_by_product.json?since=&until=&_shape=array")
    assert status == 200
    assert {r["sku"]: r["refunded"] for r in rows} == {"gems": 5, "no_ads": 0}
    status, _ = _get(ds, "/photos/refund_rate_by_product.json?_shape=array")
    assert status == 404, "no canned queries on another application's database"

    def orders(since: str) -> int:
        path = f"/shop_2026/sales_by_day.json?since={since}&until=&_shape=array"
        status, rows = _get(ds, path.replace("+", "%2B"))
        assert status == 200, rows
        return sum(r["orders"] for r in rows)

    with sqlite3.connect(demo) as conn:
        first = min(
            datetime.fromisoformat(r[0]) for r in conn.execute("SELECT created_at FROM orders")
        )
    in_shanghai = first.astimezone(timezone(timedelta(hours=8))).isoformat()
    assert orders(in_shanghai) == orders(first.isoformat()) == orders("") == 22, (
        "+08:00 names the same instant: the first order is in"
    )
    later = (first + timedelta(hours=8)).astimezone(timezone(timedelta(hours=8))).isoformat()
    assert orders(later) < 22


def test_analyst_mode_serves_pseudonymised_data_only(orders_db: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from iap_flow.cli import cli

    out = tmp_path / "analyst"
    result = CliRunner().invoke(
        cli, ["--db", str(orders_db), "export", "--format", "sqlite", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    export_db = out / "iap_flow_export.db"
    with sqlite3.connect(orders_db) as conn:
        buyers = {r[0] for r in conn.execute("SELECT user_id FROM orders")}
    with sqlite3.connect(export_db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "outbox" not in tables and "ticket_messages" not in tables
        dump = "\n".join(conn.iterdump())
        marker = dict(conn.execute("SELECT key, value FROM iap_flow_export"))
    assert marker["pseudonymised"] == "yes"
    assert buyers and not any(f"'{b}'" in dump for b in buyers), "no raw buyer id in the export"
    ds = _ds([export_db])
    status, rows = _get(
        ds, "/iap_flow_export/refund_rate_by_product.json?since=&until=&_shape=array"
    )
    assert status == 200 and {r["sku"]: r["refunded"] for r in rows} == {"gems": 5, "no_ads": 0}
    status, users = _get(ds, "/iap_flow_export/orders.json?_shape=array&_col=user_id")
    assert status == 200 and all(u["user_id"].startswith("usr_") for u in users)
    status, _ = _get(ds, "/iap_flow_export/breaches_by_kind.json?_shape=array")
    assert status == 404, "queries on tables the export leaves out are not offered"


def test_config_file_for_any_name_is_yaml_too(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    target = tmp_path / "datasette.yaml"
    assert main(["--db", "/data/shop-2026.db", "--out", str(target)]) == 0
    doc = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert list(doc["databases"]) == ["shop-2026"]
    assert set(doc["databases"]["shop-2026"]["queries"]) == set(CANNED)
    assert "julianday(created_at) >= julianday(:since)" in json.dumps(doc)


def _datasette_major() -> int:
    from importlib.metadata import version

    return int(version("datasette").split(".")[0])


def test_the_config_file_loads_in_the_installed_datasette_cli(
    orders_db: Path, tmp_path: Path
) -> None:
    """The one generated file, given the way each Datasette reads it: ``-m`` on 0.65 (canned
    queries are metadata there), ``-c`` on 1.0 (they are configuration; 1.0a41 was checked by
    hand the same way). Run by the real ``datasette`` command, with no plugin help."""
    import os
    import shutil
    import subprocess
    import sys

    pytest.importorskip("datasette")
    shop = tmp_path / "shop-2026.db"
    shop.write_bytes(orders_db.read_bytes())
    config = tmp_path / "datasette.yaml"
    assert main(["--db", str(shop), "--out", str(config)]) == 0
    flag = "-m" if _datasette_major() < 1 else "-c"
    command = shutil.which("datasette", path=str(Path(sys.executable).parent))
    assert command is not None
    env = {**os.environ, "DATASETTE_LOAD_PLUGINS": ""}  # the file alone, not the plugin
    done = subprocess.run(
        [
            command,
            str(shop),
            flag,
            str(config),
            "--get",
            "/shop-2026/refund_decisions.json?since=&until=&_shape=array",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    decisions = {r["decision"]: r["n"] for r in json.loads(done.stdout)}
    assert sum(decisions.values()) > 0


def test_the_plugin_stores_its_queries_on_datasette_1(orders_db: Path) -> None:
    """Datasette 1.0 has no canned_queries hook: the plugin's startup saves stored queries."""
    if _datasette_major() < 1:
        ds = _ds([orders_db])
        from iap_flow.analysis import datasette_plugin

        assert datasette_plugin.startup(ds) is None, "0.65 is served by canned_queries"
        return
    ds = _ds([orders_db])

    async def run() -> tuple[int, Any]:
        await ds.invoke_startup()
        response = await ds.client.get(
            "/orders/refund_rate_by_product.json?since=&until=&_shape=array"
        )
        return response.status_code, response.json()

    status, rows = asyncio.run(run())
    assert status == 200
    assert {r["sku"]: r["refunded"] for r in rows} == {"gems": 5, "no_ads": 0}
