"""Which deadline each step starts, what stops it, and what the sweep does when it is due.

One table, read by the write path (to open and close deadlines in the same transaction as the
state change), by the sweep (to act on due ones) and by the process document.
"""

from __future__ import annotations

import functools

import attrs

from iap_flow.domain.models import DeadlineKind
from iap_flow.domain.roles import Role


@attrs.frozen
class DeadlineRule:
    kind: DeadlineKind
    aggregate: str
    started_by: frozenset[str]
    """Actions (``"order.place"``) that open this deadline."""
    while_in: frozenset[str]
    """The deadline stands while the record is in one of these states; leaving them closes it."""
    on_due: str
    """The machine event the sweep fires when the deadline passes."""
    owner: Role
    """Who must act before the deadline."""
    reminds: bool
    summary: str
    calls_platform: bool = False
    """The sweep calls the platform (after its batch commits) instead of firing a machine
    event; ``on_due`` names the call (``answer_platform``, ``acknowledge``)."""


RULES: tuple[DeadlineRule, ...] = (
    DeadlineRule(
        DeadlineKind.ORDER_PAYMENT,
        "order",
        frozenset({"order.place", "order.renew"}),
        frozenset({"pending_payment"}),
        "expire",
        Role.BUYER,
        reminds=False,
        summary="an unpaid order expires",
    ),
    DeadlineRule(
        DeadlineKind.ORDER_DELIVERY,
        "order",
        frozenset({"order.pay"}),
        frozenset({"paid", "awaiting_delivery"}),
        "escalate",
        Role.DEVELOPER,
        reminds=True,
        summary="a paid order is delivered; on-call is warned before, a lead is told after",
    ),
    DeadlineRule(
        DeadlineKind.REFUND_REVIEW,
        "refund",
        frozenset({"refund.open_review"}),
        frozenset({"in_review"}),
        "escalate",
        Role.SUPPORT_AGENT,
        reminds=True,
        summary="staff decide a refund request; reminded before, escalated to a lead after",
    ),
    DeadlineRule(
        DeadlineKind.REFUND_RETRY,
        "refund",
        frozenset({"refund.approve", "refund.submit", "refund.fail"}),
        frozenset({"approved", "submitted", "failed"}),
        "submit",
        Role.SYSTEM,
        reminds=False,
        summary="an approved refund not yet paid out, or an unconfirmed or failed one, is "
        "(re)submitted to the platform with the same key",
    ),
    DeadlineRule(
        DeadlineKind.TICKET_FIRST_RESPONSE,
        "ticket",
        frozenset({"ticket.submit", "ticket.reopen"}),
        frozenset({"open", "reopened"}),
        "escalate",
        Role.SUPPORT_AGENT,
        reminds=True,
        summary="staff answer feedback for the first time; escalated to a lead after",
    ),
    DeadlineRule(
        DeadlineKind.TICKET_RESOLUTION,
        "ticket",
        frozenset({"ticket.submit", "ticket.reopen"}),
        frozenset({"open", "answered", "reopened"}),
        "escalate",
        Role.SUPPORT_AGENT,
        reminds=True,
        summary="staff resolve the buyer's problem; escalated to a lead after",
    ),
    # Opened by the sweep when it escalates a ticket: the level's own time before the next
    # level (a manager) is told. Waiting on the buyer stops it like the targets.
    DeadlineRule(
        DeadlineKind.TICKET_ESCALATION,
        "ticket",
        frozenset(),
        frozenset({"open", "answered", "reopened"}),
        "escalate",
        Role.SUPPORT_LEAD,
        reminds=False,
        summary="an escalated ticket is resolved in the lead's time; a manager is told after",
    ),
    # Subscription deadlines are opened by the subscription service at the record's own
    # times (the period end plus the leeway, the grace end, the hold end), not at now + window.
    DeadlineRule(
        DeadlineKind.SUBSCRIPTION_PERIOD_END,
        "subscription",
        frozenset(),
        frozenset({"active", "cancelled"}),
        "expire",
        Role.SYSTEM,
        reminds=False,
        summary="a subscription not renewed by its period end (plus the leeway) expires",
    ),
    DeadlineRule(
        DeadlineKind.SUBSCRIPTION_GRACE_END,
        "subscription",
        frozenset(),
        frozenset({"in_grace_period"}),
        "hold",
        Role.SYSTEM,
        reminds=False,
        summary="a failed renewal not recovered by the grace end goes on hold (no access)",
    ),
    DeadlineRule(
        DeadlineKind.SUBSCRIPTION_HOLD_END,
        "subscription",
        frozenset(),
        frozenset({"on_hold"}),
        "expire",
        Role.SYSTEM,
        reminds=False,
        summary="a subscription on hold that is not recovered expires",
    ),
    # Opened by the platform-event and acknowledgement services at the platform's own times.
    DeadlineRule(
        DeadlineKind.REVIEW_ANSWER,
        "refund",
        frozenset(),
        frozenset({"in_review", "approved", "rejected"}),
        "answer_platform",
        Role.SYSTEM,
        reminds=False,
        summary="a platform's refund review is answered before its window closes: by the "
        "policy answer if no one decided, failed sends retried with backoff inside the window",
        calls_platform=True,
    ),
    DeadlineRule(
        DeadlineKind.PURCHASE_ACKNOWLEDGE,
        "order",
        frozenset({"order.deliver"}),
        frozenset({"delivered", "completed"}),
        "acknowledge",
        Role.SYSTEM,
        reminds=False,
        summary="a delivered purchase is acknowledged to its platform (Google refunds one not "
        "acknowledged in 3 days): retried with backoff, escalated to a lead before then",
        calls_platform=True,
    ),
)

BY_KIND: dict[DeadlineKind, DeadlineRule] = {rule.kind: rule for rule in RULES}


@functools.cache
def opened_by(action: str) -> tuple[DeadlineRule, ...]:
    return tuple(rule for rule in RULES if action in rule.started_by)


@functools.cache
def closed_by(aggregate: str, from_state: str, to_state: str) -> tuple[DeadlineKind, ...]:
    """Deadlines that a transition from ``from_state`` to ``to_state`` ends."""
    return tuple(
        rule.kind
        for rule in RULES
        if rule.aggregate == aggregate
        and from_state in rule.while_in
        and to_state not in rule.while_in
    )
