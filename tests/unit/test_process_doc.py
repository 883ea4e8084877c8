"""The process document says what the code enforces: machines, steps, roles, time limits."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

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
    blocks = [b for b in doc.split("```mermaid\n")[1:] if b.startswith("stateDiagram")]
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


# -- the departments' part: plain words, swimlanes, limits, Chinese ---------------------------
from iap_flow.cli import process_words as words  # noqa: E402
from iap_flow.cli.process_guide import FULFILLED_BY, SWIMLANES, label  # noqa: E402

ORIGINAL = Path("/work/shared/seed/process-original-zh.txt")


def guide_part(doc: str, lang: str) -> str:
    return doc.split(f"# {words.TEXT['reference'][lang]}\n")[0]


def prose(doc: str) -> str:
    """The text without its Mermaid blocks (whose node ids are code)."""
    return re.sub(r"```mermaid\n.*?```", "", doc, flags=re.S)


# The original is in traditional characters, with pinyin after the ambiguous ones: read it
# in simplified characters to compare names.
TRADITIONAL_CHARS = "訂單發貨務處審執饋題數據詢團隊戶確認經師開產買購動應內終體驗費質價錢號統狀態時間審核請種務說為與對現運營優顯尤與頁過詳細點擊應該將臺銷額問"
SIMPLIFIED = "订单发货务处审执馈题数据询团队户确认经师开产买购动应内终体验费质价钱号统状态时间审核请种务说为与对现运营优显尤与页过详细点击应该将台销额问"


def original() -> str:
    if not ORIGINAL.exists():
        return ""
    text = re.sub(r"\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\)", "", ORIGINAL.read_text(encoding="utf-8"))
    return text.translate(str.maketrans(TRADITIONAL_CHARS, SIMPLIFIED))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_state_step_and_role_is_named(lang: str) -> None:
    doc = guide_part(process_document(lang=lang), lang)
    for name, table in TABLES.items():
        for state in table.states:
            assert words.STATES[f"{name}.{state}"][lang] in doc, (name, state)
    for action in PERMISSIONS:
        assert words.STEPS[action][lang] in doc, action
    for role in Role:
        assert words.ROLES[role.value][lang] in doc, role
    assert set(words.STEPS) == set(PERMISSIONS), "no step without a name, no name without a step"


def test_the_chinese_document_speaks_chinese() -> None:
    doc = prose(guide_part(process_document(lang="zh"), "zh"))
    for table in TABLES.values():
        for state in table.states:
            assert f"`{state}`" in doc  # listed once, beside its Chinese name
            assert f" {state} " not in doc and f"→ {state}" not in doc
    assert "refund.open_review" not in doc and "support_lead" not in doc.replace("`", "")
    assert "24 小时内 (18 小时时提醒)，否则通知客服主管" in doc
    assert "30 分钟内，否则订单自动关闭" in doc


def test_chinese_names_follow_the_original_process() -> None:
    text = original()
    named = {
        "order.paid": "已支付",
        "order.awaiting_delivery": "待发货",
        "order.delivered": "已发货",
        "order.completed": "已完成",
        "order.refunded": "已退款",
    }
    for key, zh in named.items():
        assert words.STATES[key]["zh"] == zh
        assert not text or zh in text
    steps = {"order.place": "订单生成", "order.pay": "支付确认", "refund.request": "退款申请"}
    steps |= {"refund.submit": "退款执行", "ticket.submit": "用户反馈", "ticket.answer": "问题处理"}
    steps |= {"report.read": "数据分析", "order.read": "订单查询"}
    for action, zh in steps.items():
        assert words.STEPS[action]["zh"] == zh
        assert not text or zh in text
    for role, zh in {
        "product_manager": "产品经理",
        "developer": "开发团队",
        "data_analyst": "数据分析师",
    }.items():
        assert words.ROLES[role]["zh"] == zh and (not text or zh in text)


def test_time_limits_read_as_within_else() -> None:
    doc = process_document(lang="en")
    assert "within 24 h (a reminder at 18 h), else the lead is told" in doc
    assert "within 30 min, else the order is closed" in doc
    custom = process_document(Policy(refund_review=timedelta(hours=8)), lang="en")
    assert "within 8 h (a reminder at 6 h), else the lead is told" in custom


def test_the_steps_named_for_a_limit_do_end_it() -> None:
    for rule in RULES:
        for action in FULFILLED_BY[rule.kind.value]:
            machine, _, event = action.partition(".")
            table = TABLES[machine]
            moves = [(s, t) for (s, e), t in table.targets.items() if e == event]
            assert any(s in rule.while_in and t not in rule.while_in for s, t in moves), action


def test_swimlanes_put_each_step_in_a_lane_allowed_to_take_it() -> None:
    doc = process_document(lang="en")
    assert doc.count("```mermaid\nflowchart LR") == len(SWIMLANES)
    for lane in SWIMLANES:
        for node in lane.nodes:
            for action in filter(None, (node.action, node.also)):
                assert node.lane in PERMISSIONS[action], (action, node.lane)
            assert label(node, "zh") and label(node, "en")
        for a, b, kind in lane.edges:
            assert 0 <= a < len(lane.nodes) and 0 <= b < len(lane.nodes)
            assert kind is None or kind in {r.kind.value for r in RULES}
