"""What the HTTP API reads and writes: attrs views of the domain records.

The views are separate from the domain models on purpose: a buyer sees their order, its
refunds, tickets and trail without staff ids or internal fields, and the OpenAPI document is
generated from these classes, so what is documented is what is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import attrs
from litestar.params import KwargDefinition
from msgspec import Meta

from iap_flow.domain.models import (
    AuditEvent,
    Order,
    OrderStatus,
    Period,
    Platform,
    Product,
    ProductKind,
    RatingReason,
    RefundRequest,
    RefundStatus,
    Ticket,
    TicketPriority,
    TicketStatus,
)
from iap_flow.domain.money import Money

# -- responses ------------------------------------------------------------------------------


@attrs.frozen
class MoneyOut:
    """An amount in minor units (cents) of an ISO 4217 currency."""

    amount: int
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        return cls(money.amount, money.currency)


@attrs.frozen
class ProductOut:
    sku: str
    title: str
    description: str
    price: MoneyOut
    kind: ProductKind
    period: Period | None
    active: bool

    @classmethod
    def of(cls, p: Product) -> ProductOut:
        return cls(p.sku, p.title, p.description, MoneyOut.of(p.price), p.kind, p.period, p.active)


@attrs.frozen
class OrderOut:
    id: str
    user_id: str
    sku: str
    title: str
    kind: ProductKind
    amount: MoneyOut
    platform: Platform
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    platform_transaction_id: str | None
    subscription_id: str | None
    refunded: MoneyOut
    """What went back to the buyer so far (a partially refunded order: part of ``amount``)."""

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        return cls(
            o.id,
            o.user_id,
            o.sku,
            o.title,
            o.kind,
            MoneyOut.of(o.amount),
            o.platform,
            o.status,
            o.created_at,
            o.updated_at,
            o.paid_at,
            o.platform_transaction_id,
            o.subscription_id,
            MoneyOut.of(o.refunded),
        )


@attrs.frozen
class OrderPage:
    """One page of orders, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[OrderOut]
    next_cursor: str | None


@attrs.frozen
class RefundOut:
    id: str
    order_id: str
    amount: MoneyOut
    reason: str
    status: RefundStatus
    created_at: datetime
    updated_at: datetime
    review_due_at: datetime | None
    decided_at: datetime | None
    decision_note: str | None
    """Why it was rejected (or the approver's note): written for the buyer to read."""

    @classmethod
    def of(cls, r: RefundRequest) -> RefundOut:
        return cls(
            r.id,
            r.order_id,
            MoneyOut.of(r.amount),
            r.reason,
            r.status,
            r.created_at,
            r.updated_at,
            r.review_due_at,
            r.decided_at,
            r.decision_note,
        )


@attrs.frozen
class StaffRefundOut:
    """A refund as staff see it: who asked, who decided, the platform's state."""

    refund: RefundOut
    user_id: str
    platform: Platform
    decided_by: str | None
    escalated: bool
    attempts: int
    last_error: str | None

    @classmethod
    def of(cls, r: RefundRequest) -> StaffRefundOut:
        return cls(
            RefundOut.of(r),
            r.user_id,
            r.platform,
            r.decided_by,
            r.escalated,
            r.attempts,
            r.last_error,
        )


@attrs.frozen
class MessageOut:
    """One message on a ticket; staff are named by role, never by their id."""

    role: str
    body: str
    created_at: datetime


@attrs.frozen
class TicketOut:
    id: str
    order_id: str | None
    rating: int
    body: str
    status: TicketStatus
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    messages: list[MessageOut]
    priority: TicketPriority = TicketPriority.NORMAL
    reason: RatingReason | None = None
    """Why a rating of 2 or less was given (the buyer is asked when it is missing)."""

    @classmethod
    def of(cls, t: Ticket) -> TicketOut:
        return cls(
            t.id,
            t.order_id,
            t.rating,
            t.body,
            t.status,
            t.created_at,
            t.updated_at,
            t.first_response_at,
            t.resolved_at,
            [MessageOut(m.role, m.body, m.created_at) for m in t.messages],
            t.priority,
            t.reason,
        )


@attrs.frozen
class TrailEntry:
    """One state change of the order or of its refunds and tickets, as the buyer may see it."""

    subject_id: str
    event: str
    from_state: str | None
    to_state: str
    by: str
    """The role that acted (``buyer``, ``support_agent``, ``system``...), never a staff id."""
    at: datetime

    @classmethod
    def of(cls, e: AuditEvent) -> TrailEntry:
        return cls(e.aggregate_id, e.event, e.from_state, e.to_state, e.role, e.at)


