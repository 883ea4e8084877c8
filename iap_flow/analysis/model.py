"""The analysis report's records: what ``iap-flow report`` prints and draws.

Every figure here came out of one named aggregate of the store (:data:`QUERIES`); the only
Python arithmetic is ratios of two database counts and joining two aggregates on their key.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from iap_flow.domain.money import Money


def ratio(part: int, whole: int) -> float | None:
    """``part / whole``, or None when there is nothing to divide by."""
    return part / whole if whole else None


@attrs.frozen
class Segment:
    """Orders created in the period for one day, product, kind or platform (or all of them)."""

    key: str
    label: str
    orders: int
    paid: int
    failed: int
    refunded: int
    revenue: tuple[Money, ...]
    """Gross revenue of the paid orders, one amount per currency (largest first)."""

    @property
    def conversion(self) -> float | None:
        """Created -> paid."""
        return ratio(self.paid, self.orders)

    @property
    def failure_rate(self) -> float | None:
        """Declined payments / payment attempts that got an answer (paid or declined)."""
        return ratio(self.failed, self.paid + self.failed)

    @property
    def refund_rate(self) -> float | None:
        """Refunded orders / paid orders."""
        return ratio(self.refunded, self.paid)


@attrs.frozen
class RefundSegment:
    """Refund requests made in the period for one product or platform."""

    key: str
    requests: int
    refunded: int
    rejected: int
    refunded_amount: tuple[Money, ...]
    paid_orders: int
    """Paid orders of the period for the same key (0 if none): the base of the refund rate."""
    refunded_orders: int

    @property
    def refund_rate(self) -> float | None:
        """Refunded orders / paid orders, for orders created in the period."""
        return ratio(self.refunded_orders, self.paid_orders)


@attrs.frozen
class Spread:
    """A duration's distribution in seconds: count, mean and nearest-rank p50 / p95."""

    n: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None


@attrs.frozen
class PersonStats:
    """One reviewer's refund decisions, or one agent's first answers to tickets."""

    who: str
    spread: Spread
    rejected: int = 0
    """Refunds this reviewer rejected (reviewers only)."""
    reopened: int = 0
    """Tickets this agent answered first that the buyer reopened (agents only)."""
    escalated: int = 0


@attrs.frozen
class Breach:
    """Deadlines of one kind due in the period: how many were missed (fired) or still open."""

    kind: str
    deadlines: int
    breached: int
    still_open: int

    @property
    def rate(self) -> float | None:
        return ratio(self.breached, self.deadlines)


@attrs.frozen
class Sales:
    total: Segment
    by_day: tuple[Segment, ...]
    by_product: tuple[Segment, ...]
    by_kind: tuple[Segment, ...]
    by_platform: tuple[Segment, ...]
    by_status: tuple[Segment, ...] = ()
    """Orders of the period by the status they are in now."""


@attrs.frozen
class Refunds:
    by_product: tuple[RefundSegment, ...]
    by_platform: tuple[RefundSegment, ...]
    decisions: dict[str, int]
    reasons: tuple[tuple[str, int], ...]
    """The most frequent reasons, word for word (reason pickers repeat them)."""
    review: Spread
    execution: Spread
    """From approval to the platform confirming the payout."""
    reviewers: tuple[PersonStats, ...]


@attrs.frozen
class Service:
    breaches: tuple[Breach, ...]
    escalations: dict[str, int]
    breaches_by_agent: tuple[tuple[str, str, int], ...]
    """(agent, deadline kind, breaches): the staff member who last acted on the case before its deadline passed (else the unassigned queue)."""
    first_response: Spread
    resolution: Spread
    tickets: int
    reopened: int
    agents: tuple[PersonStats, ...]

    @property
    def reopen_rate(self) -> float | None:
        return ratio(self.reopened, self.tickets)


@attrs.frozen
class Topic:
    """A recurring problem: texts that share their most weighted words."""

    label: str
    terms: tuple[str, ...]
    count: int
    """Texts whose strongest topic this is (scaled up by the sample stride when sampled)."""
    examples: tuple[str, ...]
    trend: tuple[tuple[str, int], ...]
    """(ISO week start, texts) across the period."""
    average_rating: float | None = None
    """Mean rating of the texts that have one (feedback, not refund reasons)."""


@attrs.frozen
class Topics:
    """Topics found in one kind of text (feedback or refund reasons)."""

    source: str
    texts: int
    """Texts in the period."""
    analysed: int
    """Texts the model read: all of them, or a systematic sample of every ``stride``-th."""
    stride: int
    topics: tuple[Topic, ...]
    note: str = ""
    weeks: tuple[tuple[str, int], ...] = ()
    """(ISO week start, texts of any topic): the base of each topic's weekly share."""

    def shares(self, topic: Topic) -> list[float]:
        """The topic's share of each week's texts: comparable across busy and quiet weeks."""
        totals = dict(self.weeks)
        return [n / totals[w] if totals.get(w) else 0.0 for w, n in topic.trend]


@attrs.frozen
class Feedback:
    ratings: dict[int, int]
    by_day: tuple[tuple[str, int, float], ...]
    """(day, tickets, average rating)."""
    topics: Topics
    reason_topics: Topics

    @property
    def count(self) -> int:
        return sum(self.ratings.values())

    @property
    def average(self) -> float | None:
        n = self.count
        return sum(k * v for k, v in self.ratings.items()) / n if n else None


@attrs.frozen
class PlanCurrency:
    """The subscriptions giving access now in one currency, and their recurring revenue."""

    currency: str
    active: int
    """Active, cancelled (running to the period end) or in grace period."""
    in_grace: int
    cancelled: int
    mrr: Money
    """Monthly recurring revenue of those that renew (active or in grace, auto-renew on): each
    one's current price as a month (monthly as is, yearly / 12, weekly x 52 / 12), summed,
    rounded half up to the minor unit."""


@attrs.frozen
class SubscriptionFigures:
    """Subscriptions now (``by_currency``) and what they did in the period (the rest)."""

    by_currency: tuple[PlanCurrency, ...] = ()
    renewals: int = 0
    renewal_revenue: tuple[Money, ...] = ()
    started: int = 0
    voluntary_churn: int = 0
    """Expired after the buyer turned auto-renew off."""
    involuntary_churn: int = 0
    """Expired from any other state: a failed renewal, on hold, paused, or the store ended it."""
    revoked: int = 0
    entered_grace: int = 0
    grace_recoveries: int = 0
    """Back to active from the grace period (a renewal collected in time)."""
    hold_recoveries: int = 0

    @property
    def active(self) -> int:
        return sum(c.active for c in self.by_currency)

    @property
    def grace_recovery_rate(self) -> float | None:
        """Recoveries from grace / grace periods entered, in the period."""
        return ratio(self.grace_recoveries, self.entered_grace)


@attrs.frozen
class Analysis:
    """The whole report for ``[since, until)`` (None: unbounded)."""

    since: datetime | None
    until: datetime | None
    generated_at: datetime
    sales: Sales
    refunds: Refunds
    service: Service
    feedback: Feedback
    subscriptions: SubscriptionFigures = SubscriptionFigures()
