"""Refunds: the buyer asks, staff review before a deadline, the platform pays out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from iap_flow.errors import (
    AlreadyDecided,
    ApprovalLimitExceeded,
    InvalidInput,
    PlatformUnavailable,
    RefundNotAllowed,
)
from iap_flow.models import DeadlineKind, OrderStatus, RefundRequest, RefundStatus
from iap_flow.money import Money
from iap_flow.ports import PaymentKind, PaymentResult, UnitOfWork
from iap_flow.roles import SYSTEM, Actor, Role
from iap_flow.services.base import Context, check, ident, key_or_none, must, names, text
from iap_flow.transitions import ORDER, REFUND

_STATUS = {s.value: s for s in RefundStatus}
_REFUNDABLE = frozenset(
    {OrderStatus.PAID, OrderStatus.AWAITING_DELIVERY, OrderStatus.DELIVERED, OrderStatus.COMPLETED}
)
_DECIDED = frozenset(
    {
        RefundStatus.APPROVED,
        RefundStatus.SUBMITTED,
        RefundStatus.REFUNDED,
        RefundStatus.REJECTED,
        RefundStatus.FAILED,
    }
)
MIN_REJECT_REASON = 5


class Refunds:
    """Request, review (approve / reject), withdraw and execute refunds."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def request(
        self,
        actor: Actor,
        order_id: str,
        *,
        reason: str,
        amount: Money | None = None,
        idempotency_key: str | None = None,
    ) -> RefundRequest:
        """Ask for money back on a paid order: opens a review task with a deadline."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.request")
        order_id = ident(order_id, "order_id")
        reason = text(reason, "reason", max_len=2000)
        if amount is not None and not isinstance(amount, Money):
            raise InvalidInput("amount must be a Money", field="amount")

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            order = must(tx.get_order(order_id), "order", order_id)
            check(actor, "refund.request", order.user_id)
            if order.status not in _REFUNDABLE:
                raise RefundNotAllowed(
                    f"order {order.id} is {order.status}; only paid orders can be refunded",
                    order_id=order.id,
                )
            if order.paid_at is not None and now - order.paid_at > ctx.policy.refund_window:
                days = ctx.policy.refund_window.days
                raise RefundNotAllowed(
                    f"the refund window of {days} days for order {order.id} has passed",
                    order_id=order.id,
                )
            for earlier in tx.refunds_for_order(order.id):
                if earlier.status is not RefundStatus.WITHDRAWN:
                    raise RefundNotAllowed(
                        f"order {order.id} already has refund {earlier.id} ({earlier.status})",
                        order_id=order.id,
                    )
            money = order.amount if amount is None else amount
            if (
                money.currency != order.amount.currency
                or not 0 < money.amount <= order.amount.amount
            ):
                raise InvalidInput(
                    f"refund amount must be more than 0 and at most {order.amount}", field="amount"
                )
            refund = RefundRequest(
                id=ctx.ids.new("rfd", now),
                order_id=order.id,
                user_id=order.user_id,
                amount=money,
                reason=reason,
                status=RefundStatus.REQUESTED,
                platform=order.platform,
                created_at=now,
                updated_at=now,
            )
            ctx.created(tx, REFUND, refund.id, "refund.request", actor, now, {"reason": reason})
            target = ctx.fire(tx, REFUND, refund.id, refund.status, "open_review", SYSTEM, now)
            refund.status = _STATUS[target]
            refund.version = 2
            refund.review_due_at = now + ctx.policy.refund_review
            tx.insert_refund(refund)
            ctx.notify(tx, "refund.review_requested", "support", _summary(refund), now)
            return refund

        args = {
            "order_id": order_id,
            "reason": reason,
            "amount": None if amount is None else [amount.amount, amount.currency],
        }
        return ctx.run(actor, "refund.request", args, key_or_none(idempotency_key), body)

    def approve(
        self,
        actor: Actor,
        refund_id: str,
        *,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> RefundRequest:
        """Approve a refund and pay it out through the platform (unless the platform decides).

        A support agent may approve up to their amount limit; above it a lead must decide.
        """
        fresh: list[bool] = []
        refund = self._decide(actor, refund_id, "approve", note, idempotency_key, fresh)
        if not fresh:  # a repeat with the same key: the decision stands, report where it led
            refund = must(self._ctx.store.get_refund(refund.id), "refund", refund.id)
            if refund.status is not RefundStatus.APPROVED or (
                refund.platform_refund_id is not None
                or self._ctx.platform(refund.platform).decides_refunds
            ):
                return refund
            # still approved: the first call stopped before the payout, carry on with it
        if (
            refund.status is RefundStatus.APPROVED
            and not self._ctx.platform(refund.platform).decides_refunds
        ):
            return self.execute(SYSTEM, refund.id)
        return refund

    def reject(
        self, actor: Actor, refund_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> RefundRequest:
        """Reject a refund with a reason the buyer will read."""
        reason = text(reason, "reason", max_len=2000, min_len=MIN_REJECT_REASON)
        return self._decide(actor, refund_id, "reject", reason, idempotency_key)

    def _decide(
        self,
        actor: Actor,
        refund_id: str,
        event: str,
        note: str | None,
        key: str | None,
        fresh: list[bool] | None = None,
    ) -> RefundRequest:
        """Record the decision; ``fresh`` gets an entry if this call made it (not a repeat)."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        action = "refund." + event
        check(actor, action)
        refund_id = ident(refund_id, "refund_id")
        if note is not None:
            note = text(note, "note", max_len=2000)

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            refund = must(tx.get_refund(refund_id), "refund", refund_id)
            if fresh is not None:
                fresh.append(True)
            if refund.status in _DECIDED:
                raise AlreadyDecided(
                    refund_id=refund.id, state=refund.status, decided_by=refund.decided_by
                )
            if event == "approve" and actor.role is Role.SUPPORT_AGENT:
                limit = ctx.policy.agent_limit(refund.amount.currency)
                if refund.amount.amount > limit:
                    raise ApprovalLimitExceeded(
                        actor_id=actor.id,
                        refund_id=refund.id,
                        amount=refund.amount.amount,
                        currency=refund.amount.currency,
                        limit=limit,
                    )
            data = {"note": note} if note else None
            target = ctx.fire(tx, REFUND, refund.id, refund.status, event, actor, now, data)
            refund.status = _STATUS[target]
            refund.decided_by = actor.id
            refund.decided_at = now
            refund.decision_note = note
            _save(tx, refund, now)
            if event == "reject":
                ctx.notify(
                    tx, "refund.rejected", refund.user_id, {**_summary(refund), "reason": note}, now
                )
            return refund

        return ctx.run(
            actor, action, {"refund_id": refund_id, "note": note}, key_or_none(key), body
        )

    def withdraw(
        self, actor: Actor, refund_id: str, *, idempotency_key: str | None = None
    ) -> RefundRequest:
        """The buyer no longer wants the refund."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.withdraw")
        refund_id = ident(refund_id, "refund_id")

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            refund = must(tx.get_refund(refund_id), "refund", refund_id)
            check(actor, "refund.withdraw", refund.user_id)
            target = ctx.fire(tx, REFUND, refund.id, refund.status, "withdraw", actor, now)
            refund.status = _STATUS[target]
            _save(tx, refund, now)
            return refund

        return ctx.run(
            actor, "refund.withdraw", {"refund_id": refund_id}, key_or_none(idempotency_key), body
        )

    def execute(self, actor: Actor, refund_id: str) -> RefundRequest:
        """Pay an approved (or failed) refund out through the platform.

        The platform is called with the refund id as its idempotency key, so a retry after a
        crash or a timeout never moves money twice. Failures are retried by the sweep and
        escalated to a lead after ``Policy.refund_max_attempts``.
        """
        ctx = self._ctx
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
            _save(tx, refund, now)
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
                _save(tx, current, now)
                self._refund_order(tx, current, now)
                ctx.notify(tx, "refund.succeeded", current.user_id, _summary(current), now)
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
                    {**_summary(current), "error": result.error},
                    now,
                )
            _save(tx, current, now)
            return current

        return ctx.run(SYSTEM, "refund.settle", {}, None, settle)

    def record_platform_refund(
        self,
        actor: Actor,
        refund_id: str,
        *,
        platform_refund_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RefundRequest:
        """A platform that decides refunds itself (App Store) refunded the order."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.platform_refund")
        refund_id = ident(refund_id, "refund_id")
        if platform_refund_id is not None:
            platform_refund_id = ident(platform_refund_id, "platform_refund_id")

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            refund = must(tx.get_refund(refund_id), "refund", refund_id)
            target = ctx.fire(tx, REFUND, refund.id, refund.status, "platform_refund", actor, now)
            refund.status = _STATUS[target]
            refund.platform_refund_id = platform_refund_id
            _save(tx, refund, now)
            self._refund_order(tx, refund, now)
            ctx.notify(tx, "refund.succeeded", refund.user_id, _summary(refund), now)
            return refund

        args = {"refund_id": refund_id, "platform_refund_id": platform_refund_id}
        return ctx.run(actor, "refund.platform_refund", args, key_or_none(idempotency_key), body)

    def _refund_order(self, tx: UnitOfWork, refund: RefundRequest, now: datetime) -> None:
        order = must(tx.get_order(refund.order_id), "order", refund.order_id)
        target = self._ctx.fire(
            tx, ORDER, order.id, order.status, "refund", SYSTEM, now, {"refund_id": refund.id}
        )
        version = order.version
        order.status = OrderStatus(target)
        order.version = version + 1
        order.updated_at = now
        tx.update_order(order, version)

    # -- reads --------------------------------------------------------------------------------
    def get(self, actor: Actor, refund_id: str) -> RefundRequest:
        actor = self._ctx.actor(actor)
        check(actor, "refund.read")
        refund = must(
            self._ctx.store.get_refund(ident(refund_id, "refund_id")), "refund", refund_id
        )
        check(actor, "refund.read", refund.user_id)
        return refund

    def queue(
        self,
        actor: Actor,
        *,
        status: RefundStatus | str | Iterable[RefundStatus | str] = RefundStatus.IN_REVIEW,
        user_id: str | None = None,
        limit: int = 50,
    ) -> list[RefundRequest]:
        """Refunds by status, soonest review deadline first (the review queue by default)."""
        actor = self._ctx.actor(actor)
        check(actor, "refund.read")
        if actor.role is Role.BUYER:
            user_id = actor.id
        items = names(status, "status")
        statuses = []
        for item in items:
            if item not in _STATUS:
                raise InvalidInput(f"unknown refund status {item!r}", field="status")
            statuses.append(str(item))
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be an int from 1 to 1000", field="limit")
        return self._ctx.store.refunds(statuses, user_id, limit)


def _save(tx: UnitOfWork, refund: RefundRequest, now: datetime) -> None:
    version = refund.version
    refund.version = version + 1
    refund.updated_at = now
    tx.update_refund(refund, version)


def _summary(refund: RefundRequest) -> dict[str, object]:
    return {
        "refund_id": refund.id,
        "order_id": refund.order_id,
        "user_id": refund.user_id,
        "amount": refund.amount.amount,
        "currency": refund.amount.currency,
        "status": refund.status.value,
    }
