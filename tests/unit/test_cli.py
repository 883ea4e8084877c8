"""The ``iap-flow`` command line, driven as a user would through click's CliRunner."""

from __future__ import annotations

import json
import re
import sys
import tomllib
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from iap_flow import Actor
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.cli import PLUGINS, Plugin, cli, db_url, notifications_path
from iap_flow.cli import commands as cli_module
from iap_flow.cli.plugins import EntryPointPlugins
from iap_flow.cli.process_doc import process_document
from iap_flow.cli.simulation import CATALOGUE, PM, open_demo_flow
from iap_flow.domain.machines import MACHINES

ORDER_ID = re.compile(r"\bord_[0-9A-Z]{20}\b")
REFUND_ID = re.compile(r"\brfd_[0-9A-Z]{20}\b")


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def table_ids(output: str) -> list[str]:
    """Order ids in the rows of a printed table."""
    return [
        ORDER_ID.findall(line)[0]
        for line in output.splitlines()
        if ORDER_ID.search(line) and line.startswith("│")
    ]


def report_part(output: str) -> str:
    return output[output.index("Report") :]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo database, built once through `iap-flow demo`."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    result = invoke("demo", "--db", str(path), "--buyers", "20", "--days", "3")
    assert result.exit_code == 0, result.output
    return path


def test_db_option_takes_a_url_or_a_path() -> None:
    assert db_url("orders.db") == "sqlite:///orders.db"
    assert db_url("/tmp/x.db") == "sqlite:////tmp/x.db"
    assert db_url("postgresql://h/db") == "postgresql://h/db"
    assert notifications_path("sqlite:////tmp/x.db") == Path("/tmp/x.notifications.jsonl")


def test_demo_prints_the_report_and_writes_notifications(demo_db: Path) -> None:
    notes = demo_db.with_name("demo.notifications.jsonl")
    lines = notes.read_text(encoding="utf-8").splitlines()
    assert lines and {"order.paid", "refund.review_requested"} <= {
        json.loads(line)["topic"] for line in lines
    }
    result = invoke("--db", str(demo_db), "report")
    assert result.exit_code == 0, result.output
    for figure in (
        "orders",
        "completed",
        "revenue",
        "refund rate",
        "review turnaround",
        "deadline breaches",
        "average rating",
        "Subscriptions",
        "MRR",
        "voluntary churn",
        "involuntary churn",
        "grace-period recoveries",
    ):
        assert figure in result.output


def test_demo_is_reproducible_and_seeded(tmp_path: Path) -> None:
    def demo(name: str, seed: str) -> str:
        db = str(tmp_path / name)
        result = invoke("demo", "--db", db, "--buyers", "15", "--days", "2", "--seed", seed)
        assert result.exit_code == 0, result.output
        assert "simulated 15 buyers over 2 days" in result.output
        return report_part(result.output)

    first = demo("a.db", "7")
    assert first == demo("b.db", "7")
    assert first != demo("c.db", "8")


def test_demo_refuses_a_database_with_data_unless_fresh(tmp_path: Path) -> None:
    db = str(tmp_path / "d.db")
    assert invoke("demo", "--db", db, "--buyers", "2", "--days", "1").exit_code == 0
    again = invoke("demo", "--db", db, "--buyers", "2", "--days", "1")
    assert again.exit_code == 1
    assert "already holds data" in again.output and "--fresh" in again.output
    assert "Traceback" not in again.output
    fresh = invoke("demo", "--db", db, "--buyers", "2", "--days", "1", "--fresh")
    assert fresh.exit_code == 0, fresh.output
    memory = invoke("demo", "--db", "sqlite://", "--buyers", "2", "--days", "1", "--fresh")
    assert memory.exit_code == 2 and "SQLite demo file" in memory.output


def test_orders_filters_and_pages(demo_db: Path) -> None:
    refunded = invoke("--db", str(demo_db), "orders", "--status", "refunded", "--limit", "200")
    assert refunded.exit_code == 0, refunded.output
    rows = [line for line in refunded.output.splitlines() if ORDER_ID.search(line)]
    assert rows and all("refunded" in line for line in rows)
    assert "no more orders" in refunded.output

    first = invoke("--db", str(demo_db), "orders", "--limit", "2")
    cursor = first.output.split("--cursor ")[1].strip()
    assert cursor.startswith("c1.") and "|" not in cursor, "the cursor is opaque"
    second = invoke("--db", str(demo_db), "orders", "--limit", "2", "--cursor", cursor)
    ids_1, ids_2 = table_ids(first.output), table_ids(second.output)
    assert len(ids_1) == len(ids_2) == 2 and not set(ids_1) & set(ids_2)
    assert ids_1[1] > ids_2[0], "newest first across pages"

    mine = invoke("--db", str(demo_db), "orders", "--user", "u_00001", "--limit", "200")
    assert all("u_00001" in line for line in mine.output.splitlines() if ORDER_ID.search(line))
    later = invoke("--db", str(demo_db), "orders", "--since", "2030-01-01")
    assert "no orders match" in later.output


