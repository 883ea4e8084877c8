"""The CLI as on-call uses it: safe store opening, inert buyer text, JSON, staff write commands."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from iap_flow import Actor, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sqlite_schema import SCHEMA_VERSION
from iap_flow.cli import cli
from iap_flow.cli.output import decode_cursor, encode_cursor, inert, neutral
from iap_flow.domain.roles import SYSTEM

PM = Actor("pm", "product_manager")
EVIL = "evil[/]"
FAKE_ADMIN = "[bold red]ADMIN[/]"
ESCAPES = "fine \x1b[2J\x1b]0;pwned\x07 \u202eevil\x9b"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def one_line(result: Result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """A store with hostile buyer text, a refund in review, a failed payout and a ticket."""
    db = tmp_path / "ops.db"
    with open_flow(f"sqlite:///{db}", notifier=MemoryNotifier(), deliver_inline=False) as flow:
        for sku, price in (("gems", Money(199, "USD")), ("big", Money(9_999, "USD"))):
            flow.catalogue.add(
                PM, sku=sku, title=sku, description="-", price=price, kind="consumable"
            )
        evil = Actor.buyer(EVIL)
        order = flow.orders.place(evil, "gems")
        flow.orders.pay(evil, order.id, token="tok_approve")
        refund = flow.refunds.request(evil, order.id, reason=FAKE_ADMIN + " wants money back")
        ticket = flow.feedback.submit(
            evil,
            rating=1,
            body="placeholder",
            order_id=order.id,
            priority="high",
            reason="slow_delivery",
        )
        flow.feedback.answer(Actor.agent("ana"), ticket.id, body="Sorry " + FAKE_ADMIN)
        admin = Actor.buyer(FAKE_ADMIN)
        big = flow.orders.place(admin, "big")
        flow.orders.pay(admin, big.id, token="tok_refund_fails")
        big_refund = flow.refunds.request(admin, big.id, reason="too expensive for me")
        failing = flow.orders.place(admin, "gems")
        flow.orders.pay(admin, failing.id, token="tok_refund_fails")
        failed = flow.refunds.request(admin, failing.id, reason="the refund that fails")
        flow.refunds.approve(Actor.lead("lin"), failed.id)
    # The API refuses control characters now; rows written before that rule, or by another
    # writer, may still hold them: the CLI must show them inert all the same.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tickets SET body = ? WHERE id = ?", (ESCAPES, ticket.id))
        conn.execute(
            "UPDATE refunds SET reason = ? WHERE id = ?",
            (FAKE_ADMIN + " wants money " + ESCAPES, refund.id),
        )
    return {
        "db": str(db),
        "order": order.id,
        "refund": refund.id,
        "ticket": ticket.id,
        "big_refund": big_refund.id,
        "failed": failed.id,
    }


def test_a_missing_store_is_refused_and_never_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = tmp_path / "typo.bd"
    for command in (["orders"], ["sweep"], ["refunds"], ["show", "ord_1"], ["deadlines"]):
        result = invoke("--db", str(typo), *command)
        assert result.exit_code == 2, (command, result.output)
        assert "no iap-flow store at" in one_line(result) and "init" in result.output
    assert not typo.exists()
    monkeypatch.chdir(tmp_path)
    default = invoke("orders")
    assert default.exit_code == 2 and not (tmp_path / "iap_flow.db").exists()


def test_a_foreign_or_broken_file_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    before = other.read_bytes()
    for command in (["orders"], ["init"], ["migrate"], ["demo", "--days", "1", "--buyers", "1"]):
        result = invoke("--db", str(other), *command)
        assert result.exit_code == 2, (command, result.output)
        assert "another application" in one_line(result)
    assert other.read_bytes() == before
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["photos"]
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n")
    result = invoke("--db", str(text), "orders")
    assert result.exit_code == 2 and "is not an SQLite database" in one_line(result)


def test_init_and_migrate_are_explicit(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    created = invoke("--db", str(db), "init")
    assert created.exit_code == 0 and f"schema version {SCHEMA_VERSION}" in created.output
    assert invoke("--db", str(db), "orders").output.strip() == "no orders match"
    again = invoke("--db", str(db), "init")
    assert again.exit_code == 2 and "already holds an iap-flow store" in one_line(again)
    current = invoke("--db", str(db), "migrate")
    assert current.exit_code == 0 and "nothing to do" in current.output
    missing = invoke("--db", str(tmp_path / "none.db"), "migrate")
    assert missing.exit_code == 2 and not (tmp_path / "none.db").exists()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),)
        )
    old = invoke("--db", str(db), "orders")
    assert old.exit_code == 2 and "run `iap-flow --db ... migrate`" in one_line(old)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    new = invoke("--db", str(db), "orders")
    assert new.exit_code == 2 and "upgrade iap-flow" in one_line(new)


def test_buyer_text_is_shown_inert(store: dict[str, str]) -> None:
    db = store["db"]
    listed = invoke("--db", db, "orders")
    assert listed.exit_code == 0, listed.output
    assert EVIL in listed.output and FAKE_ADMIN in listed.output
    for command in (["show", store["order"]], ["show", store["ticket"]], ["refunds"], ["tickets"]):
        result = invoke("--db", db, *command)
        assert result.exit_code == 0, (command, result.output)
        assert "\x1b" not in result.output and "\x9b" not in result.output, command
        assert "\u202e" not in result.output and "\x07" not in result.output, command
    shown = invoke("--db", db, "show", store["ticket"])
    assert "\\x1b[2J" in shown.output and "\\u202e" in shown.output
    assert "Sorry " + FAKE_ADMIN in shown.output, "the reply is listed, markup as typed"
    assert neutral("a\x1b[31mb") == "a\\x1b[31mb" and inert("[b]x[/b]") == "\\[b]x\\[/b]"


def test_every_read_command_speaks_json(store: dict[str, str]) -> None:
    db = store["db"]
    orders = json.loads(invoke("--db", db, "orders", "--json").output)
    assert {o["user_id"] for o in orders["orders"]} == {EVIL, FAKE_ADMIN}
    assert orders["orders"][0]["amount"]["currency"] == "USD" and orders["next_cursor"] is None
    refunds = json.loads(invoke("--db", db, "refunds", "--json").output)
    assert {r["id"] for r in refunds["refunds"]} == {store["refund"], store["big_refund"]}
    tickets = json.loads(invoke("--db", db, "tickets", "--status", "answered", "--json").output)
    assert tickets["tickets"][0]["body"] == ESCAPES
    shown = json.loads(invoke("--db", db, "show", store["order"], "--json").output)
    assert [r["id"] for r in shown["refunds"]] == [store["refund"]]
    assert [t["id"] for t in shown["tickets"]] == [store["ticket"]]
    assert [e["event"] for e in shown["history"]][:2] == ["place", "pay"]
    ticket = json.loads(invoke("--db", db, "show", store["ticket"], "--json").output)
    assert [m["author_id"] for m in ticket["replies"]][-1] == "ana"
    buyer = json.loads(invoke("--db", db, "show", "--buyer", FAKE_ADMIN, "--json").output)
    assert len(buyer["orders"]) == 2 and len(buyer["refunds"]) == 2
    due = json.loads(invoke("--db", db, "deadlines", "--within", "2d", "--json").output)
    assert {d["subject_id"] for d in due["deadlines"]} >= {store["refund"], store["big_refund"]}
    waiting = json.loads(invoke("--db", db, "notify", "list", "--json").output)
    assert waiting["pending"] == len(waiting["items"]) > 0
    raw = invoke("--db", db, "orders", "--json").output
    assert raw.isascii(), "JSON is ASCII-escaped: no raw control character reaches a terminal"


def test_lists_say_when_there_is_more(store: dict[str, str]) -> None:
    db = store["db"]
    cut = invoke("--db", db, "refunds", "--limit", "1")
    assert "showing the first 1; more refunds match" in cut.output and "at most 1000" in cut.output
    whole = invoke("--db", db, "refunds", "--limit", "5")
    assert "more refunds" not in whole.output
    page = invoke("--db", db, "orders", "--limit", "1")
    assert "more orders: --cursor c1." in page.output
    assert decode_cursor(encode_cursor("2026-01-01|ord_1")) == "2026-01-01|ord_1"
    soon = invoke("--db", db, "deadlines", "--within", "1m")
    assert soon.exit_code == 0 and "no open deadline due within 1m" in soon.output
    bad = invoke("--db", db, "deadlines", "--within", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_on_call_decides_as_a_configured_staff_actor_and_is_audited(store: dict[str, str]) -> None:
    db = store["db"]
    anonymous = invoke("--db", db, "approve", store["refund"])
    assert anonymous.exit_code == 2 and "--actor" in one_line(anonymous)
    agent = {"IAP_FLOW_ACTOR": "ana:support_agent"}
    over = invoke("--db", db, "approve", store["big_refund"], env=agent)
    assert over.exit_code == 1 and "limit" in one_line(over)
    approved = invoke("--db", db, "approve", store["refund"], "--note", "ok", env=agent)
    assert approved.exit_code == 0, approved.output
    assert "now refunded" in approved.output
    rejected = invoke(
        "--db", db, "--actor", "lin:support_lead", "reject", store["big_refund"],
        "--reason", "Outside the refund window for this product",
    )  # fmt: skip
    assert rejected.exit_code == 0 and "now rejected" in rejected.output
    again = invoke(
        "--db",
        db,
        "--actor",
        "lin:support_lead",
        "reject",
        store["big_refund"],
        "--reason",
        "Again and again",
    )
    assert again.exit_code == 1 and "reject" in one_line(again)
    trail = json.loads(invoke("--db", db, "show", store["refund"], "--json").output)["history"]
    assert ("approve", "ana", "support_agent") in {
        (e["event"], e["actor_id"], e["role"]) for e in trail
    }
    buyer_role = invoke("--db", db, "--actor", "x:buyer", "approve", store["refund"])
    assert buyer_role.exit_code == 1 and "may not" in one_line(buyer_role)
    bad_role = invoke("--db", db, "--actor", "x:wizard", "approve", store["refund"])
    assert bad_role.exit_code == 2 and "ID:ROLE" in one_line(bad_role)


def test_on_call_grants_part_of_a_refund(store: dict[str, str]) -> None:
    db, agent = store["db"], {"IAP_FLOW_ACTOR": "ana:support_agent"}
    zero = invoke("--db", db, "approve", store["big_refund"], "--amount", "0", env=agent)
    assert zero.exit_code == 2 and "--amount" in zero.output
    # 99.99 USD is above the agent's limit; 10.00 of it is not
    part = invoke(
        "--db", db, "approve", store["big_refund"], "--amount", "1000", "--json", env=agent
    )
    assert part.exit_code == 0, part.output
    refund = json.loads(part.output)["refund"]
    assert refund["amount"] == {"amount": 1000, "currency": "USD"}
    assert refund["status"] == "refunded"
    shown = json.loads(invoke("--db", db, "show", refund["order_id"], "--json").output)
    assert shown["order"]["status"] == "partially_refunded"


def test_on_call_resubmits_payouts_and_delivers_notifications(
    store: dict[str, str], tmp_path: Path
) -> None:
    db = store["db"]
    dev = {"IAP_FLOW_ACTOR": "dana:developer"}
    failed = json.loads(invoke("--db", db, "show", store["failed"], "--json").output)["refund"]
    assert failed["status"] == "failed"
    retried = invoke("--db", db, "payout", store["failed"], env=dev)
    assert retried.exit_code == 0 and "now refunded" in retried.output, retried.output
    trail = json.loads(invoke("--db", db, "show", store["failed"], "--json").output)["history"]
    assert [e["actor_id"] for e in trail if e["event"] == "submit"][-1] == "dana"
    listed = invoke("--db", db, "notify", "list")
    assert "waiting, oldest" in listed.output
    notes = tmp_path / "sent.jsonl"
    agent = invoke("--db", db, "--actor", "ana:support_agent", "notify", "deliver")
    assert agent.exit_code == 1 and "may not outbox.deliver" in one_line(agent)
    sent = invoke("--db", db, "notify", "deliver", "--notifications", str(notes), env=dev)
    assert sent.exit_code == 0 and "still waiting" in sent.output
    assert len(notes.read_text().splitlines()) > 0
    # What is left is the staff's: with no configured destination for them the CLI leaves
    # them in the outbox for the Slack bot, never marked delivered into the buyers' file.
    left = invoke("--db", db, "notify", "list", "--json")
    waiting = json.loads(left.output)
    rows = waiting["items"]
    assert rows and {row["audience"] for row in rows} == {"staff"}, left.output


def test_a_missing_folder_or_extra_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iap_flow.cli import commands

    plugin = commands.Plugin(
        "iap_flow.cli.commands:cli", "slack", "x", ("iap_flow_no_such_module",)
    )
    monkeypatch.setitem(commands.PLUGINS, "slacky", plugin)
    result = invoke("slacky")
    assert result.exit_code == 2 and "pip install 'iap-flow[slack]'" in one_line(result)
    notes = tmp_path / "nowhere" / "n.jsonl"
    demo = invoke("demo", "--db", str(tmp_path / "d.db"), "--notifications", str(notes))
    assert demo.exit_code == 2 and "does not exist" in one_line(demo)
    assert not (tmp_path / "d.db").exists()


def test_commands_log_structured_lines(store: dict[str, str]) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "--log-format",
            "json",
            "--log-level",
            "info",
            "--db",
            store["db"],
            "show",
            store["order"],
        ],
    )
    assert result.exit_code == 0
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert logs[-1]["command"] == "show" and logs[-1]["outcome"] == "ok"
    assert logs[-1]["record_id"] == store["order"] and logs[-1]["duration_ms"] >= 0
    refused = CliRunner().invoke(
        cli,
        ["--log-format", "json", "--log-level", "info", "--db", store["db"], "show", "ord_NOPE"],
    )
    last = json.loads(refused.stderr.strip().splitlines()[-1])
    assert last["outcome"] == "refused" and last["error"] == "NotFound"
    quiet = CliRunner().invoke(cli, ["--db", store["db"], "orders"])
    assert quiet.stderr == "", "no log lines below the warning level by default"


def test_system_sweep_is_json_too(store: dict[str, str]) -> None:
    result = invoke("--db", store["db"], "sweep", "--json")
    assert set(json.loads(result.output)) == {
        "expired",
        "reminded",
        "escalated",
        "retried",
        "delivered",
    }
    assert SYSTEM.id == "system"


def test_show_of_a_subscription_lists_its_renewals(tmp_path: Path) -> None:
    db = tmp_path / "sub.db"
    with open_flow(f"sqlite:///{db}", notifier=MemoryNotifier()) as flow:
        flow.catalogue.add(
            PM,
            sku="vip",
            title="VIP",
            description="-",
            price=Money(999, "USD"),
            kind="subscription",
            period="month",
        )
        buyer = Actor.buyer("u_sub")
        first = flow.orders.place(buyer, "vip")
        flow.orders.pay(buyer, first.id, token="tok_approve")
        renewal = flow.orders.renew(SYSTEM, first.id, token="tok_approve")
    shown = json.loads(invoke("--db", str(db), "show", first.id, "--json").output)
    assert [o["id"] for o in shown["renewals"]] == [renewal.id]
    table = invoke("--db", str(db), "show", first.id).output
    assert "renewals" in table and renewal.id in table


_PROBE = """
import logging, sys
from iap_flow.cli import cli
import iap_flow.cli.webhooks as hooks

