"""``iap-flow report``: the terminal summary and the HTML file, as a person runs it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from analysis_history import build_known_history
from click.testing import CliRunner

from iap_flow.cli import cli


def run(db: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--db", str(db), "report", *args])


def test_report_prints_the_summary_and_writes_html(world_class: Any, tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    w = world_class(f"sqlite:///{db}")
    build_known_history(w)
    w.close()
    page = tmp_path / "report.html"
    result = run(db, "--html", str(page), "--role", "data_analyst")
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"│ orders\s+│ 22\s+│", out)
    assert "completed 15, refunded 5, expired 1, payment_failed 1" in out
    assert "refund rate (refunded / paid orders)" in out and "25.0%" in out
    assert "3h 00m / 1d 06h" in out  # review turnaround p50 / p95
    assert "lead_1" in out and "refund review" in out
    assert f"HTML report: {page}" in out
    assert page.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_report_period_and_refusal(world_class: Any, tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    world_class(f"sqlite:///{db}").close()
    empty = run(db, "--since", "2026-01-01", "--until", "2026-02-01")
    assert empty.exit_code == 0, empty.output
    assert "2026-01-01 00:00 .. 2026-02-01 00:00" in empty.output
    refused = run(db, "--role", "support_agent")
    assert refused.exit_code == 2 and "support_agent" in refused.output
    backwards = run(db, "--since", "2026-02-01", "--until", "2026-01-01")
    assert backwards.exit_code != 0
