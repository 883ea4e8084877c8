"""Time limits and amount limits: one configurable value object, read by the services."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import attrs

from iap_flow.domain.calendar import WALL_CLOCK, BusinessCalendar, WallClock
from iap_flow.domain.errors import PermissionDenied
from iap_flow.domain.models import DeadlineKind, TicketPriority
from iap_flow.domain.money import Money

SUPPORT_MANAGER = "support_manager"
"""The top escalation level: told (a staff notification) when a lead's time runs out too."""


def _default_targets() -> dict[TicketPriority, tuple[timedelta, timedelta]]:
    # (first response, resolution) per priority; normal's are the policy's ticket_* windows.
    return {
        TicketPriority.URGENT: (timedelta(hours=1), timedelta(hours=8)),
        TicketPriority.HIGH: (timedelta(hours=2), timedelta(hours=24)),
        TicketPriority.LOW: (timedelta(hours=8), timedelta(hours=120)),
    }


def _default_limits() -> dict[str, int]:
    # Support agents may approve refunds up to these amounts (minor units); leads, any amount.
    return {"USD": 5_000, "EUR": 5_000, "GBP": 4_000, "CNY": 35_000, "JPY": 7_000}


class ApprovalLimitExceeded(PermissionDenied):
    """A support agent tried to approve a refund above their amount limit.

    ``amount`` is the refund's, ``limit`` the most an agent may approve, both :class:`Money`
    in the refund's currency.

    >>> exc = ApprovalLimitExceeded(
    ...     actor_id="agent_bo", refund_id="rfd_1", amount=Money(7999, "USD"), limit=Money(5000, "USD")
    ... )
    >>> print(exc)
    refund rfd_1 is 79.99 USD, above the support agent limit of 50.00 USD: a support lead must decide it
    >>> exc.limit
    Money(amount=5000, currency='USD')
    """

    code: ClassVar[str] = "approval_limit_exceeded"

    def __init__(self, *, actor_id: str, refund_id: str, amount: Money, limit: Money) -> None:
        super().__init__(
            f"refund {refund_id} is {amount}, above the support agent limit of {limit}: "
            "a support lead must decide it",
            actor_id=actor_id,
            role="support_agent",
            action="refund.approve",
        )
        self.refund_id = refund_id
        self.amount = amount
        self.limit = limit


ANSWERS = ("approve", "decline")


