"""The deadline sweep: remind before, then expire or escalate what is due. Idempotent."""

from __future__ import annotations

from datetime import datetime

import attrs

from iap_flow.domain.clock import utc
from iap_flow.domain.deadlines import BY_KIND
from iap_flow.domain.errors import ConcurrentModification, InvalidInput
from iap_flow.domain.models import (
    Deadline,
    DeadlineKind,
    DeadlineState,
    OrderStatus,
    RefundStatus,
)
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.ports import UnitOfWork
from iap_flow.services.context import Context
from iap_flow.services.inputs import check
from iap_flow.services.refunds import Refunds

BATCH = 1_000
MAX_CONFLICTS = 5
_PAYOUT_PENDING = (RefundStatus.APPROVED, RefundStatus.SUBMITTED, RefundStatus.FAILED)


@attrs.frozen
class SweepResult:
    """What one sweep did."""

    expired: int = 0
    reminded: int = 0
    escalated: int = 0
    retried: int = 0
    delivered: int = 0


class Sweeper:
    """Acts on due deadlines. Run it from cron, a worker loop, or the CLI: ``iap-flow sweep``."""

    def __init__(self, ctx: Context, refunds: Refunds) -> None:
        self._ctx = ctx
        self._refunds = refunds

    def sweep(self, actor: Actor = SYSTEM, *, now: datetime | None = None) -> SweepResult:
        """Remind, expire and escalate everything due at ``now`` (default: the clock's now).

        Each deadline is acted on once, however often the sweep runs.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "sweep.run")
        at = ctx.clock.now() if now is None else utc(now, "now")
        if at > ctx.clock.now():
            raise InvalidInput("sweep cannot run in the future of the flow's clock", field="now")
        counts = {"expired": 0, "reminded": 0, "escalated": 0}
        retries: list[str] = []

        def batch(tx: UnitOfWork, _: datetime) -> tuple[int, dict[str, int], list[str]]:
            # Counted per attempt: a batch that rolls back (a conflict) must not count.
            acted_on = dict.fromkeys(counts, 0)
            to_retry: list[str] = []
            done = 0
            for deadline in tx.due_reminders(at, BATCH):
                self._remind(tx, deadline, at)
                acted_on["reminded"] += 1
                done += 1
            for deadline in tx.due_deadlines(at, BATCH):
                done += 1
                # Deadline events are the system's (PERMISSIONS), whoever runs the sweep.
                outcome = self._act(tx, deadline, at, SYSTEM)
                if outcome == "retry":
                    to_retry.append(deadline.subject_id)
                elif outcome:
                    acted_on[outcome] += 1
            return done, acted_on, to_retry

        delivered = 0
        conflicts = 0
        while True:
            try:
                acted, batch_counts, batch_retries = ctx.run(actor, "sweep.run", {}, None, batch)
            except ConcurrentModification:
                # A command changed a record this batch was acting on; the batch rolled back
                # whole. Run it again on fresh reads (the deadline may be moot by now).
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    raise
                continue
            delivered += ctx.sent_inline
            for name, n in batch_counts.items():
                counts[name] += n
            retries.extend(batch_retries)
            if acted < BATCH:
                break
        retried = 0
        for refund_id in retries:
            self._refunds.execute(SYSTEM, refund_id)
            delivered += ctx.sent_inline
            retried += 1
        delivered += ctx.deliver()
        return SweepResult(retried=retried, delivered=delivered, **counts)

    def _remind(self, tx: UnitOfWork, deadline: Deadline, now: datetime) -> None:
        assert deadline.id is not None
        rule = BY_KIND[deadline.kind]
        self._ctx.notify(
            tx,
            "deadline.reminder",
            rule.owner.value,
            {
                "kind": deadline.kind.value,
                "subject_id": deadline.subject_id,
                "due_at": deadline.due_at.isoformat(),
            },
            now,
        )
        tx.set_deadline_state(deadline.id, DeadlineState.REMINDED)

    def _act(self, tx: UnitOfWork, deadline: Deadline, now: datetime, actor: Actor) -> str | None:
        assert deadline.id is not None
        outcome = self._act_on(tx, deadline, now, actor)
        # FIRED: the deadline passed with its work undone (a breach); DONE: it was moot.
        tx.set_deadline_state(deadline.id, DeadlineState.FIRED if outcome else DeadlineState.DONE)
        return outcome

    def _act_on(
        self, tx: UnitOfWork, deadline: Deadline, now: datetime, actor: Actor
    ) -> str | None:
        ctx = self._ctx
        kind = deadline.kind
        payload = {
            "kind": kind.value,
            "subject_id": deadline.subject_id,
            "due_at": deadline.due_at.isoformat(),
        }
        if kind is DeadlineKind.ORDER_PAYMENT:
            order = tx.get_order(deadline.subject_id)
            if order is None or order.status is not OrderStatus.PENDING_PAYMENT:
                return None
            ctx.change(tx, order, "expire", actor, now, handled=kind)
            ctx.notify(tx, "order.expired", order.user_id, {"order_id": order.id}, now)
            return "expired"
        if kind is DeadlineKind.REFUND_REVIEW:
            refund = tx.get_refund(deadline.subject_id)
            if refund is None or refund.status is not RefundStatus.IN_REVIEW:
                return None
            refund.escalated = True
            ctx.change(tx, refund, "escalate", actor, now, {"deadline": kind.value})
            ctx.notify(
                tx,
                "deadline.escalated",
                "support_lead",
                {
                    **payload,
                    "order_id": refund.order_id,
                    "amount": refund.amount.amount,
                    "currency": refund.amount.currency,
                },
                now,
            )
            return "escalated"
        if kind is DeadlineKind.REFUND_RETRY:
            refund = tx.get_refund(deadline.subject_id)
            if refund is None or refund.status not in _PAYOUT_PENDING:
                return None
            if refund.status is RefundStatus.APPROVED and (
                refund.platform_refund_id is not None
                or ctx.platform(refund.platform).decides_refunds
            ):
                return None  # the platform decides this refund: nothing to pay out
            return "retry"
        ticket = tx.get_ticket(deadline.subject_id)
        if ticket is None or ticket.status.value not in BY_KIND[kind].while_in:
            return None
        ticket.escalated = True
        ctx.change(tx, ticket, "escalate", actor, now, {"deadline": kind.value})
        ctx.notify(tx, "deadline.escalated", "support_lead", payload, now)
        return "escalated"
