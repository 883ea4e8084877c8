"""Everything said to a payment platform about a refund: paying an approved refund out,
answering a review the platform decides itself, and the order becoming refunded.

The platform is called between two transactions, never inside one: the refund's state is
the claim (``approved`` -> ``submitted`` commits before the call), and the platform is
called with the refund's id as its idempotency key, so a call made again after a crash or a
timeout never moves money twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from iap_flow.domain.errors import AlreadyDecided, InvalidInput, PlatformUnavailable
from iap_flow.domain.models import (
    Deadline,
    DeadlineKind,
    Order,
    OrderStatus,
    RefundRequest,
    RefundStatus,
)
from iap_flow.domain.money import Money
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.ports import PaymentKind, PaymentResult, UnitOfWork
from iap_flow.services import subscription_writes
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, must

if TYPE_CHECKING:
    from iap_flow.services.refunds import Refunds

log = logging.getLogger("iap_flow")


def refund_summary(refund: RefundRequest) -> dict[str, object]:
    """The refund as notifications carry it."""
    return {
        "refund_id": refund.id,
        "order_id": refund.order_id,
        "user_id": refund.user_id,
        "amount": refund.amount.amount,
        "currency": refund.amount.currency,
        "status": refund.status.value,
    }


def refund_order(ctx: Context, tx: UnitOfWork, refund: RefundRequest, now: datetime) -> None:
    """The money went back, in the same transaction: the refund's amount is added to the
    order's refunded total, and the order becomes refunded once that is all it paid
    (partially refunded before; a subscription loses access only when it is all)."""
    order = must(tx.get_order(refund.order_id), "order", refund.order_id)
    order.refunded_amount += refund.amount.amount
    whole = order.refunded_amount >= order.amount.amount
    data = {
        "refund_id": refund.id,
        "amount": refund.amount.amount,
        "refunded_total": order.refunded_amount,
    }
    ctx.change(tx, order, "refund" if whole else "partial_refund", SYSTEM, now, data)
    if whole:
        subscription_writes.order_refunded(ctx, tx, order, now)


def platform_decides(ctx: Context, refund: RefundRequest) -> bool:
    """True if the platform decides this refund (all of its refunds, or a review it opened)."""
    return refund.platform_refund_id is not None or ctx.platform(refund.platform).decides_refunds


def pay_out(ctx: Context, actor: Actor, refund_id: str) -> RefundRequest:
    """Pay an approved (or failed) refund out through the platform.

    Failures are retried by the sweep and escalated to a lead after
    ``Policy.refund_max_attempts``. A resubmission of a refund left ``submitted`` (a crash or
    a timeout between the call and its answer) is audited and calls the platform again with
    the same key.
    """
    actor = ctx.actor(actor)
    check(actor, "refund.submit")
    refund_id = ident(refund_id, "refund_id")

    def submit(tx: UnitOfWork, now: datetime) -> RefundRequest:
        refund = must(tx.get_refund(refund_id), "refund", refund_id)
        refund.attempts += 1
        data = {"attempt": refund.attempts}
        if refund.status is not RefundStatus.SUBMITTED:
            return ctx.change(tx, refund, "submit", actor, now, data)
        ctx.open_deadlines(tx, "refund.submit", refund.id, now)
        # submitted again (from = to): the platform is called again with the same key
        return ctx.amend(tx, refund, "submit", actor, now, {**data, "resubmitted": True})

    refund = ctx.run(actor, "refund.submit", {}, None, submit)
    order = must(ctx.store.get_order(refund.order_id), "order", refund.order_id)
    try:
        result = ctx.platform(refund.platform).refund(refund, order, refund.id)
    except PlatformUnavailable as exc:
        result = PaymentResult(
            False, PaymentKind.REFUND, refund.amount, error=str(exc), retryable=True
        )
    except Exception as exc:
        # The submission committed: raising would leave the approver with an error for an
        # approval that stands. The attempt fails with its cause logged, and the sweep
        # calls the platform again with the same key (it may have moved the money).
        log.exception(
            "refund %s: the %s adapter raised during the payout", refund.id, refund.platform
        )
        error = f"{type(exc).__name__}: {exc}"[:500]
        result = PaymentResult(
            False, PaymentKind.REFUND, refund.amount, error=error, retryable=True
        )

    def settle(tx: UnitOfWork, now: datetime) -> RefundRequest:
        current = must(tx.get_refund(refund_id), "refund", refund_id)
        if current.status is not RefundStatus.SUBMITTED:
            return current  # someone else settled it meanwhile
        if result.success:
            current.platform_refund_id = result.platform_transaction_id
            current.last_error = None
            data = {"platform_refund_id": result.platform_transaction_id}
            ctx.change(tx, current, "confirm", SYSTEM, now, data)
            refund_order(ctx, tx, current, now)
            ctx.notify(tx, "refund.succeeded", current.user_id, refund_summary(current), now)
            return current
        current.last_error = result.error
        give_up = current.attempts >= ctx.policy.refund_max_attempts or not result.retryable
        if give_up:
            current.escalated = True
        ctx.change(tx, current, "fail", SYSTEM, now, {"error": result.error})
        if give_up:
            why = {"why": "refund could not be paid out", "error": result.error}
            ctx.change(tx, current, "escalate", SYSTEM, now, why)
            tx.close_deadlines(current.id, (DeadlineKind.REFUND_RETRY,))
            payload = {**refund_summary(current), "error": result.error}
            ctx.notify(tx, "refund.escalated", "support_lead", payload, now)
        return current

    return ctx.run(SYSTEM, "refund.settle", {}, None, settle)


def answer_platform(ctx: Context, actor: Actor, refund_id: str) -> RefundRequest:
    """Send staff's decision to the platform that decides this refund; no money moves.

    Runs after approve / reject on such refunds; call it again if the answer failed (the
    refund's ``last_error`` says why, and the lead was notified). Each answer is audited.
    """
    actor = ctx.actor(actor)
    check(actor, "refund.answer_platform")
    refund_id = ident(refund_id, "refund_id")
    refund = must(ctx.store.get_refund(refund_id), "refund", refund_id)
    if refund.status not in (RefundStatus.APPROVED, RefundStatus.REJECTED) or (
        not platform_decides(ctx, refund)
    ):
        raise InvalidInput(
            f"refund {refund.id} is {refund.status}: only a decision on a refund its "
            "platform decides is answered to the platform",
            field="refund_id",
        )
    order = must(ctx.store.get_order(refund.order_id), "order", refund.order_id)
    key = f"{refund.id}:answer:{refund.status}"
    platform = ctx.platform(refund.platform)
    answers = [e for e in ctx.store.history(refund_id) if e.event == "answer_platform"]
    case = refund.platform_refund_id
    if getattr(platform, "keeps_first_answer", False) and any(
        e.data.get("answered") is True and e.data.get("case", case) == case for e in answers
    ):
        # The platform keeps only the first answer to a review (Google): sending again would
        # be ignored, and a later decision must not look as if it had been heard.
        return refund
    try:
        result = platform.answer_refund_review(refund, order, key)
    except PlatformUnavailable as exc:
        result = PaymentResult(
            False, PaymentKind.REVIEW_ANSWER, refund.amount, error=str(exc), retryable=True
        )

    failures = sum(1 for e in answers if e.data.get("answered") is False)

    def record(tx: UnitOfWork, now: datetime) -> RefundRequest:
        current = must(tx.get_refund(refund_id), "refund", refund_id)
        data: dict[str, object] = {"decision": refund.status.value, "answered": result.success}
        if case is not None:
            data["case"] = case
        if result.error:
            data["error"] = result.error
        if result.raw:
            data["detail"] = result.raw  # what was sent, the consent behind it, the reply
        # Audited without a state change: the platform's own decision comes later.
        error = None if result.success else result.error
        changed = current.last_error != error
        current.last_error = error
        tx.close_deadlines(current.id, (DeadlineKind.REVIEW_ANSWER,))
        retry_at = None
        if not result.success and result.retryable:
            delay = ctx.policy.review_answer.retry_delay * 2**failures
            due = current.review_due_at
            if due is None or now + delay < due:
                retry_at = now + delay
                tx.add_deadline(Deadline(DeadlineKind.REVIEW_ANSWER, current.id, retry_at))
        if retry_at is not None:
            data["retry_at"] = retry_at.isoformat()
        ctx.amend(tx, current, "answer_platform", actor, now, data, save=changed)
        if not result.success and retry_at is None:
            payload = {**refund_summary(current), "error": result.error}
            ctx.notify(tx, "refund.answer_failed", "support_lead", payload, now)
        return current

    return ctx.run(actor, "refund.answer_platform", {}, None, record)


def policy_answer(ctx: Context, refunds: Refunds, refund_id: str) -> RefundRequest | None:
    """Decide a platform's review no one decided, by ``Policy.review_answer``, and answer it:
    the system's decision, audited with the rules that made it. None if it is moot (decided
    meanwhile, or the policy answer is off)."""
    rules = ctx.policy.review_answer
    refund = ctx.store.get_refund(refund_id)
    if refund is None or refund.status is not RefundStatus.IN_REVIEW or not rules.enabled:
        return None
    if refund.review_due_at is not None and ctx.now() >= refund.review_due_at:
        return None  # the window closed: nothing may be sent now (the review escalates)
    order = must(ctx.store.get_order(refund.order_id), "order", refund.order_id)
    delivered = order.status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
    decision = rules.decision(delivered=delivered)
    due = "" if refund.review_due_at is None else f" by {refund.review_due_at.isoformat()}"
    note = (
        f"policy answer: {decision} (the purchase was {'' if delivered else 'not '}delivered); "
        f"no one decided the platform's review{due}"
    )
    policy = {**rules.rules(), "order_status": order.status.value, "decision": decision}
    key = f"{refund.id}:policy_answer"
    try:
        if decision == "approve":
            return refunds.approve(SYSTEM, refund.id, note=note, idempotency_key=key, policy=policy)
        return refunds.reject(SYSTEM, refund.id, reason=note, idempotency_key=key, policy=policy)
    except AlreadyDecided:
        return None  # a person decided between the sweep's read and this decision


def already_recorded(
    history: list[RefundRequest], order: Order, case: str | None, opened: list[RefundRequest]
) -> RefundRequest | None:
    """The refund that already records a platform refund: the one with its case id, or the
    last one of an order already refunded in full with nothing open."""
    if case is not None:
        for earlier in history:
            if earlier.status is RefundStatus.REFUNDED and earlier.platform_refund_id == case:
                return earlier
    if order.status is OrderStatus.REFUNDED and not opened:
        refunded = [r for r in history if r.status is RefundStatus.REFUNDED]
        return refunded[-1] if refunded else (history[-1] if history else None)
    return None


def capped_share(order: Order, amount: Money) -> Money:
    """A platform's partial refund as the order records it: never more than what remains
    (a share rounded up past it refunds the rest)."""
    if amount.currency != order.amount.currency:
        raise InvalidInput(
            f"refund in {amount.currency} of an order paid in {order.amount.currency}",
            field="amount",
        )
    remaining = order.refundable
    return remaining if amount.amount > remaining.amount else amount
