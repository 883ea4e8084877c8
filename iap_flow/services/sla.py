"""Service levels of feedback tickets: targets per priority in business hours, the clock that
stops while waiting on the buyer, the warning before a breach and the escalation levels.

Called by :meth:`Context.change` and :meth:`Context.open_deadlines` (the one write path), so
every way a ticket changes keeps its deadlines and its due times in step.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from iap_flow.domain.deadlines import DeadlineRule
from iap_flow.domain.models import Deadline, DeadlineKind, Ticket, TicketStatus
from iap_flow.domain.policy import Policy
from iap_flow.ports import UnitOfWork

WAITING = TicketStatus.WAITING_ON_BUYER.value
_DUE_FIELD = {
    DeadlineKind.TICKET_FIRST_RESPONSE: "first_response_due",
    DeadlineKind.TICKET_RESOLUTION: "resolution_due",
}


def deadline(
    policy: Policy, rule: DeadlineRule, subject_id: str, now: datetime, record: object = None
) -> Deadline:
    """The deadline ``rule`` opens at ``now``: due after the time allowed (a ticket's target
    for its priority, in business hours), with the warning at ``remind_at_fraction`` of it.
    A ticket's own due time is set to match."""
    priority = record.priority if isinstance(record, Ticket) else None
    allowed = policy.target(rule.kind, priority)
    calendar = policy.calendar(rule.kind)
    due = calendar.add(now, allowed)
    remind = calendar.add(now, allowed * policy.remind_at_fraction) if rule.reminds else None
    if isinstance(record, Ticket) and rule.kind in _DUE_FIELD:
        setattr(record, _DUE_FIELD[rule.kind], due)
    return Deadline(rule.kind, subject_id, due, remind_at=remind)


def changed(
    policy: Policy, tx: UnitOfWork, ticket: Ticket, state: str, target: str, now: datetime
) -> None:
    """Keep the ticket's clock in step with a transition from ``state`` to ``target``.

    Into waiting on the buyer: the deadlines were closed (they do not stand while waiting)
    and the time left is kept in the ticket's due times. Out of it: each target not yet
    passed runs again from ``now`` with the business time it had left, and the warning with
    it; a ticket already escalated gets its current level's window again.
    """
    if target == WAITING and state != WAITING:
        ticket.waiting_since = now
        return
    if state != WAITING or target == WAITING:
        return
    since = ticket.waiting_since or now
    ticket.waiting_since = None
    if target == TicketStatus.RESOLVED.value:
        return
    calendar = policy.calendar(DeadlineKind.TICKET_RESOLUTION)
    for kind, field in _DUE_FIELD.items():
        due: datetime | None = getattr(ticket, field)
        if due is None or due <= since:  # passed (already fired) before the wait began
            continue
        if kind is DeadlineKind.TICKET_FIRST_RESPONSE and ticket.first_response_at is not None:
            continue
        left = calendar.between(since, due)
        allowed = policy.target(kind, ticket.priority)
        used = max(allowed - left, timedelta(0))
        new_due = calendar.add(now, left)
        warn_after = allowed * policy.remind_at_fraction - used
        remind = calendar.add(now, warn_after) if warn_after > timedelta(0) else None
        setattr(ticket, field, new_due)
        tx.add_deadline(Deadline(kind, ticket.id, new_due, remind_at=remind))
    if 0 < ticket.level < len(policy.escalation_levels):
        window = policy.escalation_window
        tx.add_deadline(
            Deadline(DeadlineKind.TICKET_ESCALATION, ticket.id, calendar.add(now, window))
        )


def escalation(
    policy: Policy, ticket: Ticket, kind: DeadlineKind, now: datetime
) -> tuple[str, Deadline | None]:
    """Escalate ``ticket`` because ``kind`` passed: who is told, and the deadline of the level
    it is now at (none at the top level, or when that level already has one).

    A target passing (first response, resolution) brings the ticket to the first level (a
    lead) and starts that level's window; only that window passing raises it further (a
    manager). A second target passing tells the current level again.
    """
    levels = policy.escalation_levels
    if kind is DeadlineKind.TICKET_ESCALATION:
        ticket.level = min(ticket.level + 1, len(levels))
    elif ticket.level == 0:
        ticket.level = 1
    else:
        return levels[ticket.level - 1], None
    recipient = levels[ticket.level - 1]
    if ticket.level >= len(levels):
        return recipient, None
    calendar = policy.calendar(DeadlineKind.TICKET_ESCALATION)
    due = calendar.add(now, policy.escalation_window)
    return recipient, Deadline(DeadlineKind.TICKET_ESCALATION, ticket.id, due)
