"""The deadline sweep: remind before, then expire or escalate what is due. Idempotent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import attrs

from iap_flow.domain.clock import utc
from iap_flow.domain.deadlines import BY_KIND
from iap_flow.domain.errors import ConcurrentModification, InvalidInput
from iap_flow.domain.models import (
    Deadline,
    DeadlineKind,
    DeadlineState,
    Order,
    RefundRequest,
    RefundStatus,
    Subscription,
    Ticket,
)
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.ports import UnitOfWork
from iap_flow.services import acknowledgement, refund_platform, sla, subscription_writes
from iap_flow.services.context import Context
from iap_flow.services.inputs import check
from iap_flow.services.refund_platform import platform_decides
from iap_flow.services.refunds import Refunds

BATCH = 1_000
log = logging.getLogger("iap_flow.sweep")
MAX_CONFLICTS = 5
_PAYOUT_PENDING = BY_KIND[DeadlineKind.REFUND_RETRY].while_in
_AFTER_BATCH = ("retry", "policy_answer", "answer_again", "acknowledge")
"""Outcomes acted on after the batch commits: each calls a platform."""


@attrs.frozen
class SweepResult:
    """What one sweep did."""

    expired: int = 0
    reminded: int = 0
    escalated: int = 0
    retried: int = 0
    delivered: int = 0
    failed: int = 0
    """Items whose action raised: each is recorded, retried later with backoff and escalated
    after ``Policy.refund_max_attempts``; the rest of the sweep goes on."""


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
        retries: list[tuple[str, str]] = []

        def batch(tx: UnitOfWork, _: datetime) -> tuple[int, dict[str, int], list[tuple[str, str]]]:
            # Counted per attempt: a batch that rolls back (a conflict) must not count.
            acted_on = dict.fromkeys(counts, 0)
            to_retry: list[tuple[str, str]] = []
            done = 0
            for deadline in tx.due_reminders(at, BATCH):
                self._remind(tx, deadline, at)
                acted_on["reminded"] += 1
                done += 1
            for deadline in tx.due_deadlines(at, BATCH):
                done += 1
                # Deadline events are the system's (PERMISSIONS), whoever runs the sweep.
                outcome = self._act(tx, deadline, at, SYSTEM)
                if outcome in _AFTER_BATCH:
                    to_retry.append((outcome, deadline.subject_id))
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
        retried = failed = 0
        for what, subject_id in retries:
            if what != "retry":
                retried += self._platform_call(what, subject_id)
                delivered += ctx.sent_inline
                continue
            refund_id = subject_id
            try:
                refund = self._refunds.execute(SYSTEM, refund_id)
            except Exception as exc:  # one stuck item must not stop the sweep: record it
                log.exception("sweep: paying out refund %s raised; retrying later", refund_id)
                failed += 1
                if self._retry_later(refund_id, exc):
                    counts["escalated"] += 1
                continue
            delivered += ctx.sent_inline
            retried += 1
            if refund.status is RefundStatus.FAILED and refund.escalated:
                counts["escalated"] += 1  # its last attempt failed: a lead was told
        delivered += ctx.deliver()
        return SweepResult(retried=retried, delivered=delivered, failed=failed, **counts)

    def _platform_call(self, what: str, subject_id: str) -> int:
        """A policy answer, an answer sent again or an acknowledgement, after the batch
        committed (it calls the platform). 1 if it ran; a raise is logged and the
        deadline it left (if any) tries again."""
        ctx = self._ctx
        try:
            if what == "policy_answer":
                refund_platform.policy_answer(ctx, self._refunds, subject_id)
            elif what == "answer_again":
                self._refunds.answer_platform(SYSTEM, subject_id)
            else:
                acknowledgement.acknowledge(ctx, SYSTEM, subject_id)
        except Exception:  # one stuck item must not stop the sweep: it is tried again
            log.exception("sweep: %s of %s raised; trying again later", what, subject_id)
            self._try_again(what, subject_id)
            return 0
        return 1

    def _try_again(self, what: str, subject_id: str) -> None:
        """A platform call that raised before it recorded anything: its deadline again."""
        ctx, ack = self._ctx, what == "acknowledge"
        kind = DeadlineKind.PURCHASE_ACKNOWLEDGE if ack else DeadlineKind.REVIEW_ANSWER
        delay = ctx.policy.acknowledge_retry_delay if ack else ctx.policy.review_answer.retry_delay

        def again(tx: UnitOfWork, now: datetime) -> None:
            tx.close_deadlines(subject_id, (kind,))
            tx.add_deadline(Deadline(kind, subject_id, now + delay))

        try:
            ctx.run(SYSTEM, "sweep.run", {}, None, again)
        except Exception:  # the store itself is failing: the record keeps no deadline
            log.exception("sweep: could not schedule %s of %s again", what, subject_id)

    def _retry_later(self, refund_id: str, exc: Exception) -> bool:
        """Record a payout attempt that raised, and retry it with backoff; after
        ``Policy.refund_max_attempts`` tell a lead instead. True if it was escalated."""
        ctx = self._ctx
        policy = ctx.policy
        error = f"{type(exc).__name__}: {exc}"[:500]

        def record(tx: UnitOfWork, now: datetime) -> bool:
            refund = tx.get_refund(refund_id)
            if refund is None or refund.status not in _PAYOUT_PENDING:
                return False
            refund.last_error = error
            give_up = refund.attempts >= policy.refund_max_attempts
            tx.close_deadlines(refund.id, (DeadlineKind.REFUND_RETRY,))
            if give_up:
                refund.escalated = True
            else:
                backoff = policy.refund_retry_delay * 2 ** max(refund.attempts - 1, 0)
                tx.add_deadline(Deadline(DeadlineKind.REFUND_RETRY, refund.id, now + backoff))
            data = {"error": error, "escalated": give_up}
            ctx.amend(tx, refund, "submit", SYSTEM, now, data)
            if give_up:
                payload = {"refund_id": refund.id, "order_id": refund.order_id, "error": error}
                ctx.notify(tx, "refund.escalated", "support_lead", payload, now)
            return give_up

        try:
            return ctx.run(SYSTEM, "refund.retry_later", {}, None, record)
        except Exception:  # the store itself is failing: the next sweep tries again
            log.exception("sweep: could not record the failed payout of refund %s", refund_id)
            return False

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
        """Fire the deadline table's ``on_due`` event on the record, if it still stands."""
        ctx = self._ctx
        kind = deadline.kind
        rule = BY_KIND[kind]
        record = _LOADERS[rule.aggregate](tx, deadline.subject_id)
        if record is None or record.status not in rule.while_in:
            return None  # moot: the record left the states the deadline stands in
        if isinstance(record, Subscription):
            subscription_writes.deadline_due(ctx, tx, record, rule.on_due, kind, now)
            return "expired"
        if rule.on_due == "submit":
            # A payout calls the platform: retried after this batch commits, not inside it.
            assert isinstance(record, RefundRequest)
            if record.status is RefundStatus.APPROVED and platform_decides(ctx, record):
                return None  # the platform decides this refund: nothing to pay out
            return "retry"
        if rule.on_due == "answer_platform":
            assert isinstance(record, RefundRequest)
            return "policy_answer" if record.status is RefundStatus.IN_REVIEW else "answer_again"
        if rule.on_due == "acknowledge":
            assert isinstance(record, Order)
            if not ctx.acknowledges(record.platform):
                return None  # this platform is not told of deliveries
            return "acknowledge"
        data: dict[str, object] = {"deadline": kind.value}
        topic, recipient, payload = _announcement(rule.on_due, record, deadline)
        following = None
        if isinstance(record, Ticket):
            recipient, following = sla.escalation(ctx.policy, record, kind, now)
            data["level"] = payload["level"] = record.level
            payload["priority"] = record.priority.value
        if rule.on_due == "escalate" and not isinstance(record, Order):
            record.escalated = True
        ctx.change(tx, record, rule.on_due, actor, now, data, handled=kind)
        if following is not None:
            tx.add_deadline(following)
        ctx.notify(tx, topic, recipient, payload, now)
        return "expired" if rule.on_due == "expire" else "escalated"


_LOADERS: dict[
    str, Callable[[UnitOfWork, str], Order | RefundRequest | Ticket | Subscription | None]
] = {
    "order": lambda tx, id: tx.get_order(id),
    "refund": lambda tx, id: tx.get_refund(id),
    "ticket": lambda tx, id: tx.get_ticket(id),
    "subscription": lambda tx, id: tx.get_subscription(id),
}


def _announcement(
    event: str, record: Order | RefundRequest | Ticket, deadline: Deadline
) -> tuple[str, str, dict[str, object]]:
    """Who is told, and what, when the sweep fires ``event`` on a due deadline."""
    if event == "expire":
        return "order.expired", record.user_id, {"order_id": record.id}
    payload: dict[str, object] = {
        "kind": deadline.kind.value,
        "subject_id": deadline.subject_id,
        "due_at": deadline.due_at.isoformat(),
    }
    if isinstance(record, RefundRequest | Order):
        payload |= {
            "order_id": record.order_id if isinstance(record, RefundRequest) else record.id,
            "amount": record.amount.amount,
            "currency": record.amount.currency,
        }
    return "deadline.escalated", "support_lead", payload