def test_orders_bad_input_is_a_clear_error(demo_db: Path) -> None:
    bad_status = invoke("--db", str(demo_db), "orders", "--status", "shipped")
    assert bad_status.exit_code == 2
    assert "'shipped' is not one of" in bad_status.output and "completed" in bad_status.output
    bad_time = invoke("--db", str(demo_db), "orders", "--since", "yesterday")
    assert bad_time.exit_code == 2 and "not an ISO date" in bad_time.output
    bad_limit = invoke("--db", str(demo_db), "orders", "--limit", "500")
    assert bad_limit.exit_code == 2
    assert "1<=x<=200" in bad_limit.output
    assert "Traceback" not in bad_limit.output
    assert "1 to 200" in invoke("orders", "--help").output, "the maximum is documented"
    bad_cursor = invoke("--db", str(demo_db), "orders", "--cursor", "2026-01-01|ord_1")
    assert bad_cursor.exit_code == 2 and "not a cursor" in bad_cursor.output


def test_refunds_shows_the_queue(demo_db: Path) -> None:
    result = invoke("--db", str(demo_db), "refunds", "--status", "in_review", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert REFUND_ID.search(result.output) and ORDER_ID.search(result.output)
    assert "failed" in result.output
    assert "overdue" in result.output, "the demo's reviews are long past due on the wall clock"
    rejected = invoke("--db", str(demo_db), "refunds", "--status", "withdrawn")
    assert "withdrawn" in rejected.output
    bad = invoke("--db", str(demo_db), "refunds", "--status", "lost")
    assert bad.exit_code == 2 and "'lost' is not one of" in bad.output


def test_show_prints_a_record_and_its_audit_trail(demo_db: Path) -> None:
    listed = invoke("--db", str(demo_db), "orders", "--status", "completed", "--limit", "1")
    order_id = table_ids(listed.output)[0]
    result = invoke("--db", str(demo_db), "show", order_id)
    assert result.exit_code == 0, result.output
    for event in ("place", "pay", "deliver", "complete"):
        assert re.search(rf"\b{event}\b", result.output), event
    missing = invoke("--db", str(demo_db), "show", "ord_NOPE")
    assert missing.exit_code == 1
    assert "order 'ord_NOPE' does not exist" in missing.output
    assert "Traceback" not in missing.output
    odd = invoke("--db", str(demo_db), "show", "xyz_1")
    assert odd.exit_code == 1 and "not an order, refund, ticket or subscription id" in odd.output
    assert "refunds" in result.output and "tickets" in result.output


def test_sweep_expires_what_is_due_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with open_demo_flow(f"sqlite:///{db}", notifier=MemoryNotifier()) as flow:  # clock in 2026
        gems = CATALOGUE[0]
        flow.catalogue.add(
            PM, sku=gems.sku, title=gems.title, description="-", price=gems.price, kind=gems.kind
        )
        order = flow.orders.place(Actor.buyer("u1"), gems.sku)  # never paid
    notes = tmp_path / "notes.jsonl"
    first = invoke("--db", str(db), "sweep", "--notifications", str(notes))
    assert first.exit_code == 0, first.output
    assert "expired 1 orders" in first.output
    assert json.loads(notes.read_text().splitlines()[0])["payload"]["order_id"] == order.id
    second = invoke("--db", str(db), "sweep", "--notifications", str(notes))
    assert "expired 0 orders" in second.output and "escalated 0" in second.output
    shown = invoke("--db", str(db), "show", order.id)
    assert "expired" in shown.output and "system" in shown.output


def test_docs_writes_the_process_document(tmp_path: Path) -> None:
    to_stdout = invoke("docs")
    assert to_stdout.exit_code == 0
    assert to_stdout.output == process_document()
    target = tmp_path / "PROCESS.md"
    assert invoke("docs", "--out", str(target)).exit_code == 0
    nowhere = invoke("docs", "--out", str(tmp_path / "missing" / "PROCESS.md"))
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.output
    text = target.read_text(encoding="utf-8")
    assert text.count("```mermaid\nstateDiagram") == len(MACHINES)


def test_report_period_and_env_db(demo_db: Path) -> None:
    env = {"IAP_FLOW_DB": str(demo_db)}
    everything = invoke("report", env=env)
    assert everything.exit_code == 0, everything.output
    empty = invoke("report", "--since", "2030-01-01", env=env)
    assert re.search(r"│ orders\s+│ 0\s+│", empty.output)
    assert report_part(everything.output) != report_part(empty.output)


def test_bad_store_url_is_one_red_line() -> None:
    result = invoke("--db", "mysql://localhost/x", "report")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown store scheme 'mysql'")
    assert len(result.output.strip().splitlines()) == 1


def test_plugin_commands_are_listed_and_loaded_only_when_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @click.command()
    @click.option("--name", default="world")
    def hello(name: str) -> None:
        click.echo(f"hello {name}")

    module = types.ModuleType("iap_flow_test_plugin")
    module.command = hello  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "iap_flow_test_plugin", module)
    plugins = {
        "hello": Plugin("iap_flow_test_plugin:command", "hello", "Say hello."),
        "absent": Plugin("iap_flow_no_such_module.cli:command", "absent", "Not installed."),
    }
    monkeypatch.setattr(cli_module, "PLUGINS", plugins)
    listing = invoke("--help")
    assert "hello" in listing.output and "absent" in listing.output
    assert invoke("hello", "--name", "iap").output == "hello iap\n"
    missing = invoke("absent", "--anything", "goes")
    assert missing.exit_code == 2
    assert "pip install 'iap-flow[absent]'" in missing.output
    assert "Traceback" not in missing.output


