"""The part of the process document every department reads: steps in plain words, swimlanes
by role, time limits as "within 24 h, else the lead is told", in English or Chinese.

Steps, roles and limits come from the permission table, the deadline table and the policy;
only the words (:mod:`iap_flow.cli.process_words`) and the swimlane layout are written here,
and a test checks each swimlane node against the roles allowed to take that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import attrs

from iap_flow.cli import process_levels
from iap_flow.cli import process_words as w
from iap_flow.cli.process_levels import table as _table
from iap_flow.cli.process_levels import when
from iap_flow.domain.deadlines import RULES, DeadlineRule
from iap_flow.domain.money import Money
from iap_flow.domain.policy import Policy
from iap_flow.domain.roles import PERMISSIONS, Role
from iap_flow.domain.transitions import TABLES


@attrs.frozen
class Node:
    action: str
    lane: Role
    column: int
    also: str | None = None
    """A second step taken at the same place (approve or reject)."""


@attrs.frozen
class Lane:
    """One swimlane diagram: nodes by role and column, edges (dashed ones wait on a deadline)."""

    phase: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int, str | None], ...]
    """``(from node, to node, deadline kind or None)``."""


B, S, AG, LD, PM = (
    Role.BUYER,
    Role.SYSTEM,
    Role.SUPPORT_AGENT,
    Role.SUPPORT_LEAD,
    Role.PRODUCT_MANAGER,
)
SWIMLANES: tuple[Lane, ...] = (
    Lane(
        "order",
        (
            Node("product.create", PM, 0),
            Node("order.place", B, 1),
            Node("order.pay", B, 2),
            Node("order.expire", S, 2),
            Node("order.deliver", S, 4),
            Node("order.complete", B, 5),
            Node("order.escalate", S, 3),
        ),
        (
            (0, 1, None),
            (1, 2, None),
            (1, 3, "order_payment"),
            (2, 4, None),
            (4, 5, None),
            (2, 6, "order_delivery"),
            (6, 4, None),
        ),
    ),
    Lane(
        "refund",
        (
            Node("refund.request", B, 0),
            Node("refund.open_review", S, 1),
            Node("refund.approve", AG, 2, also="refund.reject"),
            Node("refund.escalate", S, 2),
            Node("refund.approve", LD, 3, also="refund.reject"),
            Node("refund.submit", S, 3),
            Node("refund.confirm", S, 4),
            Node("order.refund", S, 5),
        ),
        (
            (0, 1, None),
            (1, 2, None),
            (1, 3, "refund_review"),
            (3, 4, None),
            (2, 5, None),
            (4, 5, None),
            (5, 6, "refund_retry"),
            (6, 7, None),
        ),
    ),
    Lane(
        "ticket",
        (
            Node("ticket.submit", B, 0),
            Node("ticket.answer", AG, 1),
            Node("ticket.escalate", S, 1),
            Node("ticket.answer", LD, 2),
            Node("ticket.resolve", B, 3),
            Node("ticket.reopen", B, 4),
            Node("ticket.ask_buyer", AG, 2),
            Node("ticket.buyer_reply", B, 2),
        ),
        (
            (0, 1, None),
            (0, 2, "ticket_first_response"),
            (2, 3, None),
            (1, 4, None),
            (3, 4, None),
            (4, 5, None),
            (5, 1, None),
            (1, 6, None),
            (6, 7, None),
            (7, 1, None),
        ),
    ),
)
"""The main paths of the process, by role. Every node's role may take its step."""


def limit_phrase(rule: DeadlineRule, policy: Policy, lang: str) -> str:
    """``within 24 h (a reminder at 18 h), else the lead is told``."""
    window = policy.window(rule.kind)
    text = w.word(w.TEXT, "within", lang).format(window=when(window, lang))
    if rule.reminds:
        at = when(window * policy.remind_at_fraction, lang)
        text += " (" + w.word(w.TEXT, "reminder", lang).format(at=at) + ")"
    consequence = {"escalate": "else_lead", "expire": "else_expire", "submit": "else_retry"}
    consequence |= {"answer_platform": "else_policy_answer", "acknowledge": "else_acknowledge"}
    consequence |= {"subscription.expire": "else_sub_expire", "subscription.hold": "else_hold"}
    consequence |= {"ticket_escalation": "else_manager"}
    key = (
        consequence.get(rule.kind.value)
        or consequence.get(f"{rule.aggregate}.{rule.on_due}")
        or consequence[rule.on_due]
    )
    comma = "\uff0c" if lang == "zh" else ", "  # a full-width comma in Chinese
    return text + comma + w.word(w.TEXT, key, lang)


