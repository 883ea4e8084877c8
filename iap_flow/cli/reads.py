"""Read commands: ``orders``, ``refunds``, ``tickets``, ``show``, ``deadlines``.

Each opens an existing store (never creates one), reads as the developer actor ``cli``, shows
buyer text inert, and with ``--json`` prints one JSON document. Lists say when there is
more: ``orders`` pages with an opaque cursor; the queues (at most ``--limit``, 1000) say
"more than N" when they were cut.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click

from iap_flow import observability
from iap_flow.cli.commands import (
    CLI_ACTOR,
    Settings,
    cli,
    json_option,
    since_option,
    until_option,
)
from iap_flow.cli.output import (
    console,
    decode_cursor,
    due,
    emit_json,
    encode_cursor,
    inert,
    period,
    table,
    when,
)
from iap_flow.domain.errors import InvalidInput, NotFound
from iap_flow.domain.models import OrderStatus, RefundStatus, TicketStatus
from iap_flow.flow import Flow
from iap_flow.services.orders import MAX_PAGE

QUEUE_MAX = 1000
"""The most rows ``refunds`` and ``tickets`` print (the services' own maximum)."""


def queue_limit(default: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--limit",
        type=click.IntRange(1, QUEUE_MAX),
        default=default,
        show_default=True,
        help=f"Rows to show, 1 to {QUEUE_MAX}.",
    )


@cli.command()
@click.option("--user", help="Only this buyer's orders.")
@click.option(
    "--status",
    multiple=True,
    type=click.Choice([s.value for s in OrderStatus], case_sensitive=False),
    help="Only orders in this status (repeat for several).",
)
@since_option
@until_option
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    default=20,
    show_default=True,
    help=f"Orders per page, 1 to {MAX_PAGE}.",
)
@click.option("--cursor", help="Continue from a previous page's next cursor (opaque).")
@json_option
@click.pass_obj
def orders(
    settings: Settings,
    user: str | None,
    status: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Orders newest first, filtered by buyer, status and creation time."""
    period(since, until)
    raw_cursor = decode_cursor(cursor)
    with settings.open() as flow:
        page = flow.orders.query(
            CLI_ACTOR,
            user_id=user,
            status=[s.lower() for s in status] or None,
            since=since,
            until=until,
            limit=limit,
            cursor=raw_cursor,
        )
    next_cursor = encode_cursor(page.next_cursor)
    observability.note(rows=len(page.items))
    if as_json:
        emit_json({"orders": page.items, "next_cursor": next_cursor})
        return
    out = console()
    if not page.items:
        out.print("no orders match")
        return
    rows: list[list[object]] = [
        [o.id, o.user_id, o.sku, o.amount, o.status, when(o.created_at), when(o.paid_at)]
        for o in page.items
    ]
    out.print(
        table(
            "order", "user", "product", "amount", "status", "created (UTC)", "paid (UTC)", rows=rows
        )
    )
    if next_cursor:
        out.print(f"more orders: --cursor {next_cursor}")
    else:
        out.print("no more orders")


def _more(out: Any, shown: int, more: bool, what: str) -> None:
    if more:
        out.print(
            f"showing the first {shown}; more {what} match (raise --limit, at most {QUEUE_MAX})"
        )


@cli.command()
@click.option(
    "--status",
    multiple=True,
    type=click.Choice([s.value for s in RefundStatus], case_sensitive=False),
    help="Refund status to list (repeat for several) [default: in_review].",
)
@click.option("--user", help="Only this buyer's refunds.")
@queue_limit(50)
@json_option
@click.pass_obj
def refunds(
    settings: Settings, status: tuple[str, ...], user: str | None, limit: int, as_json: bool
) -> None:
    """The refund review queue: soonest review deadline first."""
    with settings.open() as flow:
        items = flow.refunds.queue(
            CLI_ACTOR,
            status=[s.lower() for s in status] or RefundStatus.IN_REVIEW,
            user_id=user,
            limit=min(limit + 1, QUEUE_MAX),
        )
        now = flow.clock.now()
    more = len(items) > limit or (limit == QUEUE_MAX and len(items) == QUEUE_MAX)
    items = items[:limit]
    if as_json:
        emit_json({"refunds": items, "more": more})
        return
    out = console()
    if not items:
        out.print("no refunds in that status")
        return
    t = table("refund", "order", "amount", "reason", "status", "due in", rows=[])
    for r in items:
        left = due(r.review_due_at, now) if r.status is RefundStatus.IN_REVIEW else "-"
        reason = r.reason if len(r.reason) <= 40 else r.reason[:39] + "…"
        t.add_row(
            inert(r.id), inert(r.order_id), inert(r.amount), inert(reason), inert(r.status), left
        )
    out.print(t)
    _more(out, len(items), more, "refunds")


@cli.command()
@click.option(
    "--status",
    multiple=True,
    type=click.Choice([s.value for s in TicketStatus], case_sensitive=False),
    help="Ticket status to list (repeat for several) [default: open, reopened].",
)
@click.option("--user", help="Only this buyer's tickets.")
@queue_limit(50)
@json_option
@click.pass_obj
def tickets(
    settings: Settings, status: tuple[str, ...], user: str | None, limit: int, as_json: bool
) -> None:
    """Feedback tickets awaiting an answer, oldest first."""
    statuses = [s.lower() for s in status] or [TicketStatus.OPEN, TicketStatus.REOPENED]
    with settings.open() as flow:
        items = flow.feedback.queue(
            CLI_ACTOR, status=statuses, user_id=user, limit=min(limit + 1, QUEUE_MAX)
        )
    more = len(items) > limit
    items = items[:limit]
    if as_json:
        emit_json({"tickets": [_ticket_row(t) for t in items], "more": more})
        return
    out = console()
    if not items:
        out.print("no tickets in that status")
        return
    rows: list[list[object]] = [
        [t.id, t.user_id, rated(t), _short(t.body), t.status, when(t.created_at)] for t in items
    ]
    out.print(table("ticket", "user", "rating", "feedback", "status", "created (UTC)", rows=rows))
    _more(out, len(items), more, "tickets")


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def rated(ticket: Any) -> str:
    """``2 (slow_delivery)``: the rating, with the reason a bad one was given."""
    return f"{ticket.rating} ({ticket.reason})" if ticket.reason else str(ticket.rating)


def _ticket_row(ticket: Any) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "user_id": ticket.user_id,
        "rating": ticket.rating,
        "reason": ticket.reason,
        "body": ticket.body,
        "status": ticket.status,
        "priority": ticket.priority,
        "level": ticket.level,
        "waiting_since": ticket.waiting_since,
        "first_response_due": ticket.first_response_due,
        "resolution_due": ticket.resolution_due,
        "order_id": ticket.order_id,
        "created_at": ticket.created_at,
    }


@cli.command()
@click.option(
    "--within",
    default="24h",
    show_default=True,
    help="Deadlines due within this long (30m, 4h, 2d); overdue ones always show.",
)
@queue_limit(100)
@json_option
@click.pass_obj
def deadlines(settings: Settings, within: str, limit: int, as_json: bool) -> None:
    """Open deadlines that are overdue or due soon, most urgent first."""
    horizon = duration(within)
    with settings.open() as flow:
        now = flow.clock.now()
        soon = flow.deadlines_due(CLI_ACTOR, within=horizon)
    more = len(soon) > limit
    soon = soon[:limit]
    observability.note(rows=len(soon))
    if as_json:
        emit_json({"deadlines": soon, "now": now, "more": more})
        return
    out = console()
    if not soon:
        out.print(f"no open deadline due within {within}")
        return
    t = table("kind", "subject", "due (UTC)", "due in", "state", rows=[])
    for d in soon:
        t.add_row(
            inert(d.kind), inert(d.subject_id), when(d.due_at), due(d.due_at, now), inert(d.state)
        )
    out.print(t)
    _more(out, len(soon), more, "deadlines")


_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def duration(text: str) -> timedelta:
    """``30m`` / ``4h`` / ``2d`` as a timedelta (a usage error otherwise)."""
    text = text.strip().lower()
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 4h or 2d")
    return int(number) * _UNITS[unit]


@cli.command()
@click.argument("record_id")
@click.option("--buyer", is_flag=True, help="RECORD_ID is a buyer's user id: list their records.")
@json_option
@click.pass_obj
def show(settings: Settings, record_id: str, buyer: bool, as_json: bool) -> None:
    """One order (ord_...), refund (rfd_...), ticket (tkt_...) or subscription (sub_...)
    with what belongs to it.

    An order lists its refunds, tickets and (for a subscription) its subscription and
    renewals; a subscription its orders and what the buyer may use now; a ticket its replies;
    every record its audit trail. With --buyer, a buyer's orders, refunds, tickets,
    subscriptions and entitlements.
    """
    prefix = record_id.partition("_")[0]
    if not buyer and prefix not in ("ord", "rfd", "tkt", "sub"):
        raise InvalidInput(
            f"{record_id!r} is not an order, refund, ticket or subscription id "
            "(ord_/rfd_/tkt_/sub_); for a buyer, add --buyer"
        )
    observability.note(record_id=record_id)
    with settings.open() as flow:
        data = _buyer(flow, record_id) if buyer else _record(flow, prefix, record_id)
    if as_json:
        emit_json(data)
        return
    from iap_flow.cli.show_view import print_record

    print_record(console(), data)


def _record(flow: Flow, prefix: str, record_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if prefix == "ord":
        order = flow.orders.get(CLI_ACTOR, record_id)
        data["order"] = order
        refunds = flow.refunds.queue(
            CLI_ACTOR, status=list(RefundStatus), user_id=order.user_id, limit=QUEUE_MAX
        )
        data["refunds"] = [r for r in refunds if r.order_id == order.id]
        tickets = flow.feedback.queue(
            CLI_ACTOR, status=list(TicketStatus), user_id=order.user_id, limit=QUEUE_MAX
        )
        data["tickets"] = [_ticket_row(t) for t in tickets if t.order_id == order.id]
        if order.subscription_id is None and order.period is not None:
            page = flow.orders.query(CLI_ACTOR, subscription_id=order.id, limit=MAX_PAGE)
            data["renewals"] = [o for o in page.items if o.id != order.id]
        if order.period is not None:
            with contextlib.suppress(NotFound):  # an unpaid order has none yet
                data["subscriptions"] = [flow.subscriptions.for_order(CLI_ACTOR, order.id)]
    elif prefix == "sub":
        sub = flow.subscriptions.get(CLI_ACTOR, record_id)
        data["subscription"] = sub
        page = flow.orders.query(CLI_ACTOR, subscription_id=sub.first_order_id, limit=MAX_PAGE)
        data["renewals"] = page.items
        data["entitlements"] = flow.entitlements.active(CLI_ACTOR, sub.user_id)
    elif prefix == "rfd":
        data["refund"] = flow.refunds.get(CLI_ACTOR, record_id)
    else:
        ticket = flow.feedback.get(CLI_ACTOR, record_id)
        data["ticket"] = _ticket_row(ticket)
        data["replies"] = ticket.messages
    data["history"] = flow.history(CLI_ACTOR, record_id)
    data["deadlines"] = flow.pending_deadlines(CLI_ACTOR, record_id)
    return data


def _buyer(flow: Flow, user_id: str) -> dict[str, Any]:
    page = flow.orders.query(CLI_ACTOR, user_id=user_id, limit=MAX_PAGE)
    refunds = flow.refunds.queue(
        CLI_ACTOR, status=list(RefundStatus), user_id=user_id, limit=QUEUE_MAX
    )
    tickets = flow.feedback.queue(
        CLI_ACTOR, status=list(TicketStatus), user_id=user_id, limit=QUEUE_MAX
    )
    if not (page.items or refunds or tickets):
        raise NotFound("buyer", user_id)
    return {
        "buyer": user_id,
        "orders": page.items,
        "more_orders": encode_cursor(page.next_cursor),
        "refunds": refunds,
        "tickets": [_ticket_row(t) for t in tickets],
        "subscriptions": flow.subscriptions.for_user(CLI_ACTOR, user_id),
        "entitlements": flow.entitlements.active(CLI_ACTOR, user_id),
    }
