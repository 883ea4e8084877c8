"""The process document says what the code enforces: machines, steps, roles, time limits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from iap_flow import Policy, Role
from iap_flow.cli.process_doc import creations, duration, process_document
from iap_flow.domain.deadlines import RULES
from iap_flow.domain.machines import MACHINES
from iap_flow.domain.roles import PERMISSIONS
from iap_flow.domain.transitions import TABLES


def section(doc: str, title: str) -> str:
    start = doc.index(f"\n## {title}\n")
    ends = [i for i in (doc.find("\n## ", start + 1), doc.find("\n### ", start + 1)) if i > 0]
    return doc[start : min(ends, default=len(doc))]


def rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows keyed by their first cell (backticks stripped)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0].strip("`*")] = cells
    return out


@pytest.fixture(scope="module")
def doc() -> str:
    return process_document()


def test_one_mermaid_diagram_per_machine_with_every_state(doc: str) -> None:
    blocks = doc.split("```mermaid\n")[1:]
    assert len(blocks) == len(MACHINES)
    for block, (name, machine) in zip(blocks, MACHINES.items(), strict=True):
        diagram = block.split("```", 1)[0]
        assert diagram.startswith("stateDiagram-v2")
        for state in TABLES[name].states:
            assert f" as {state}" in diagram, (name, state)
        assert machine.__name__ in doc


def test_original_chinese_status_names_are_kept(doc: str) -> None:
    for name in ("已支付", "已完成", "已退款"):
        assert name in doc
    for machine in MACHINES.values():
        for state in machine.states:
            assert f"| `{state.id}` | {state.name} |" in doc


def test_every_event_is_a_step_with_its_roles_and_moves(doc: str) -> None:
    steps = rows(section(doc, "Steps"))
    for name, table in TABLES.items():
        for event in table.events:
            action = f"{name}.{event}"
            assert action in steps, action
            _, machine, moves, roles, _ = steps[action]
            assert machine == name
            assert roles.split(", ") == [r.value for r in Role if r in PERMISSIONS[action]]
            expected = [f"{s} → {t}" for (s, e), t in table.targets.items() if e == event]
            assert sorted(moves.split("<br>")) == sorted(expected)


def test_creations_start_in_the_initial_state_and_reads_are_not_steps(doc: str) -> None:
    assert {"order.place", "order.renew", "refund.request", "ticket.submit"} <= creations()
    steps = rows(section(doc, "Steps"))
    for action in creations():
        machine = action.split(".")[0]
        assert steps[action][2] == f"(new) → {TABLES[machine].initial}"
    assert steps["order.place"][2] == "(new) → pending_payment"
    assert steps["ticket.submit"][2] == "(new) → open"
    assert "order.read" not in steps and "report.read" not in steps
    roles = section(doc, "Roles")
    for action in PERMISSIONS:
        assert f"`{action}`" in roles, "every action is in the roles table"
    assert "starts order payment (30 min)" in steps["order.place"][4]


def test_time_limits_follow_the_policy() -> None:
    default = rows(section(process_document(), "Steps"))
    assert "within 24 h (reminder at 18 h)" in default["refund.approve"][4]
    assert "refund.escalate" in default["refund.approve"][4]
    assert "within 4 h" in default["ticket.answer"][4]
    custom_policy = Policy(refund_review=timedelta(hours=8), order_payment=timedelta(minutes=45))
    custom_doc = process_document(custom_policy)
    custom = rows(section(custom_doc, "Steps"))
    assert "within 8 h (reminder at 6 h)" in custom["refund.approve"][4]
    assert "24 h" not in custom["refund.reject"][4]
    assert "within 45 min" in custom["order.pay"][4]
    deadlines = rows(section(custom_doc, "Deadlines"))
    assert deadlines["refund_review"][4] == "8 h"


def test_roles_and_deadlines_tables_cover_the_tables(doc: str) -> None:
    roles = rows(section(doc, "Roles"))
    for role in Role:
        key = f"{role}** (own records only)" if role is Role.BUYER else str(role)
        assert key in roles, role
    assert "`refund.approve`" in roles["support_agent"][1]
    assert "`report.read`" in roles["data_analyst"][2]
    assert "50.00 USD" in section(doc, "Roles")
    policy = rows(doc.split("### Policy in force")[1])
    assert policy["refund_review"][1] == "24 h"
    deadlines = rows(section(doc, "Deadlines"))
    for rule in RULES:
        assert rule.kind.value in deadlines
        assert deadlines[rule.kind.value][6] == f"`{rule.aggregate}.{rule.on_due}`"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=30), "30 min"),
        (timedelta(hours=24), "24 h"),
        (timedelta(hours=1, minutes=30), "1 h 30 min"),
        (timedelta(days=14), "14 days"),
        (timedelta(seconds=90), "90 s"),
    ],
)
def test_duration_reads_like_people_write(delta: timedelta, text: str) -> None:
    assert duration(delta) == text