def _answer(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ANSWERS:
        raise ValueError(f"{attribute.name} must be one of {ANSWERS}, got {value!r}")


@attrs.frozen
class ReviewAnswerPolicy:
    """The policy answer to a platform's refund review (an Apple ``CONSUMPTION_REQUEST``, a
    Google chargeback review) that no person decided: sent ``lead_time`` before the
    platform's window closes, audited as the system's decision.

    ``delivered`` is the answer for a purchase the app delivered (or completed),
    ``undelivered`` for one it did not; ``"decline"`` asks the platform to keep the sale,
    ``"approve"`` to refund it. A send that fails (5xx, no answer) is retried after
    ``retry_delay``, doubling, while the window is open. ``enabled=False`` sends nothing on
    its own: the review escalates to a lead at the deadline as any other.

    >>> ReviewAnswerPolicy().decision(delivered=True)
    'decline'
    """

    enabled: bool = True
    lead_time: timedelta = timedelta(hours=1)
    retry_delay: timedelta = timedelta(minutes=5)
    delivered: str = attrs.field(default="decline", validator=_answer)
    undelivered: str = attrs.field(default="approve", validator=_answer)

    def decision(self, *, delivered: bool) -> str:
        return self.delivered if delivered else self.undelivered

    def rules(self) -> dict[str, object]:
        """The rules as the audit trail records them beside the decision."""
        return {
            "lead_time_seconds": int(self.lead_time.total_seconds()),
            "delivered": self.delivered,
            "undelivered": self.undelivered,
        }


_WINDOWS = {
    DeadlineKind.ORDER_PAYMENT: "order_payment",
    DeadlineKind.ORDER_DELIVERY: "order_delivery",
    DeadlineKind.TICKET_ESCALATION: "escalation_window",
    DeadlineKind.REFUND_REVIEW: "refund_review",
    DeadlineKind.REFUND_RETRY: "refund_retry_delay",
    DeadlineKind.TICKET_FIRST_RESPONSE: "ticket_first_response",
    DeadlineKind.TICKET_RESOLUTION: "ticket_resolution",
    DeadlineKind.SUBSCRIPTION_PERIOD_END: "subscription_expiry_leeway",
    DeadlineKind.SUBSCRIPTION_GRACE_END: "subscription_grace",
    DeadlineKind.SUBSCRIPTION_HOLD_END: "subscription_hold",
    DeadlineKind.PURCHASE_ACKNOWLEDGE: "acknowledge_delay",
}
"""Each deadline kind's window: the Policy field that holds it."""


@attrs.frozen
class Policy:
    """Deadlines and limits. The defaults follow the design; override any of them.

    >>> Policy().refund_review
    datetime.timedelta(days=1)
    """

    order_payment: timedelta = timedelta(minutes=30)
    refund_review: timedelta = timedelta(hours=24)
    ticket_first_response: timedelta = timedelta(hours=4)
    ticket_resolution: timedelta = timedelta(hours=72)
    refund_window: timedelta = timedelta(days=14)
    refund_retry_delay: timedelta = timedelta(minutes=15)
    refund_max_attempts: int = 5
    subscription_expiry_leeway: timedelta = timedelta(hours=1)
    """How long after its period end an unrenewed subscription waits for the store's word."""
    subscription_grace: timedelta = timedelta(days=7)
    """Grace after a failed renewal when the store names no grace end."""
    subscription_hold: timedelta = timedelta(days=30)
    """How long a subscription stays on hold (billing retry) before it expires."""
    remind_at_fraction: float = 0.75
    """The warning before a breach: sent when this share of the time allowed has passed."""
    acknowledge_delay: timedelta = timedelta(minutes=1)
    """How long after delivery the sweep acknowledges a purchase to its platform (Google)."""
    acknowledge_retry_delay: timedelta = timedelta(minutes=10)
    """The first wait before a failed acknowledgement is tried again (doubling, at most 6 h)."""
    acknowledge_escalate_after: timedelta = timedelta(days=2)
    """Since the purchase: a lead is told of a purchase still not acknowledged by then
    (Google refunds it at 3 days)."""
    review_answer: ReviewAnswerPolicy = attrs.Factory(ReviewAnswerPolicy)
    agent_refund_limits: dict[str, int] = attrs.Factory(_default_limits)
    order_delivery: timedelta = timedelta(hours=1)
    """From paid to delivered: staff are warned before, a lead is told after."""
    ticket_targets: dict[TicketPriority, tuple[timedelta, timedelta]] = attrs.Factory(
        _default_targets
    )
    """(first response, resolution) per priority other than normal."""
    ticket_calendar: BusinessCalendar | None = None
    """Business hours the ticket targets count in; None: every hour counts."""
    escalation_levels: tuple[str, ...] = ("support_lead", SUPPORT_MANAGER)
    """Who is told, in turn, when a ticket's target passes and then each level's window."""
    escalation_window: timedelta = timedelta(hours=8)
    """How long (business hours) each escalation level has before the next one is told."""

    def calendar(self, kind: DeadlineKind) -> BusinessCalendar | WallClock:
        """Ticket targets run on business hours; store and order deadlines on the wall clock."""
        if kind.value.startswith("ticket_") and self.ticket_calendar is not None:
            return self.ticket_calendar
        return WALL_CLOCK

    def target(self, kind: DeadlineKind, priority: TicketPriority | None) -> timedelta:
        """The time allowed for ``kind`` at ``priority`` (tickets); :meth:`window` otherwise."""
        if priority is not None and priority is not TicketPriority.NORMAL:
            pair = self.ticket_targets.get(priority)
            if pair is not None and kind is DeadlineKind.TICKET_FIRST_RESPONSE:
                return pair[0]
            if pair is not None and kind is DeadlineKind.TICKET_RESOLUTION:
                return pair[1]
        return self.window(kind)

    def window(self, kind: DeadlineKind) -> timedelta:
        if kind is DeadlineKind.REVIEW_ANSWER:
            return self.review_answer.retry_delay
        window: timedelta = getattr(self, _WINDOWS[kind])
        return window

    def agent_limit(self, currency: str) -> int:
        """The most a support agent may approve in ``currency``; 0 if none is configured."""
        return self.agent_refund_limits.get(currency, 0)

    def needs_lead(self, role: str, amount: Money) -> bool:
        """Whether deciding a refund of ``amount`` takes a support lead when ``role`` decides:
        a support agent may approve up to their limit in the amount's currency.

        >>> Policy().needs_lead("support_agent", Money(9_999, "USD"))
        True
        >>> Policy().needs_lead("support_lead", Money(9_999, "USD"))
        False
        """
        return role == "support_agent" and amount.amount > self.agent_limit(amount.currency)
