"""The domain's records (attrs). Entities are ``define``d; values and events are ``frozen``."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

from iap_flow.domain.money import Money


class ProductKind(enum.StrEnum):
    """What a product is: used up, kept forever, or renewed every period."""

    CONSUMABLE = "consumable"
    NON_CONSUMABLE = "non_consumable"
    SUBSCRIPTION = "subscription"


class Period(enum.StrEnum):
    """A subscription's billing period."""

    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class Platform(enum.StrEnum):
    """Where the buyer paid."""

    SANDBOX = "sandbox"
    APP_STORE = "app_store"
    GOOGLE_PLAY = "google_play"


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    AWAITING_DELIVERY = "awaiting_delivery"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class RefundStatus(enum.StrEnum):
    REQUESTED = "requested"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SUBMITTED = "submitted"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    FAILED = "failed"


class TicketStatus(enum.StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    WAITING_ON_BUYER = "waiting_on_buyer"
    RESOLVED = "resolved"
    REOPENED = "reopened"


class TicketPriority(enum.StrEnum):
    """How soon a ticket must be answered and resolved: each has its own targets."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class RatingReason(enum.StrEnum):
    """Why a buyer rated 2 or less (asked of every bad rating, as in CSAT surveys)."""

    SLOW_DELIVERY = "slow_delivery"
    PAYMENT_PROBLEM = "payment_problem"
    NOT_AS_DESCRIBED = "not_as_described"
    TOO_EXPENSIVE = "too_expensive"
    APP_PROBLEM = "app_problem"
    SUPPORT = "support"
    OTHER = "other"


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    IN_GRACE_PERIOD = "in_grace_period"
    ON_HOLD = "on_hold"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Audience(enum.StrEnum):
    """Who a notification is for: buyers (push, e-mail) or staff (the Slack review channel).

    Each process delivers the audiences it is opened for, so an app backend can push to
    buyers while the Slack bot posts the staff's notifications from the same outbox.
    """

    BUYER = "buyer"
    STAFF = "staff"


class DeadlineKind(enum.StrEnum):
    """Every kind of durable deadline the sweep acts on."""

    ORDER_PAYMENT = "order_payment"
    ORDER_DELIVERY = "order_delivery"
    REFUND_REVIEW = "refund_review"
    REFUND_RETRY = "refund_retry"
    TICKET_FIRST_RESPONSE = "ticket_first_response"
    TICKET_RESOLUTION = "ticket_resolution"
    TICKET_ESCALATION = "ticket_escalation"
    SUBSCRIPTION_PERIOD_END = "subscription_period_end"
    SUBSCRIPTION_GRACE_END = "subscription_grace_end"
    SUBSCRIPTION_HOLD_END = "subscription_hold_end"
    REVIEW_ANSWER = "review_answer"
    PURCHASE_ACKNOWLEDGE = "purchase_acknowledge"


class DeadlineState(enum.StrEnum):
    PENDING = "pending"
    REMINDED = "reminded"
    DONE = "done"
    FIRED = "fired"


@attrs.define
class Product:
    """A product on the catalogue; orders keep a snapshot of it."""

    sku: str
    title: str
    description: str
    price: Money
    kind: ProductKind
    period: Period | None = None
    active: bool = True
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None


@attrs.define
class Order:
    """One purchase by one buyer. ``version`` guards against lost updates.

    ``refunded_amount`` is what went back to the buyer so far, in minor units of ``amount``'s
    currency: never more than ``amount`` (the write path and the database both refuse it).
    """

    id: str
    user_id: str
    sku: str
    title: str
    kind: ProductKind
    amount: Money
    platform: Platform
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    version: int = 1
    period: Period | None = None
    platform_transaction_id: str | None = None
    subscription_id: str | None = None  # the first order of a subscription, for renewals
    paid_at: datetime | None = None
    refunded_amount: int = 0

    @property
    def refunded(self) -> Money:
        """The refunded total so far (zero until a refund completes)."""
        return Money.trusted(self.refunded_amount, self.amount.currency)

    @property
    def refundable(self) -> Money:
        """What may still be refunded: what was paid less what already went back."""
        return Money.trusted(self.amount.amount - self.refunded_amount, self.amount.currency)


@attrs.define
class RefundRequest:
    """A buyer's request for their money back, and its review."""

    id: str
    order_id: str
    user_id: str
    amount: Money
    reason: str
    status: RefundStatus
    created_at: datetime
    updated_at: datetime
    version: int = 1
    platform: Platform = Platform.SANDBOX
    review_due_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    escalated: bool = False
    attempts: int = 0
    platform_refund_id: str | None = None
    last_error: str | None = None


@attrs.define
class Subscription:
    """A buyer's subscription: the plan, the paid period and where billing stands.

    ``first_order_id`` is the order that started it (renewal orders name it as their
    ``subscription_id``); ``latest_order_id`` paid the current period. ``grace_until`` is set
    while a failed renewal keeps access (grace period); ``pending_sku`` is a downgrade that
    takes effect at the next renewal.
    """

    id: str
    user_id: str
    sku: str
    platform: Platform
    status: SubscriptionStatus
    first_order_id: str
    latest_order_id: str
    period_start: datetime
    period_end: datetime
    created_at: datetime
    updated_at: datetime
    version: int = 1
    grace_until: datetime | None = None
    pending_sku: str | None = None
    auto_renew: bool = True


@attrs.frozen
class Entitlement:
    """Something a buyer may use, derived from their orders and subscriptions when asked.

    ``expires_at`` None means no end (a non-consumable, or consumable units delivered).
    For a consumable, ``units`` counts the delivered, unrefunded orders of the product.
    """

    sku: str
    kind: ProductKind
    source_order_id: str
    expires_at: datetime | None
    subscription_id: str | None = None
    subscription_status: SubscriptionStatus | None = None
    units: int = 1


@attrs.frozen
class TicketMessage:
    """One message on a feedback ticket, from the buyer or from staff."""

    ticket_id: str
    author_id: str
    role: str
    body: str
    created_at: datetime


@attrs.define
class Ticket:
    """A buyer's feedback (rating and text) and the conversation that answers it.

    ``priority`` chooses the targets; ``first_response_due`` and ``resolution_due`` are the
    targets' due times (business hours), pushed back by the time spent waiting on the buyer
    (``waiting_since`` is set while waiting). ``level`` is how far it was escalated: 0 the
    agents, 1 a lead, 2 a manager. ``reason`` is why a rating of 2 or less was given.
    """

    id: str
    user_id: str
    rating: int
    body: str
    status: TicketStatus
    created_at: datetime
    updated_at: datetime
    version: int = 1
    order_id: str | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    escalated: bool = False
    reopen_count: int = 0
    messages: list[TicketMessage] = attrs.Factory(list)
    priority: TicketPriority = TicketPriority.NORMAL
    level: int = 0
    waiting_since: datetime | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    reason: RatingReason | None = None


@attrs.frozen
class AuditEvent:
    """One state change: who did what to which record, from which state to which, and when."""

    aggregate: str
    aggregate_id: str
    event: str
    from_state: str | None
    to_state: str
    actor_id: str
    role: str
    at: datetime
    data: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class Notification:
    """A message for a buyer or for staff, written to the outbox with the change that caused it."""

    topic: str
    recipient: str
    payload: dict[str, Any]
    created_at: datetime
    id: int | None = None
    delivered_at: datetime | None = None
    attempts: int = 0
    audience: Audience = Audience.BUYER


@attrs.frozen
class Deadline:
    """A durable due time for something someone must do."""

    kind: DeadlineKind
    subject_id: str
    due_at: datetime
    state: DeadlineState = DeadlineState.PENDING
    remind_at: datetime | None = None
    id: int | None = None


T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    """One page of query results; pass ``next_cursor`` back to get the next page."""

    items: list[T]
    next_cursor: str | None


@attrs.frozen
class OutboxBacklog:
    """Notifications not delivered yet: how many, when the oldest was written, and how many
    of them failed at least once (on-call's figures)."""

    pending: int
    oldest: datetime | None
    failing: int
