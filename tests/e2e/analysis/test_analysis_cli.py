"""``iap-flow report``: the terminal summary and the HTML file, as a person runs it."""

from __future__ import annotations

import json
import math
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


def known_db(world_class: Any, tmp_path: Path) -> Path:
    db = tmp_path / "orders.db"
    w = world_class(f"sqlite:///{db}")
    build_known_history(w)
    w.close()
    return db


def test_report_pipes_html_to_stdout_and_checks_folders_first(
    world_class: Any, tmp_path: Path
) -> None:
    db = known_db(world_class, tmp_path)
    piped = run(db, "--html", "-")
    assert piped.exit_code == 0, piped.output
    assert piped.stdout.startswith("<!doctype html>") and piped.stdout.rstrip().endswith("</html>")
    assert "Report" in piped.stderr, "the summary goes to stderr when stdout carries the HTML"
    nowhere = run(db, "--html", str(tmp_path / "missing" / "r.html"))
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.output
    assert len(nowhere.output.strip().splitlines()) == 1
    backwards = run(db, "--since", "2026-02-01", "--until", "2026-01-01")
    assert backwards.exit_code == 2 and "must be before --until" in backwards.output
    figures = json.loads(run(db, "--json").stdout)
    assert figures["sales"]["total"]["orders"] == 22
    export = CliRunner().invoke(
        cli, ["--db", str(db), "export", "--out", str(tmp_path / "no" / "such"), "--format", "csv"]
    )
    assert export.exit_code == 2 and "does not exist" in export.output


def test_every_currency_is_charted_on_round_ticks(world_class: Any, tmp_path: Path) -> None:
    from iap_flow import Actor, Money

    db = tmp_path / "two.db"
    w = world_class(f"sqlite:///{db}", seed_catalogue=False)
    pm = Actor("pm", "product_manager")
    for sku, price in (("usd_gems", Money(8_100, "USD")), ("cny_gems", Money(700, "CNY"))):
        w.flow.catalogue.add(
            pm, sku=sku, title=sku, description="-", price=price, kind="consumable"
        )
    for n in range(3):
        buyer = Actor.buyer(f"u{n}")
        for sku in ("usd_gems", "usd_gems", "cny_gems"):
            order = w.flow.orders.place(buyer, sku)
            w.flow.orders.pay(buyer, order.id, token="tok_approve")
    w.close()
    page = tmp_path / "r.html"
    assert run(db, "--html", str(page)).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert "Revenue per day (USD)" in text and "Revenue per day (CNY)" in text
    assert text.index("Revenue per day (USD)") < text.index("Revenue per day (CNY)")
    assert "Revenue per product (CNY)" in text
    assert "<b>486.00 USD, 21.00 CNY</b>" in text, "the headline names every currency, USD first"
    usd = text[text.index("revenue per day in USD") : text.index("Revenue per day (CNY)")]
    ticks = [
        float(t.replace(",", "")) for t in re.findall(r'text-anchor="end"[^>]*>([\d,.]+)<', usd)
    ]
    assert ticks and max(ticks) >= 486, "the axis covers 6 x 81.00 USD"
    step = ticks[1] - ticks[0]
    assert all(round(t / step, 6).is_integer() for t in ticks)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert mantissa in (1, 2, 2.5, 5), f"round step {step}"
