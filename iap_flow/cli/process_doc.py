"""The process document (``iap-flow docs``), generated from the tables the code enforces.

Diagrams come from python-statemachine's own formatter on the machine classes; steps, roles
and time limits from :data:`iap_flow.domain.transitions.TABLES`, :data:`iap_flow.domain.roles.PERMISSIONS`,
:data:`iap_flow.domain.deadlines.RULES` and a :class:`~iap_flow.domain.policy.Policy`. Nothing here lists
states, events or roles by hand, so the document cannot drift from the code.
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import attrs
from statemachine.contrib.diagram import formatter

from iap_flow import services
from iap_flow.domain.deadlines import RULES, DeadlineRule
from iap_flow.domain.machines import MACHINES
from iap_flow.domain.money import Money
from iap_flow.domain.policy import Policy
from iap_flow.domain.roles import OWN_RECORDS_ONLY, PERMISSIONS, Role
from iap_flow.domain.transitions import TABLES


@functools.cache
def creations() -> frozenset[str]:
    """Actions that create a record: those the services pass to ``Context.created``.

    Read from the services' source, so a new way to create an order, refund or ticket shows up
    in the document without anyone listing it.
    """
    folder = Path(inspect.getfile(services)).parent
    found: set[str] = set()
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "created":
                continue
            args = [*node.args, *(k.value for k in node.keywords if k.arg == "action")]
            found.update(
                a.value
                for a in args
                if isinstance(a, ast.Constant)
                and isinstance(a.value, str)
                and a.value in PERMISSIONS
            )
    return frozenset(found)


@attrs.frozen
class Step:
    """One row of the step table: an action that creates a record or fires a machine event."""

    action: str
    machine: str
    transitions: tuple[tuple[str | None, str], ...]
    """``(from, to)`` pairs; ``from`` is None for a creation."""
    roles: tuple[Role, ...]
    time_limit: str


def duration(delta: timedelta) -> str:
    """A time limit as people write it: ``30 min``, ``24 h``, ``1 h 30 min``, ``14 days``.

    >>> duration(timedelta(hours=72)), duration(timedelta(minutes=90)), duration(timedelta(days=14))
    ('72 h', '1 h 30 min', '14 days')
    """
    seconds = int(delta.total_seconds())
    if seconds % 60:
        return f"{seconds} s"
    minutes = seconds // 60
    hours, rest = divmod(minutes, 60)
    if hours >= 168 and hours % 24 == 0 and not rest:
        return f"{hours // 24} days"
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


def _label(rule: DeadlineRule) -> str:
    return rule.kind.value.replace("_", " ")


def _sorted_roles(roles: frozenset[Role]) -> tuple[Role, ...]:
    return tuple(r for r in Role if r in roles)


def _time_limit(
    action: str, transitions: tuple[tuple[str | None, str], ...], policy: Policy
) -> str:
    """What the deadline table says about one step: what it must beat, starts, or is fired by."""
    machine, _, event = action.partition(".")
    roles = PERMISSIONS[action]
    parts: list[str] = []
    for rule in RULES:
        if rule.aggregate != machine:
            continue
        window = policy.window(rule.kind)
        ends_it = any(s in rule.while_in and t not in rule.while_in for s, t in transitions if s)
        if ends_it and rule.owner in roles:
            text = f"{_label(rule)}: within {duration(window)}"
            if rule.reminds:
                text += f" (reminder at {duration(window * policy.remind_at_fraction)})"
            parts.append(f"{text}, else the sweep fires `{machine}.{rule.on_due}`")
        if action in rule.started_by:
            parts.append(f"starts {_label(rule)} ({duration(window)})")
        if event == rule.on_due:
            parts.append(f"by the sweep when {_label(rule)} ({duration(window)}) is due")
    return "; ".join(parts) or "none"


def steps(policy: Policy | None = None) -> list[Step]:
    """Every action that creates a record or fires a machine event, in permission-table order."""
    policy = policy or Policy()
    out: list[Step] = []
    for action in PERMISSIONS:
        machine, _, verb = action.partition(".")
        table = TABLES.get(machine)
        if table is None or (verb not in table.events and action not in creations()):
            continue  # reads and commands that change no state are not steps
        if verb in table.events:
            pairs: tuple[tuple[str | None, str], ...] = tuple(
                (state, table.targets[(state, verb)])
                for state in table.states
                if (state, verb) in table.targets
            )
        else:  # a command that creates the record in the machine's initial state
            pairs = ((None, table.initial),)
        out.append(
            Step(
                action,
                machine,
                pairs,
                _sorted_roles(PERMISSIONS[action]),
                _time_limit(action, pairs, policy),
            )
        )
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _machines() -> list[str]:
    out = ["## State machines", ""]
    for name, machine in MACHINES.items():
        doc = inspect.getdoc(machine) or ""
        out += [f"### {name}: `{machine.__name__}`", "", doc, ""]
        out += ["```mermaid", formatter.render(machine, "mermaid").rstrip(), "```", ""]
        rows = []
        for state in machine.states:
            marks = [m for m, on in (("initial", state.initial), ("final", state.final)) if on]
            rows.append((f"`{state.id}`", str(state.name), ", ".join(marks)))
        out += _table(("state", "name (original status name)", ""), rows)
    return out


def _roles(policy: Policy) -> list[str]:
    step_actions = {step.action for step in steps(policy)}
    rows = []
    for role in Role:
        mine = [a for a, roles in PERMISSIONS.items() if role in roles]
        rows.append(
            (
                f"**{role}**" + (" (own records only)" if role in OWN_RECORDS_ONLY else ""),
                ", ".join(f"`{a}`" for a in mine if a in step_actions) or "-",
                ", ".join(f"`{a}`" for a in mine if a not in step_actions) or "-",
            )
        )
    out = ["## Roles", "", *_table(("role", "steps", "reads and other actions"), rows)]
    limits = _value(policy.agent_refund_limits)
    limit = f"A `{Role.SUPPORT_AGENT}` approves refunds up to {limits}; "
    return [*out, limit + f"above that, a `{Role.SUPPORT_LEAD}` must decide.", ""]


def _value(value: object) -> str:
    """A policy value as people read it: durations in h/min, amount limits as money."""
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, tuple) and all(isinstance(v, timedelta) for v in value):
        return " / ".join(duration(v) for v in value)
    if isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
        return ", ".join(str(Money(a, c)) for c, a in sorted(value.items())) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, tuple):
        return " → ".join(str(v) for v in value)
    if value is None:
        return "none"
    return str(value)


def _deadlines(policy: Policy) -> list[str]:
    rows = []
    for rule in RULES:
        window = policy.window(rule.kind)
        remind = duration(window * policy.remind_at_fraction) if rule.reminds else "-"
        rows.append(
            (
                f"`{rule.kind}`",
                rule.aggregate,
                ", ".join(f"`{a}`" for a in sorted(rule.started_by)),
                ", ".join(f"`{s}`" for s in TABLES[rule.aggregate].states if s in rule.while_in),
                duration(window),
                remind,
                f"`{rule.aggregate}.{rule.on_due}`",
                str(rule.owner),
                rule.summary,
            )
        )
    header = ("deadline", "machine", "started by", "stands while", "limit", "reminder")
    out = ["## Deadlines", ""]
    out += _table((*header, "when due, the sweep fires", "owner", "what"), rows)
    values = [(f"`{f.name}`", _value(getattr(policy, f.name))) for f in attrs.fields(Policy)]
    return [*out, "### Policy in force", "", *_table(("setting", "value"), values)]


def process_document(policy: Policy | None = None, *, lang: str = "en") -> str:
    """The whole process as Markdown: for departments first (plain steps, swimlanes by role,
    time limits, in ``lang``: ``"en"`` or ``"zh"``), then the engineers' reference (state
    diagrams, steps with roles and time limits, deadlines, policy)."""
    from iap_flow.cli.process_guide import guide
    from iap_flow.cli.process_words import TEXT

    policy = policy or Policy()
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be en or zh, got {lang!r}")
    out = guide(policy, lang, [step.action for step in steps(policy)])
    out += [
        f"# {TEXT['reference'][lang]}",
        "",
        "Generated by `iap-flow docs` from the state machines, the permission table, the "
        "deadline table and the policy that the code enforces; do not edit by hand.",
        "",
    ]
    out += _machines()
    rows = []
    for step in steps(policy):
        moves = "<br>".join(f"{s or '(new)'} → {t}" for s, t in step.transitions)
        roles = ", ".join(str(r) for r in step.roles)
        rows.append((f"`{step.action}`", step.machine, moves, roles, step.time_limit))
    out += ["## Steps", ""]
    out += _table(("step", "machine", "from → to", "who may", "time limit"), rows)
    out += _roles(policy) + _deadlines(policy)
    return "\n".join(out).rstrip() + "\n"