@attrs.frozen
class OrderDetail:
    order: OrderOut
    refunds: list[RefundOut]
    tickets: list[TicketOut]
    trail: list[TrailEntry]


@attrs.frozen
class SweepOut:
    expired: int
    reminded: int
    escalated: int
    retried: int
    delivered: int

    @classmethod
    def of(cls, r: Any) -> SweepOut:
        return cls(r.expired, r.reminded, r.escalated, r.retried, r.delivered)


@attrs.frozen
class Health:
    status: str


@attrs.frozen
class Readiness:
    status: str
    """``ready``, or ``not_ready`` with the checks that failed."""
    store: bool
    schema_current: bool
    schema_version: int | None
    expected_schema_version: int | None


@attrs.frozen
class Problem:
    """An RFC 9457 problem: ``code`` is stable and machine-readable, ``detail`` may be shown."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str
    request_id: str
    field: str | None = None


# -- requests -------------------------------------------------------------------------------
# The constraints the SDK checks, stated twice: msgspec's Meta enforces them when the body is
# decoded and Litestar's KwargDefinition puts them in the OpenAPI document (its attrs plugin
# does not read Meta). The SDK still checks everything itself: text has a non-space character
# (the SDK strips it) and a maximum length; ids are at most 128 characters.
# "Not a space" is spelled out: Python's str.strip() and ECMA's \S disagree on a few
# characters (\x1c-\x1f, \x85, \ufeff), and a value must pass both.
NOT_SPACE = r"[^\s\x1c-\x1f\x85\ufeff]"

Text = Annotated[
    str,
    Meta(min_length=1, max_length=5000, pattern=NOT_SPACE),
    KwargDefinition(min_length=1, max_length=5000, pattern=NOT_SPACE),
]
Id = Annotated[
    str,
    Meta(min_length=1, max_length=128, pattern=NOT_SPACE),
    KwargDefinition(min_length=1, max_length=128, pattern=NOT_SPACE),
]
Token = Annotated[
    str,
    Meta(min_length=1, max_length=500, pattern=NOT_SPACE),
    KwargDefinition(min_length=1, max_length=500, pattern=NOT_SPACE),
]
Reason = Annotated[
    str,
    Meta(min_length=5, max_length=2000, pattern=NOT_SPACE + r"[\s\S]{3,}" + NOT_SPACE),
    KwargDefinition(min_length=5, max_length=2000, pattern=NOT_SPACE + r"[\s\S]{3,}" + NOT_SPACE),
]
Sku = Annotated[
    str,
    Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    KwargDefinition(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
]


@attrs.frozen
class PlaceOrder:
    sku: Id
    platform: Platform | None = None


@attrs.frozen
class PayOrder:
    token: Token
    """The payment platform's token for this charge (the sandbox: ``tok_approve``)."""


@attrs.frozen
class AttachPurchase:
    """A store purchase made in the app: an App Store signed transaction (JWS)."""

    signed_transaction: Annotated[
        str, Meta(min_length=1, max_length=20_000), KwargDefinition(min_length=1, max_length=20_000)
    ]


@attrs.frozen
class RequestRefund:
    reason: Text
    amount: Annotated[int, Meta(ge=1), KwargDefinition(ge=1)] | None = None
    """Minor units in the order's currency; the whole order when omitted."""


@attrs.frozen
class SubmitFeedback:
    rating: Annotated[int, Meta(ge=1, le=5), KwargDefinition(ge=1, le=5)]
    body: Text
    order_id: Id | None = None
    reason: RatingReason | None = None
    """Why, for a rating of 2 or less; without one the buyer is asked (ticket.reason_requested)."""


@attrs.frozen
class Message:
    body: Text


@attrs.frozen
class Resolve:
    note: Text | None = None


@attrs.frozen
class Decision:
    note: Text | None = None
    amount: Annotated[int, Meta(ge=1), KwargDefinition(ge=1)] | None = None
    """Approve less than was asked: minor units in the refund's currency (a partial refund)."""


@attrs.frozen
class Rejection:
    reason: Reason


@attrs.frozen
class NewProduct:
    sku: Sku
    title: Annotated[
        str,
        Meta(min_length=1, max_length=200, pattern=NOT_SPACE),
        KwargDefinition(min_length=1, max_length=200, pattern=NOT_SPACE),
    ]
    description: Annotated[
        str,
        Meta(min_length=1, max_length=2000, pattern=NOT_SPACE),
        KwargDefinition(min_length=1, max_length=2000, pattern=NOT_SPACE),
    ]
    price: Annotated[int, Meta(ge=1), KwargDefinition(ge=1)]
    """Minor units of ``currency``."""
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$"), KwargDefinition(pattern=r"^[A-Z]{3}$")]
    kind: ProductKind
    period: Period | None = None