FULFILLED_BY: dict[str, tuple[str, ...]] = {
    "order_payment": ("order.pay",),
    "order_delivery": ("order.deliver",),
    "ticket_escalation": ("ticket.resolve",),
    "refund_review": ("refund.approve", "refund.reject"),
    "refund_retry": ("refund.confirm",),
    "ticket_first_response": ("ticket.answer",),
    "ticket_resolution": ("ticket.resolve",),
    # A renewal opens the next period's deadline itself: no step ends this one as intended.
    "subscription_period_end": (),
    "subscription_grace_end": ("subscription.renew", "subscription.recover"),
    "subscription_hold_end": ("subscription.renew", "subscription.recover"),
    # The sweep answers or acknowledges itself (a platform call, no machine event); the
    # platform's own decision ends a review's answer.
    "review_answer": ("refund.platform_refund",),
    "purchase_acknowledge": (),
}
"""Deadline kind -> the steps that meet it as intended (a test checks each ends the deadline)."""


def _rules_for(action: str) -> list[DeadlineRule]:
    """The time limits a step is there to meet."""
    return [rule for rule in RULES if action in FULFILLED_BY[rule.kind.value]]


def _roles(action: str, lang: str) -> str:
    sep = "、" if lang == "zh" else ", "
    return sep.join(w.word(w.ROLES, r.value, lang) for r in Role if r in PERMISSIONS[action])


def _moves(action: str, lang: str) -> str:
    machine, _, event = action.partition(".")
    if machine not in TABLES:  # products have no machine: the step changes the catalogue
        return w.word(w.TEXT, "catalogue", lang)
    table = TABLES[machine]
    name = w.word(w.MACHINES, machine, lang)
    if event not in table.events:
        return f"{name}{w.PUNCT[lang][':']}→ {w.word(w.STATES, f'{machine}.{table.initial}', lang)}"
    pairs = [(s, t) for (s, e), t in table.targets.items() if e == event]
    sep = "\uff1b" if lang == "zh" else "; "  # a full-width semicolon in Chinese
    return f"{name}{w.PUNCT[lang][':']}" + sep.join(
        f"{w.word(w.STATES, f'{machine}.{s}', lang)} → {w.word(w.STATES, f'{machine}.{t}', lang)}"
        for s, t in pairs
    )


def guide(policy: Policy, lang: str, steps: Sequence[str]) -> list[str]:
    """The departments' part of the document, as Markdown lines."""

    def t(key: str) -> str:
        return w.word(w.TEXT, key, lang)

    out = [f"# {t('title')}", "", t("intro"), "", f"## {t('steps')}", ""]
    steps = [*(a for a in PERMISSIONS if a.startswith("product.")), *steps]
    for phase in w.PHASES:
        out += [f"### {w.word(w.PHASES, phase, lang)}", ""]
        mine = [a for a in steps if a.split(".")[0] == phase]
        p = w.PUNCT[lang]
        for n, action in enumerate(mine, 1):
            limits = p[";"].join(limit_phrase(r, policy, lang) for r in _rules_for(action))
            line = (
                f"{n}. **{w.word(w.STEPS, action, lang)}**{p['(']}{_roles(action, lang)}{p[')']}"
                f"{p[':']}{_moves(action, lang)}{p['.']}"
            )
            out.append(line + (f" {t('limit')}{p[':']}{limits}{p['.']}" if limits else ""))
        out.append("")
    out += [f"## {t('swimlanes')}", ""]
    for lane in SWIMLANES:
        out += [
            f"### {w.word(w.PHASES, lane.phase, lang)}",
            "",
            "```mermaid",
            *mermaid(lane, policy, lang),
            "```",
            "",
        ]
    out += [f"## {t('limits')}", ""]
    rows = [
        (
            w.word(w.LIMIT_WHAT, r.kind.value, lang),
            w.word(w.ROLES, r.owner.value, lang),
            limit_phrase(r, policy, lang),
        )
        for r in RULES
    ]
    out += _table((t("step"), t("who"), t("limit")), rows)
    limits = (
        ", ".join(str(Money(a, c)) for c, a in sorted(policy.agent_refund_limits.items())) or "-"
    )
    out += [t("agent_limit").format(limits=limits), ""]
    out += process_levels.service_levels(policy, lang)
    out += [f"## {t('roles')}", ""]
    sep = "、" if lang == "zh" else ", "
    role_rows = [
        (
            w.word(w.ROLES, r.value, lang),
            sep.join(w.word(w.STEPS, a, lang) for a in PERMISSIONS if r in PERMISSIONS[a]) or "-",
        )
        for r in Role
    ]
    out += _table((t("who"), t("may")), role_rows)
    out += [f"## {t('states')}", ""]
    state_rows = [
        (w.word(w.MACHINES, m, lang), f"`{s}`", w.word(w.STATES, f"{m}.{s}", lang))
        for m, table in TABLES.items()
        for s in table.states
    ]
    out += _table((t("machine"), t("status"), t("name")), state_rows)
    return out


