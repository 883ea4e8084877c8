"""Exports read back with the library that wrote them; buyers pseudonymised for analysts."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from analysis_history import ANALYST, DEVELOPER, build_known_history
from click.testing import CliRunner

from iap_flow import Actor, InvalidInput, PermissionDenied
from iap_flow.analysis.export import export, scrub
from iap_flow.cli import cli

COUNTS = {"orders": 22, "refunds": 6, "tickets": 4}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_csv_as_stored_for_a_developer(known: Any, tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    written = export(known.flow.store.report_rows, DEVELOPER, tmp_path)
    files = {e.dataset: e for e in written}
    assert {k: files[k].rows for k in COUNTS} == COUNTS
    orders = read_csv(tmp_path / "orders.csv")
    assert len(orders) == 22 and {o["user_id"] for o in orders} == {"u1"}
    assert [o["id"] for o in orders] == sorted(o["id"] for o in orders)
    declined = [o for o in orders if o["status"] == "payment_failed"]
    assert declined[0]["paid_at"] == ""  # a missing value is an empty cell
    assert datetime.fromisoformat(orders[0]["created_at"]).tzinfo is not None
    tickets = read_csv(tmp_path / "tickets.csv")
    assert any("jo@example.com" in t["body"] for t in tickets)
    audit = read_csv(tmp_path / "audit_events.csv")
    assert len(audit) == files["audit_events"].rows
    assert {"u1", "u2", "agent_1", "lead_1", "system"} <= {a["actor_id"] for a in audit}


def test_parquet_pseudonymises_buyers_for_an_analyst(known: Any, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs the analysis extra")
    tmp_path = tmp_path / "out"
    export(known.flow.store.report_rows, ANALYST, tmp_path, fmt="parquet", key=b"k1")
    orders = pq.read_table(tmp_path / "orders.parquet").to_pylist()
    refunds = pq.read_table(tmp_path / "refunds.parquet").to_pylist()
    tickets = pq.read_table(tmp_path / "tickets.parquet").to_pylist()
    audit = pq.read_table(tmp_path / "audit_events.parquet").to_pylist()
    assert (len(orders), len(refunds), len(tickets)) == (22, 6, 4)
    # Typed columns: integers and UTC timestamps, not text.
    assert isinstance(orders[0]["amount"], int)
    assert orders[0]["created_at"].tzinfo is not None
    assert orders[0]["created_at"] == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    # No buyer id anywhere; the same pseudonym for the same buyer in every file.
    everything = repr([orders, refunds, tickets, audit])
    for buyer in ("'u1'", "'u2'", "'u3'", "'u4'"):
        assert buyer not in everything
    (alias,) = {o["user_id"] for o in orders}
    assert alias.startswith("usr_")
    assert {r["user_id"] for r in refunds} == {alias}
    assert alias in {t["user_id"] for t in tickets}
    assert alias in {a["actor_id"] for a in audit if a["role"] == "buyer"}
    # Staff stay named; payment references are pseudonyms too; e-mail addresses are gone.
    assert {"agent_1", "lead_1"} <= {a["actor_id"] for a in audit}
    assert all(o["platform_transaction_id"].startswith("ref_") for o in orders if o["paid_at"])
    assert any("[email]" in t["body"] for t in tickets)
    assert "jo@example.com" not in everything
    # The same key gives the same pseudonyms next time (joins across exports).
    again = tmp_path / "again"
    export(known.flow.store.report_rows, ANALYST, again, fmt="parquet", key=b"k1")
    assert pq.read_table(again / "orders.parquet").to_pylist() == orders


def test_period_and_datasets(known: Any, tmp_path: Path) -> None:
    start = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # the tickets' day
    out = tmp_path / "out"
    written = export(
        known.flow.store.report_rows,
        DEVELOPER,
        out,
        since=start,
        datasets=("orders", "tickets"),
    )
    assert [(e.dataset, e.rows) for e in written] == [("orders", 0), ("tickets", 4)]
    assert read_csv(out / "orders.csv") == []
    assert sorted(p.name for p in out.iterdir()) == ["orders.csv", "tickets.csv"]


def test_refused_and_malformed_exports_write_nothing(world: Any, tmp_path: Path) -> None:
    rows = world.flow.store.report_rows
    with pytest.raises(PermissionDenied):
        export(rows, Actor.agent("a"), tmp_path / "x")
    with pytest.raises(InvalidInput, match="format"):
        export(rows, DEVELOPER, tmp_path / "y", fmt="xlsx")
    with pytest.raises(InvalidInput, match="unknown datasets"):
        export(rows, DEVELOPER, tmp_path / "z", datasets=("payments",))
    assert list(tmp_path.iterdir()) == []


def test_scrub_keeps_dates_and_ids() -> None:
    text = "On 2026-03-02 order ord_01KJ2 failed; call +86 138 1234 5678 or mail a.b@c.io"
    assert scrub(text) == "On 2026-03-02 order ord_01KJ2 failed; call [phone] or mail [email]"


def test_cli_export(world_class: Any, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="Parquet needs the analysis extra")
    db = tmp_path / "orders.db"
    w = world_class(f"sqlite:///{db}")
    build_known_history(w)
    w.close()
    out = tmp_path / "out"
    args = ["--db", str(db), "export", "--format", "parquet", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "orders: 22 rows" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "audit_events.parquet",
        "orders.parquet",
        "refunds.parquet",
        "tickets.parquet",
    ]
    refused = CliRunner().invoke(cli, [*args, "--role", "buyer"])
    assert refused.exit_code == 2 and "buyer" in refused.output
