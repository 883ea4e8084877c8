"""``iap-flow worker`` as deployed: its own OS process, metrics scraped over HTTP, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iap_flow import SYSTEM, Actor, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.cli.worker import health
from iap_flow.domain.clock import ManualClock

PG_ENV = "IAP_FLOW_TEST_POSTGRES_URL"
PM = Actor("pm", "product_manager")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/worker.db"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: the PostgreSQL run of the worker needs a server")
    import psycopg

    schema = f"test_worker_{uuid.uuid4().hex[:12]}"
    yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def seed_backlog(url: str, start: datetime) -> ManualClock:
    """An unpaid order and a refund in review written at ``start``, notifications undelivered."""
    clock = ManualClock(start)
    with open_flow(url, clock=clock, notifier=MemoryNotifier(), deliver_inline=False) as flow:
        flow.catalogue.add(
            PM,
            sku="gems",
            title="Gems",
            description="-",
            price=Money(199, "USD"),
            kind="consumable",
        )
        buyer = Actor.buyer("u1")
        flow.orders.place(buyer, "gems")
        paid = flow.orders.place(buyer, "gems")
        flow.orders.pay(buyer, paid.id, token="tok_approve")
        flow.orders.deliver(SYSTEM, paid.id)  # delivered: its delivery deadline is met
        flow.refunds.request(buyer, paid.id, reason="I bought it twice by mistake")
    return clock


def test_health_measures_the_backlog_and_the_most_overdue_deadline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.db"
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    clock = seed_backlog(url, start)
    clock.advance(timedelta(hours=2))
    with open_flow(url, clock=clock, notifier=MemoryNotifier(), deliver_inline=False) as flow:
        figures = health(flow)
        assert figures["outbox_backlog"] >= 2
        assert figures["outbox_oldest_age_seconds"] == 7200
        assert figures["deadlines_overdue"] == 1, "only the unpaid order's 30 min have run out"
        assert figures["deadline_oldest_overdue_seconds"] == 5400
        flow.deliver_notifications()
        flow.sweep()
        after = health(flow)
    assert after["outbox_backlog"] == 0 and after["outbox_oldest_age_seconds"] == 0
    assert after["deadlines_overdue"] == 0


def scrape(metrics_url: str) -> dict[str, float]:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        match = re.match(r"^(iap_flow_[^ ]+) ([0-9.e+-]+)$", line)
        if match:
            out[match[1]] = float(match[2])
    return out


def test_worker_sweeps_delivers_and_serves_metrics_until_sigterm(url: str, tmp_path: Path) -> None:
    seed_backlog(url, datetime.now(UTC) - timedelta(days=2))
    notes = tmp_path / "sent.jsonl"
    # Staff notifications go only where a destination is configured (else they wait for the
    # Slack bot): this deployment's worker writes them to the same file as the buyers'.
    config = tmp_path / "iap-flow.toml"
    config.write_text(f'[notifications]\nstaff = "jsonl:{notes}"\n', encoding="utf-8")
    args = ["--db", url, "--config", str(config), "--log-format", "json", "--log-level", "info"]
    args += ["worker"]
    args += ["--every", "0.2", "--metrics-port", "0", "--notifications", str(notes)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "iap_flow.cli", *args], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "metrics on " in line, line
        metrics_url = line.split("metrics on ", 1)[1].strip()
        figures: dict[str, float] = {}
        for _ in range(100):
            figures = scrape(metrics_url)
            if figures.get("iap_flow_worker_last_cycle_timestamp_seconds", 0) > 0:
                break
            time.sleep(0.1)
        assert figures["iap_flow_worker_last_cycle_timestamp_seconds"] > 0
        assert figures['iap_flow_sweep_actions_total{kind="expired"}'] >= 1
        assert figures["iap_flow_outbox_backlog"] == 0, "the worker delivered the backlog"
        assert "iap_flow_deadline_oldest_overdue_seconds" in figures
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopping after" in err
    cycles = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert any(c.get("msg") == "worker cycle" and c["expired"] >= 1 for c in cycles)
    assert cycles[-1]["command"] == "worker" and cycles[-1]["outcome"] == "ok"
    topics = {json.loads(x)["topic"] for x in notes.read_text().splitlines()}
    assert "order.paid" in topics and "refund.review_requested" in topics


def test_worker_refuses_a_missing_store_at_once(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "iap_flow.cli", "--db", str(tmp_path / "nope.db"), "worker"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "no iap-flow store" in proc.stderr
    assert not (tmp_path / "nope.db").exists()


def test_read_commands_need_the_store_to_exist_on_every_kind(url: str) -> None:
    from click.testing import CliRunner

    from iap_flow.cli import cli

    missing = CliRunner().invoke(cli, ["--db", url, "orders"])
    assert missing.exit_code == 2 and "no iap-flow store" in missing.output
    with open_flow(url, notifier=MemoryNotifier()):
        pass  # open_flow is the application's way: it creates the store
    if url.startswith("sqlite"):
        assert Path(url.removeprefix("sqlite:///")).exists()
    assert CliRunner().invoke(cli, ["--db", url, "orders"]).output.strip() == "no orders match"
    again = CliRunner().invoke(cli, ["--db", url, "init"])
    assert again.exit_code == 2 and "already holds an iap-flow store" in again.output