def label(node: Node, lang: str) -> str:
    """What a swimlane box says: its step, or both steps taken there."""
    if node.also:
        return w.word(w.TEXT, "decide", lang)
    return w.word(w.STEPS, node.action, lang)


def wrap(text: str, lang: str, width: int = 19) -> list[str]:
    """Lines short enough for a swimlane box (Chinese by characters, English by words)."""
    width = width // 2 if lang == "zh" else width
    if lang == "zh":
        return [text[i : i + width] for i in range(0, len(text), width)][:3]
    lines: list[str] = []
    for part in text.split():
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return lines[:3]


def _lines(x: float, y: float, lines: list[str], **attributes: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attributes.items())
    top = y + 4 - 7 * (len(lines) - 1)
    spans = "".join(
        f'<tspan x="{x:.0f}" y="{top + 14 * i:.0f}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return f"<text{extra}>{spans}</text>"


def _node_id(node: Node) -> str:
    return f"{node.lane.value}_{node.action.replace('.', '_')}"


def mermaid(lane: Lane, policy: Policy, lang: str) -> list[str]:
    """A Mermaid flowchart with one subgraph (swimlane) per role."""
    out = ["flowchart LR"]
    for role in Role:
        mine = [n for n in lane.nodes if n.lane is role]
        if not mine:
            continue
        out.append(f'  subgraph {role.value}["{w.word(w.ROLES, role.value, lang)}"]')
        out += [f'    {_node_id(n)}["{label(n, lang)}"]' for n in mine]
        out.append("  end")
    for a, b, kind in lane.edges:
        left, right = _node_id(lane.nodes[a]), _node_id(lane.nodes[b])
        if kind is None:
            out.append(f"  {left} --> {right}")
        else:
            rule = next(r for r in RULES if r.kind.value == kind)
            out.append(f'  {left} -. "{when(policy.window(rule.kind), lang)}" .-> {right}')
    return out


def svg(lane: Lane, policy: Policy, lang: str) -> str:
    """The same swimlanes as an inline SVG (the HTML page draws without any script)."""
    roles = [r for r in Role if any(n.lane is r for n in lane.nodes)]
    label_w, col_w, row_h, box_w, box_h = 100, 150, 70, 136, 50
    columns = max(n.column for n in lane.nodes) + 1
    width, height = label_w + columns * col_w + 10, len(roles) * row_h + 2
    centre = {
        i: (label_w + n.column * col_w + col_w / 2, roles.index(n.lane) * row_h + row_h / 2)
        for i, n in enumerate(lane.nodes)
    }
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"'
        ' fill="#4b6584"/></marker></defs>'
    ]
    for i, role in enumerate(roles):
        fill = "#f5f6fa" if i % 2 == 0 else "#ffffff"
        body.append(
            f'<rect x="0" y="{i * row_h}" width="{width}" height="{row_h}" fill="{fill}" stroke="#dfe6e9"/>'
        )
        name = wrap(w.word(w.ROLES, role.value, lang), lang, width=13)
        body.append(_lines(8, i * row_h + row_h / 2, name, font_weight="bold"))
    for a, b, kind in lane.edges:
        (x1, y1), (x2, y2) = centre[a], centre[b]
        dx = box_w / 2 if x2 > x1 else -box_w / 2 if x2 < x1 else 0
        dy = 0 if dx else (box_h / 2 if y2 > y1 else -box_h / 2)
        dash = ' stroke-dasharray="5,4"' if kind else ""
        body.append(
            f'<line x1="{x1 + dx:.0f}" y1="{y1 + dy:.0f}" x2="{x2 - dx:.0f}" y2="{y2 - dy:.0f}"'
            f' stroke="#4b6584" stroke-width="1.5" marker-end="url(#arrow)"{dash}/>'
        )
        if kind:
            rule = next(r for r in RULES if r.kind.value == kind)
            waited = when(policy.window(rule.kind), lang)
            body.append(
                f'<text x="{(x1 + x2) / 2 + 4:.0f}" y="{(y1 + y2) / 2 - 4:.0f}" fill="#eb3b5a"'
                f' font-size="11">{escape(waited)}</text>'
            )
    for i, node in enumerate(lane.nodes):
        x, y = centre[i]
        body.append(
            f'<rect x="{x - box_w / 2:.0f}" y="{y - box_h / 2:.0f}" width="{box_w}" height="{box_h}"'
            ' rx="6" fill="#d6e4ff" stroke="#3867d6"/>'
        )
        body.append(
            _lines(x, y, wrap(label(node, lang), lang), text_anchor="middle", font_size="11")
        )
    title = escape(w.word(w.PHASES, lane.phase, lang))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" font-family="system-ui, sans-serif"'
        f' font-size="12"><title>{title}</title>' + "".join(body) + "</svg>"
    )