def opened(*args, **kwargs):  # stands in for opening the flow: warn as a component would
    logging.getLogger("iap_flow.probe").warning("printed once")
    sys.exit(3)

hooks.open_flow_from_config = opened
cli(["--db", "sqlite:///nothing.db", "webhooks", "--log-level", "info"])
"""


def test_the_webhooks_server_prints_each_warning_once(tmp_path: Path) -> None:
    """Its --log-level opens the iap_flow handler further; it adds no root handler through
    which every (propagating) iap_flow record would print a second time."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("printed once") == 1, done.stderr


def test_a_ticket_shows_its_service_level_and_why_it_was_rated_badly(
    store: dict[str, str],
) -> None:
    db = store["db"]
    shown = invoke("--db", db, "show", store["ticket"])
    assert shown.exit_code == 0, shown.output
    for text in ("slow_delivery", "high", "first_response_due", "resolution_due"):
        assert text in shown.output
    listed = invoke("--db", db, "tickets", "--status", "answered")
    assert "1 (slow_delivery)" in listed.output
    data = json.loads(invoke("--db", db, "show", store["ticket"], "--json").output)["ticket"]
    assert (data["rating"], data["reason"], data["priority"], data["level"]) == (
        1,
        "slow_delivery",
        "high",
        0,
    )
    assert data["first_response_due"] is not None
