"""How ``iap-flow show`` lays out a record and what belongs to it, every cell inert."""

from __future__ import annotations

from typing import Any

import attrs
from rich.console import Console

from iap_flow.cli.output import inert, table, when

_HIDDEN = {"messages"}


def _fields(title: str, record: Any) -> Any:
    pairs = (
        [(f.name, getattr(record, f.name)) for f in attrs.fields(type(record))]
        if attrs.has(type(record))
        else list(record.items())
    )
    rows: list[list[object]] = [
        [name, value] for name, value in pairs if name not in _HIDDEN and value is not None
    ]
    return table("field", "value", rows=rows, show_header=False, title=title, title_justify="left")


def print_record(out: Console, data: dict[str, Any]) -> None:
    """Print what :func:`iap_flow.cli.reads.show` gathered."""
    for key in ("order", "refund", "ticket", "subscription"):
        if key in data:
            out.print(_fields(key, data[key]))
    if "buyer" in data:
        out.print(f"buyer {inert(data['buyer'])}")
    if "orders" in data:
        rows: list[list[object]] = [
            [o.id, o.sku, o.amount, o.status, when(o.created_at)] for o in data["orders"]
        ]
        out.print(
            table(
                "order",
                "product",
                "amount",
                "status",
                "created (UTC)",
                rows=rows,
                title="orders",
                title_justify="left",
            )
        )
        if data.get("more_orders"):
            out.print(f"more orders: iap-flow orders --user ... --cursor {data['more_orders']}")
    _subscriptions(out, data)
    for key in ("renewals",):
        if key in data:
            rows = [[o.id, o.amount, o.status, when(o.created_at)] for o in data[key]]
            out.print(
                table(
                    "order",
                    "amount",
                    "status",
                    "created (UTC)",
                    rows=rows,
                    title=key,
                    title_justify="left",
                )
                if rows
                else f"{key}: none"
            )
    if "refunds" in data:
        rows = [[r.id, r.amount, r.status, r.reason, when(r.created_at)] for r in data["refunds"]]
        out.print(
            table(
                "refund",
                "amount",
                "status",
                "reason",
                "created (UTC)",
                rows=rows,
                title="refunds",
                title_justify="left",
            )
            if rows
            else "refunds: none"
        )
    if "tickets" in data:
        rows = [
            [
                t["id"],
                f"{t['rating']} ({t['reason']})" if t["reason"] else t["rating"],
                t["status"],
                t["body"],
                when(t["created_at"]),
            ]
            for t in data["tickets"]
        ]
        out.print(
            table(
                "ticket",
                "rating",
                "status",
                "feedback",
                "created (UTC)",
                rows=rows,
                title="tickets",
                title_justify="left",
            )
            if rows
            else "tickets: none"
        )
    if "replies" in data:
        rows = [[when(m.created_at), m.author_id, m.role, m.body] for m in data["replies"]]
        out.print(
            table(
                "at (UTC)",
                "author",
                "role",
                "message",
                rows=rows,
                title="replies",
                title_justify="left",
            )
            if rows
            else "replies: none"
        )
    if data.get("deadlines"):
        rows = [[d.kind, when(d.due_at), d.state] for d in data["deadlines"]]
        out.print(
            table(
                "deadline",
                "due (UTC)",
                "state",
                rows=rows,
                title="open deadlines",
                title_justify="left",
            )
        )
    if "history" in data:
        rows = [
            [when(e.at), e.event, e.from_state or "-", e.to_state, e.actor_id, e.role]
            for e in data["history"]
        ]
        out.print(
            table(
                "at (UTC)",
                "event",
                "from",
                "to",
                "actor",
                "role",
                rows=rows,
                title="audit trail",
                title_justify="left",
            )
        )


def _subscriptions(out: Console, data: dict[str, Any]) -> None:
    """The buyer's subscriptions and what they may use now (entitlements)."""
    if "subscriptions" in data:
        rows: list[list[object]] = [
            [
                s.id,
                s.sku,
                s.status,
                when(s.period_end),
                "-" if s.grace_until is None else when(s.grace_until),
                "on" if s.auto_renew else "off",
                s.pending_sku or "-",
            ]
            for s in data["subscriptions"]
        ]
        columns = ("subscription", "plan", "status", "period end (UTC)", "grace until (UTC)")
        out.print(
            table(
                *columns,
                "auto-renew",
                "next plan",
                rows=rows,
                title="subscriptions",
                title_justify="left",
            )
            if rows
            else "subscriptions: none"
        )
    if "entitlements" in data:
        rows = [
            [
                e.sku,
                e.kind,
                "no end" if e.expires_at is None else when(e.expires_at),
                e.units,
                e.subscription_status or "-",
                e.source_order_id,
            ]
            for e in data["entitlements"]
        ]
        out.print(
            table(
                "product",
                "kind",
                "until (UTC)",
                "units",
                "subscription",
                "from order",
                rows=rows,
                title="entitlements (now)",
                title_justify="left",
            )
            if rows
            else "entitlements (now): none"
        )
