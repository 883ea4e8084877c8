"""The report on a seeded simulation: it agrees with the core summary report and with itself,
is reproducible, and renders as a self-contained HTML page that Chromium draws."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from analysis_history import ANALYST

from iap_flow import Flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.analysis import Analysis, analyse, html
from iap_flow.cli.simulation import open_demo_flow, simulate

SEED = 5


def simulated() -> Flow:
    flow = open_demo_flow("sqlite://", seed=SEED, notifier=MemoryNotifier())
    simulate(flow, buyers=60, days=10, seed=SEED)
    return flow


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[Flow, Analysis]]:
    flow = simulated()
    yield flow, analyse(flow, ANALYST)
    flow.close()


def test_agrees_with_the_core_report(sim: tuple[Flow, Analysis]) -> None:
    flow, a = sim
    core = flow.report(ANALYST)
    assert a.sales.total.orders == core.orders
    assert a.sales.total.refund_rate == pytest.approx(core.refund_rate)
    assert (a.refunds.review.p50, a.refunds.review.p95) == (
        pytest.approx(core.review_p50_seconds, abs=1e-3),
        pytest.approx(core.review_p95_seconds, abs=1e-3),
    )
    assert {b.kind: b.breached for b in a.service.breaches if b.breached} == core.breaches
    assert a.feedback.ratings == core.ratings
    # The core's revenue is net of refunds; the analysis shows gross revenue.
    gross = {m.currency: m.amount for m in core.revenue}
    for m in core.refunded:
        gross[m.currency] += m.amount
    assert {m.currency: m.amount for m in a.sales.total.revenue} == gross


def test_breakdowns_add_up(sim: tuple[Flow, Analysis]) -> None:
    _, a = sim
    total = a.sales.total
    for breakdown in (a.sales.by_day, a.sales.by_product, a.sales.by_kind, a.sales.by_platform):
        assert sum(s.orders for s in breakdown) == total.orders
        assert sum(s.paid for s in breakdown) == total.paid
        assert sum(s.refunded for s in breakdown) == total.refunded
    assert sum(r.requests for r in a.refunds.by_product) == sum(a.refunds.decisions.values())
    assert sum(p.spread.n for p in a.refunds.reviewers) == a.refunds.review.n
    assert sum(p.spread.n for p in a.service.agents) == a.service.first_response.n
    assert sum(t.count for t in a.feedback.topics.topics) <= a.feedback.count
    assert a.feedback.topics.topics, "60 buyers over 10 days leave enough feedback for topics"


def test_same_seed_same_report(sim: tuple[Flow, Analysis]) -> None:
    again = simulated()
    try:
        assert attrs.asdict(analyse(again, ANALYST)) == attrs.asdict(sim[1])
    finally:
        again.close()


def test_html_is_self_contained(sim: tuple[Flow, Analysis]) -> None:
    page = html.render(sim[1])
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"(src|href)\s*=", page)
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    charts = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(charts) >= 15
    for chart in charts:
        ET.fromstring(chart)  # each chart is well-formed SVG


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _screenshot(chromium: str, page: Path, png: Path, profile: Path) -> bytes:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1200,2000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return png.read_bytes()


def test_chromium_draws_the_charts(sim: tuple[Flow, Analysis], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    report = html.write(sim[1], tmp_path / "report.html")
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>", encoding="utf-8")
    shot = _screenshot(chromium, report, tmp_path / "report.png", tmp_path / "profile")
    empty = _screenshot(chromium, blank, tmp_path / "blank.png", tmp_path / "profile")
    assert _png_size(shot) == (1200, 2000)
    # A blank page compresses to almost nothing; text, tables and charts do not.
    assert len(shot) > 8 * len(empty) and len(shot) > 60_000, (len(shot), len(empty))
    if os.environ.get("IAP_FLOW_KEEP_SCREENSHOT"):
        shutil.copy(tmp_path / "report.png", os.environ["IAP_FLOW_KEEP_SCREENSHOT"])


def test_core_import_leaves_the_heavy_libraries_alone() -> None:
    code = (
        "import sys, iap_flow, iap_flow.analysis, iap_flow.analysis.html, iap_flow.analysis.export;"
        "heavy = [m for m in ('sklearn', 'jieba', 'pyarrow', 'numpy') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
