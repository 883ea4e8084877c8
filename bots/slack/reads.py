"""What the bot shows, read through the core's public API (with the viewer's permissions).

Each function gathers one screen's records; :mod:`.blocks` turns them into Block Kit. No
state changes here, and no rule is decided here: the core says who may read what.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import attrs

from iap_flow.domain.errors import NotFound, PermissionDenied
from iap_flow.domain.models import (
    AuditEvent,
    DeadlineKind,
    Entitlement,
    Order,
    RefundRequest,
    RefundStatus,
    Ticket,
    TicketStatus,
)
from iap_flow.domain.roles import Actor, Role
from iap_flow.flow import Flow

ALL_REFUNDS = tuple(RefundStatus)
ALL_TICKETS = tuple(TicketStatus)
_TICKET_DEADLINES = (DeadlineKind.TICKET_FIRST_RESPONSE, DeadlineKind.TICKET_RESOLUTION)
MAX_LISTED = 1000


@attrs.frozen
class RefundView:
    """A refund with what a reviewer needs beside it."""

    refund: RefundRequest
    order: Order
    earlier: list[RefundRequest]
    """The same buyer's refunds made before this one, newest first."""
    agent_limit: int
    """The most (minor units, refund's currency) a support agent may approve."""


@attrs.frozen
class TicketView:
    """A feedback ticket, its current deadline and its latest staff step."""

    ticket: Ticket
    due_at: datetime | None
    last_step: AuditEvent | None
    """The latest answer / resolve / reopen event, for the card's status line."""


@attrs.frozen
class QueueItem:
    """One row of someone's queue: a refund awaiting review or a ticket awaiting an answer."""

    kind: str  # "refund" | "ticket"
    id: str
    due_at: datetime | None
    summary: str
    needs_lead: bool = False


@attrs.frozen
class QueuePage:
    """One page of someone's queue, and how many items wait in all."""

    items: list[QueueItem]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@attrs.frozen
class OrderView:
    """An order looked up by staff: the order, its audit trail, its refunds and tickets."""

    order: Order
    history: list[AuditEvent] | None
    """None when the viewer's role may not read the audit trail."""
    refunds: list[RefundRequest]
    tickets: list[Ticket]
    entitlements: list[Entitlement] | None = None
    """What the buyer may use now; None when the viewer's role may not ask."""
    titles: dict[str, str] = attrs.Factory(dict)
    """Product titles of the entitlements, by SKU."""


def refund_view(flow: Flow, actor: Actor, refund_id: str) -> RefundView:
    """The refund, its order and the buyer's earlier refunds."""
    refund = flow.refunds.get(actor, refund_id)
    order = flow.orders.get(actor, refund.order_id)
    mine = (refund.created_at, refund.id)
    earlier = [
        r
        for r in flow.refunds.queue(
            actor, status=ALL_REFUNDS, user_id=refund.user_id, limit=MAX_LISTED
        )
        if (r.created_at, r.id) < mine
    ]
    earlier.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    limit = flow.policy.agent_limit(refund.amount.currency)
    return RefundView(refund, order, earlier, limit)


def ticket_view(flow: Flow, actor: Actor, ticket_id: str) -> TicketView:
    """The ticket, when staff must next act on it, and who last acted."""
    ticket = flow.feedback.get(actor, ticket_id)
    return TicketView(
        ticket, _ticket_due(flow, actor, ticket.id), _last_step(flow, actor, ticket.id)
    )


def queue_page(flow: Flow, actor: Actor, *, page: int = 1, per_page: int = 20) -> QueuePage:
    """Page ``page`` (from 1) of :func:`queue`, with the total count (up to MAX_LISTED)."""
    items = queue(flow, actor, limit=MAX_LISTED)
    start = (page - 1) * per_page
    return QueuePage(items[start : start + per_page], page, per_page, len(items))


def queue(flow: Flow, actor: Actor, *, limit: int = 50) -> list[QueueItem]:
    """Refunds in review and tickets awaiting an answer, soonest deadline first."""
    items: list[QueueItem] = []
    for refund in flow.refunds.queue(actor, limit=limit):
        needs_lead = (
            actor.role is Role.SUPPORT_AGENT
            and refund.amount.amount > flow.policy.agent_limit(refund.amount.currency)
        )
        items.append(
            QueueItem(
                "refund",
                refund.id,
                refund.review_due_at,
                f"{refund.amount} from {refund.user_id}",
                needs_lead,
            )
        )
    for ticket in flow.feedback.queue(actor, limit=limit):
        stars = "★" * ticket.rating + "☆" * (5 - ticket.rating)
        items.append(
            QueueItem(
                "ticket",
                ticket.id,
                _ticket_due(flow, actor, ticket.id),
                f"{stars} from {ticket.user_id}",
            )
        )
    far = datetime.max.replace(tzinfo=flow.clock.now().tzinfo)
    items.sort(key=lambda i: (i.due_at or far, i.id))
    return items[:limit]


def order_view(flow: Flow, actor: Actor, order_id: str) -> OrderView:
    """An order with its history (if the viewer may read audit), refunds and tickets."""
    order = flow.orders.get(actor, order_id)
    try:
        history: list[AuditEvent] | None = flow.history(actor, order.id)
    except PermissionDenied:
        history = None
    refunds = flow.refunds.of_order(actor, order.id)
    tickets = [
        t
        for t in flow.feedback.queue(
            actor, status=ALL_TICKETS, user_id=order.user_id, limit=MAX_LISTED
        )
        if t.order_id == order.id
    ]
    try:
        has: list[Entitlement] | None = flow.entitlements.active(actor, order.user_id)
    except PermissionDenied:
        has = None
    titles = {}
    for sku in {e.sku for e in has or ()}:
        with contextlib.suppress(NotFound):  # a product since removed keeps its SKU
            titles[sku] = flow.catalogue.get(sku).title
    return OrderView(order, history, refunds, tickets, has, titles)


def _ticket_due(flow: Flow, actor: Actor, ticket_id: str) -> datetime | None:
    dues = [
        d.due_at for d in flow.pending_deadlines(actor, ticket_id) if d.kind in _TICKET_DEADLINES
    ]
    return min(dues) if dues else None


def _last_step(flow: Flow, actor: Actor, ticket_id: str) -> AuditEvent | None:
    try:
        events = flow.history(actor, ticket_id)
    except PermissionDenied:
        return None
    steps = [e for e in events if e.event in ("answer", "resolve", "reopen")]
    return steps[-1] if steps else None
