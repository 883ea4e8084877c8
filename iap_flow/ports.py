"""The ports: what the core needs from the outside world, as Protocols.

Adapters (``iap_flow.adapters``) implement these; the core never imports an adapter.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from iap_flow.domain.models import (
    Audience,
    AuditEvent,
    Deadline,
    DeadlineKind,
    DeadlineState,
    Notification,
    Order,
    OrderStatus,
    Platform,
    Product,
    ProductKind,
    RefundRequest,
    Subscription,
    SubscriptionStatus,
    Ticket,
    TicketMessage,
)
from iap_flow.domain.money import Money


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, UTC, timezone-aware."""
        ...


class UnitOfWork(Protocol):
    """One storage transaction: everything written through it commits together or not at all.

    ``update_*`` methods write only if the stored version is ``expected_version`` and raise
    :class:`~iap_flow.domain.errors.ConcurrentModification` otherwise.
    """

    def get_product(self, sku: str) -> Product | None: ...
    def insert_product(self, product: Product) -> None: ...
    def update_product(self, product: Product, expected_version: int) -> None: ...

    def get_order(self, order_id: str, *, lock: bool = False) -> Order | None:
        """The order; with ``lock``, locked against other writers until this transaction ends
        (decisions that depend on the order's other records, such as its refunds)."""
        ...

    def find_order_by_transaction(
        self, platform: Platform, transaction_id: str
    ) -> Order | None: ...
    def insert_order(self, order: Order) -> None: ...
    def update_order(self, order: Order, expected_version: int) -> None: ...

    def get_refund(self, refund_id: str) -> RefundRequest | None: ...
    def refunds_for_order(self, order_id: str) -> list[RefundRequest]: ...
    def insert_refund(self, refund: RefundRequest) -> None: ...
    def update_refund(self, refund: RefundRequest, expected_version: int) -> None: ...

    def get_ticket(self, ticket_id: str) -> Ticket | None: ...
    def insert_ticket(self, ticket: Ticket) -> None: ...
    def update_ticket(self, ticket: Ticket, expected_version: int) -> None: ...
    def add_message(self, message: TicketMessage) -> None: ...

    def add_audit(self, event: AuditEvent) -> None: ...
    def add_notification(self, notification: Notification, claimed_until: datetime | None) -> int:
        """Write to the outbox; return the notification's id. ``claimed_until`` set means
        the writer will send it itself and others leave it alone until then."""
        ...

    def add_deadline(self, deadline: Deadline) -> None: ...
    def close_deadlines(self, subject_id: str, kinds: Sequence[DeadlineKind]) -> None: ...
    def due_deadlines(self, now: datetime, limit: int) -> list[Deadline]: ...
    def due_reminders(self, now: datetime, limit: int) -> list[Deadline]: ...
    def set_deadline_state(self, deadline_id: int, state: DeadlineState) -> None: ...

    def get_subscription(self, subscription_id: str) -> Subscription | None: ...
    def find_subscription(self, first_order_id: str) -> Subscription | None:
        """The subscription that ``first_order_id`` (its first order) started, if any."""
        ...

    def insert_subscription(self, subscription: Subscription) -> None: ...
    def update_subscription(self, subscription: Subscription, expected_version: int) -> None: ...
    def add_subscription_period(self, subscription: Subscription, at: datetime) -> None:
        """Append the subscription's state as of ``at`` (status, period, grace) to its history,
        which answers "what did the buyer have at time t" later."""
        ...

    def idempotency_get(self, key: str) -> IdempotencyRecord | None:
        """What is stored for ``key``, if anything. Commands sharing a key are serialised:
        a second transaction asking for a key waits until the first one commits."""
        ...

    def idempotency_claim(self, key: str, command: str, fingerprint: str, at: datetime) -> None:
        """Claim ``key`` (no result yet) at ``at``, or renew an existing claim without a result."""
        ...

    def idempotency_claim_new(self, key: str, command: str, fingerprint: str, at: datetime) -> bool:
        """Claim ``key`` if nobody ever has: True if this call wrote the claim, False if the
        key already has a row (a claim or a result) and nothing was written."""
        ...

    def idempotency_put(
        self, key: str, command: str, fingerprint: str, result: str, at: datetime
    ) -> None:
        """Store the result for ``key`` (over its claim, if it was claimed)."""
        ...

    def idempotency_finish(self, key: str, fingerprint: str, result: str) -> None:
        """Store the result over this caller's claim on ``key``; raise
        :class:`~iap_flow.domain.errors.ConcurrentModification` (the transaction is then not
        committed) unless exactly that claim, still without a result, was there to finish."""
        ...

    def idempotency_release(self, key: str) -> None:
        """Drop a claim on ``key`` that has no result (the guarded call did not happen)."""
        ...

    def remember_event(
        self, source: str, event_id: str, at: datetime, result: str | None = None
    ) -> bool:
        """Record an inbound event (a webhook, a Slack retry) as processed, with what it did
        (JSON text) if given; False if it was recorded before (that record is kept), so
        several instances agree on what they processed."""
        ...

    def event_result(self, source: str, event_id: str) -> str | None:
        """The result recorded with an inbound event; None if none was (or no event)."""
        ...