def test_default_plugins_name_their_extras() -> None:
    assert PLUGINS["slack"].extra == "slack"
    assert PLUGINS["export"].target == "iap_flow.analysis.cli:export"
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    ours = {name: p.extra for name, p in PLUGINS.items() if p.distribution == "iap-flow"}
    assert {"slack", "export", "report"} <= set(ours)
    assert set(ours.values()) <= set(extras)


def test_another_distribution_adds_a_command_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed distribution (a dist-info folder on the path, as pip leaves it) declares
    two commands: one that works, one whose module is missing."""
    (tmp_path / "acme_audit.py").write_text(
        "import click\n\n"
        "@click.command()\n"
        "def command():\n"
        '    """Audit the refunds of last week."""\n'
        "    click.echo('audited')\n",
        encoding="utf-8",
    )
    info = tmp_path / "acme_audit-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-audit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[iap_flow.cli_plugins]\n"
        "audit = acme_audit:command\n"
        "forecast = acme_forecast.cli:command [forecast]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_audit", raising=False)
    monkeypatch.setattr(cli_module, "PLUGINS", EntryPointPlugins())
    listing = invoke("--help").output
    assert re.search(r"audit\s+Audit the refunds of last week\.", listing)
    assert re.search(r"forecast\s+\(needs the forecast extra\)", listing)
    assert re.search(r"slack\s+Run the Slack bot", listing)  # iap-flow's own, still there
    assert invoke("audit").output == "audited\n"
    missing = invoke("forecast", "--days", "7")
    assert missing.exit_code == 2
    assert "pip install 'acme-audit[forecast]'" in missing.output
    assert "Traceback" not in missing.output


def test_show_lists_a_subscription_and_what_the_buyer_has(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from iap_flow import SYSTEM, Money

    db = tmp_path / "subs.db"
    with open_demo_flow(f"sqlite:///{db}", notifier=MemoryNotifier()) as flow:
        add = flow.catalogue.add
        add(PM, sku="club", title="Club", description="-", price=Money(999, "USD"), kind="subscription", period="month")  # fmt: skip
        add(PM, sku="no_ads", title="No ads", description="-", price=Money(299, "USD"), kind="non_consumable")  # fmt: skip
        buyer = Actor.buyer("u[red]1")
        for sku in ("club", "no_ads"):
            order = flow.orders.place(buyer, sku)
            flow.orders.pay(buyer, order.id, token="tok_approve")
            if sku == "club":
                first = order
        sub = flow.subscriptions.for_order(SYSTEM, first.id)
        grace = datetime.now(UTC) + timedelta(days=40)  # the CLI asks at the real time
        flow.subscriptions.renewal_failed(SYSTEM, sub.id, grace_until=grace)
    shown = invoke("--db", str(db), "show", sub.id)
    assert shown.exit_code == 0, shown.output
    assert "in_grace_period" in shown.output and "enter_grace" in shown.output
    assert first.id in shown.output and "entitlements (now)" in shown.output
    assert "u[red]1" in shown.output  # the buyer's id is shown inert, not as markup
    as_order = invoke("--db", str(db), "show", first.id)
    assert sub.id in as_order.output
    as_buyer = invoke("--db", str(db), "show", "--buyer", "u[red]1", "--json")
    data = json.loads(as_buyer.output)
    assert [s["id"] for s in data["subscriptions"]] == [sub.id]
    assert sorted(e["sku"] for e in data["entitlements"]) == ["club", "no_ads"]
    expiring = {e["sku"]: e["expires_at"] for e in data["entitlements"]}
    assert expiring["no_ads"] is None and expiring["club"].startswith(grace.date().isoformat())
