"""Paying an approved refund out through its platform, with retries that never pay twice."""

from __future__ import annotations

from datetime import datetime

from iap_flow.domain.errors import PlatformUnavailable
from iap_flow.domain.models import DeadlineKind, RefundRequest, RefundStatus
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.domain.transitions import REFUND
from iap_flow.ports import PaymentKind, PaymentResult, UnitOfWork
from iap_flow.services.base import Context, check, ident, must
from iap_flow.services.refund_writes import refund_order, refund_summary
from iap_flow.services.saves import save_refund

_STATUS = {s.value: s for s in RefundStatus}


def pay_out(ctx: Context, actor: Actor, refund_id: str) -> RefundRequest:
    """Pay an approved (or failed) refund out through the platform.

    The platform is called with the refund id as its idempotency key, so a retry after a
    crash or a timeout never moves money twice. Failures are retried by the sweep and
    escalated to a lead after ``Policy.refund_max_attempts``.
    """
    actor = ctx.actor(actor)
    check(actor, "refund.submit")
    refund_id = ident(refund_id, "refund_id")

    def submit(tx: UnitOfWork, now: datetime) -> RefundRequest:
        refund = must(tx.get_refund(refund_id), "refund", refund_id)
        if refund.status is not RefundStatus.SUBMITTED:
            target = ctx.fire(
                tx,
                REFUND,
                refund.id,
                refund.status,
                "submit",
                actor,
                now,
                {"attempt": refund.attempts + 1},
            )
            refund.status = _STATUS[target]
        else:  # resubmitting after a crash or timeout: same key, no new state
            ctx.open_deadlines(tx, "refund.submit", refund.id, now)
        refund.attempts += 1
        save_refund(tx, refund, now)
        return refund

    refund = ctx.run(actor, "refund.submit", {}, None, submit)
    order = must(ctx.store.get_order(refund.order_id), "order", refund.order_id)
    try:
        result = ctx.platform(refund.platform).refund(refund, order, refund.id)
    except PlatformUnavailable as exc:
        result = PaymentResult(
            False, PaymentKind.REFUND, refund.amount, error=str(exc), retryable=True
        )

    def settle(tx: UnitOfWork, now: datetime) -> RefundRequest:
        current = must(tx.get_refund(refund_id), "refund", refund_id)
        if current.status is not RefundStatus.SUBMITTED:
            return current  # someone else settled it meanwhile
        if result.success:
            target = ctx.fire(
                tx,
                REFUND,
                current.id,
                current.status,
                "confirm",
                SYSTEM,
                now,
                {"platform_refund_id": result.platform_transaction_id},
            )
            current.status = _STATUS[target]
            current.platform_refund_id = result.platform_transaction_id
            current.last_error = None
            save_refund(tx, current, now)
            refund_order(ctx, tx, current, now)
            ctx.notify(tx, "refund.succeeded", current.user_id, refund_summary(current), now)
            return current
        target = ctx.fire(
            tx, REFUND, current.id, current.status, "fail", SYSTEM, now, {"error": result.error}
        )
        current.status = _STATUS[target]
        current.last_error = result.error
        if current.attempts >= ctx.policy.refund_max_attempts or not result.retryable:
            ctx.fire(
                tx,
                REFUND,
                current.id,
                current.status,
                "escalate",
                SYSTEM,
                now,
                {"why": "refund could not be paid out", "error": result.error},
            )
            tx.close_deadlines(current.id, (DeadlineKind.REFUND_RETRY,))
            current.escalated = True
            ctx.notify(
                tx,
                "refund.escalated",
                "support_lead",
                {**refund_summary(current), "error": result.error},
                now,
            )
        save_refund(tx, current, now)
        return current

    return ctx.run(SYSTEM, "refund.settle", {}, None, settle)