@attrs.frozen
class IdempotencyRecord:
    """An idempotency key's row: ``result`` is None while a claim is under way."""

    command: str
    fingerprint: str
    result: str | None
    at: datetime


@attrs.frozen
class OrderQuery:
    """Filters for :meth:`Store.query_orders`; every field is optional."""

    user_id: str | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 20
    cursor: str | None = None
    subscription_id: str | None = None
    """The subscription's first order and its renewals."""


@attrs.frozen
class HeldOrder:
    """An order that may grant a non-consumable or consumable units (for entitlements)."""

    order_id: str
    sku: str
    kind: ProductKind
    status: OrderStatus
    refunded_at: datetime | None = None


@attrs.frozen
class SubscriptionState:
    """A subscription as it stood at some time (for entitlements)."""

    subscription_id: str
    sku: str
    status: SubscriptionStatus
    latest_order_id: str
    period_end: datetime
    grace_until: datetime | None


class Store(Protocol):
    """Persistence: transactions for writes, plain methods for reads."""

    def transaction(self) -> AbstractContextManager[UnitOfWork]: ...

    def get_order(self, order_id: str) -> Order | None: ...
    def get_refund(self, refund_id: str) -> RefundRequest | None: ...
    def get_ticket(self, ticket_id: str) -> Ticket | None: ...
    def get_product(self, sku: str) -> Product | None: ...
    def list_products(self, active_only: bool) -> list[Product]: ...
    def query_orders(self, query: OrderQuery) -> tuple[list[Order], str | None]: ...
    def refunds(
        self, statuses: Sequence[str], user_id: str | None, limit: int
    ) -> list[RefundRequest]: ...
    def tickets(self, statuses: Sequence[str], user_id: str | None, limit: int) -> list[Ticket]: ...
    def history(self, aggregate_id: str) -> list[AuditEvent]: ...
    def pending_deadlines(self, subject_id: str | None) -> list[Deadline]: ...
    def get_subscription(self, subscription_id: str) -> Subscription | None: ...
    def subscriptions_for_user(self, user_id: str) -> list[Subscription]: ...
    def entitlement_sources(
        self, user_id: str, at: datetime | None
    ) -> tuple[list[HeldOrder], list[SubscriptionState]]:
        """What may grant ``user_id`` something now (``at`` None) or as it stood at ``at``:
        their non-subscription orders that were paid (with when they were refunded, if they
        were by then) and their subscriptions' states."""
        ...

    def claim_notifications(
        self, limit: int, now: datetime, lease_seconds: int, audiences: Sequence[Audience]
    ) -> list[Notification]:
        """Claim up to ``limit`` undelivered notifications not claimed by another worker
        (or whose claim's lease ran out), oldest first, for ``lease_seconds``."""
        ...

    def renew_claims(self, ids: Sequence[int], now: datetime, lease_seconds: int) -> list[int]:
        """Extend this worker's lease on those of ``ids`` it still holds undelivered, to
        ``now + lease_seconds``; returns them. Those missing were delivered or taken over
        (the lease ran out): the worker must not send them."""
        ...

    def mark_delivered(self, ids: Sequence[int], at: datetime) -> bool:
        """Record ``ids`` as delivered (a row keeps its first delivery time). Bookkeeping after
        the fact: it never raises; on failure it logs and returns False, and the
        notifications are sent again later (at least once)."""
        ...

    def mark_failed(self, notification_id: int, error: str) -> bool:
        """Record a failed delivery and release the claim so a later run retries it; never
        raises (as :meth:`mark_delivered`)."""
        ...

    def report_rows(self, sql_name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one of the named report aggregates (:mod:`iap_flow.report`) in the database."""
        ...

    def close(self) -> None: ...


class PaymentKind(enum.StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    REVIEW_ANSWER = "review_answer"
    """Staff's decision sent to a platform that decides the refund itself; no money moves."""
    ACKNOWLEDGE = "acknowledge"
    """A delivered purchase told to the platform (Google Play); no money moves."""


@attrs.frozen
class PaymentResult:
    """What every payment adapter answers, for charges and refunds alike."""

    success: bool
    kind: PaymentKind
    amount: Money
    platform_transaction_id: str | None = None
    error: str | None = None
    retryable: bool = False
    raw: dict[str, Any] = attrs.Factory(dict)


class PaymentPlatform(Protocol):
    """A payment platform: charges orders and pays refunds out.

    Both calls take an idempotency key; calling again with the same key must not move money
    twice and must return the first result. ``decides_refunds`` is True for platforms (App
    Store) that decide refunds themselves: staff then answer the platform instead of paying out.
    """

    @property
    def platform(self) -> Platform: ...

    @property
    def decides_refunds(self) -> bool: ...

    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        """Raise :class:`~iap_flow.domain.errors.PlatformUnavailable` if no answer came."""
        ...

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        """Raise :class:`~iap_flow.domain.errors.PlatformUnavailable` if no answer came."""
        ...

    def answer_refund_review(
        self, refund: RefundRequest, order: Order, idempotency_key: str
    ) -> PaymentResult:
        """Tell the platform staff's decision on a refund it decides itself (``decides_refunds``,
        or a review the platform opened: ``refund.platform_refund_id`` set). ``refund.status``
        is ``approved`` or ``rejected``. Moves no money; kind is ``REVIEW_ANSWER``.
        Raise :class:`~iap_flow.domain.errors.PlatformUnavailable` if no answer came."""
        ...


@runtime_checkable
class Acknowledges(Protocol):
    """A platform that must be told of each delivered purchase (Google Play refunds one not
    acknowledged within 3 days). The sweep calls it after delivery, retries with backoff and
    tells a lead before the platform's deadline. ``acknowledges_deliveries`` False (an App
    Store platform whose app finishes transactions itself) skips it."""

    @property
    def acknowledges_deliveries(self) -> bool: ...

    def acknowledge_delivery(self, order: Order) -> PaymentResult:
        """Acknowledge (or consume) the purchase that paid ``order``; safe to repeat. A
        failed result with ``retryable`` is tried again later; kind is ``ACKNOWLEDGE``."""
        ...


@attrs.frozen
class Consent:
    """A buyer's consent to share consumption data with a platform answering a refund
    review: whether it was given, where the app recorded it (``source``: a screen, a
    settings record) and when. An App Store ``consent`` hook may return one (or a bool)."""

    given: bool
    source: str
    at: datetime | None = None

    def as_audit(self) -> dict[str, Any]:
        at = None if self.at is None else self.at.isoformat()
        return {"given": self.given, "source": self.source, "at": at}


class Notifier(Protocol):
    """Delivers one outbox notification; raises to have it retried later."""

    def send(self, notification: Notification) -> None: ...
