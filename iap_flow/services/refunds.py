"""Refunds: the buyer asks, staff review before a deadline, the platform pays out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from iap_flow.domain.clock import utc
from iap_flow.domain.errors import (
    AlreadyDecided,
    ApprovalLimitExceeded,
    InvalidInput,
    PlatformUnavailable,
    RefundNotAllowed,
)
from iap_flow.domain.models import (
    Deadline,
    DeadlineKind,
    OrderStatus,
    RefundRequest,
    RefundStatus,
)
from iap_flow.domain.money import Money
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.domain.transitions import REFUND
from iap_flow.ports import PaymentKind, PaymentResult, UnitOfWork
from iap_flow.services.base import Context, check, ident, key_or_none, must, names, text
from iap_flow.services.payouts import pay_out
from iap_flow.services.refund_writes import (
    audit_only,
    refund_order,
    refund_summary,
)
from iap_flow.services.saves import save_refund

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
        review_due: datetime | None = None,
        platform_refund_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RefundRequest:
        """Ask for money back on a paid order: opens a review task with a deadline.

        The system relays a review the payment platform asks for with ``review_due`` (the
        platform's deadline; the buyer's refund window does not apply) and, if the platform
        names the case, ``platform_refund_id``: the platform then decides the refund and staff's
        decision is answered to it instead of paid out. If the order already has a refund, that
        one is returned: under review it takes the sooner deadline; decided, it is answered again.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.request")
        order_id = ident(order_id, "order_id")
        reason = text(reason, "reason", max_len=2000)
        if amount is not None and not isinstance(amount, Money):
            raise InvalidInput("amount must be a Money", field="amount")
        due = None if review_due is None else utc(review_due, "review_due")
        case = (
            None if platform_refund_id is None else text(platform_refund_id, "platform_refund_id")
        )
        if (due is not None or case is not None) and actor.role is not Role.SYSTEM:
            raise InvalidInput(
                "review_due and platform_refund_id relay a platform's review: system only",
                field="review_due",
            )
        answer_again: list[str] = []

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            order = must(tx.get_order(order_id), "order", order_id)
            check(actor, "refund.request", order.user_id)
            if due is not None:
                earlier = self._platform_asks_again(tx, order.id, due, case, now)
                if earlier is not None:
                    if earlier.status in (RefundStatus.APPROVED, RefundStatus.REJECTED):
                        answer_again.append(earlier.id)
                    return earlier
            if order.status not in _REFUNDABLE:
                raise RefundNotAllowed(
                    f"order {order.id} is {order.status}; only paid orders can be refunded",
                    order_id=order.id,
                )
            if (
                due is None
                and order.paid_at is not None
                and now - order.paid_at > ctx.policy.refund_window
            ):
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
            if due is not None:
                refund.review_due_at = due
                refund.platform_refund_id = case
                self._review_deadline(tx, refund.id, due, now)
            tx.insert_refund(refund)
            ctx.notify(tx, "refund.review_requested", "support_agent", refund_summary(refund), now)
            return refund

        args = {
            "order_id": order_id,
            "reason": reason,
            "amount": None if amount is None else [amount.amount, amount.currency],
        }
        if due is not None:
            args["review_due"] = due.isoformat()
            args["platform_refund_id"] = case
        refund = ctx.run(actor, "refund.request", args, key_or_none(idempotency_key), body)
        if answer_again:  # the platform asks about a refund staff already decided
            return self.answer_platform(SYSTEM, refund.id)
        return refund

    def _platform_asks_again(
        self, tx: UnitOfWork, order_id: str, due: datetime, case: str | None, now: datetime
    ) -> RefundRequest | None:
        """The order's refund a platform's review request joins, if it has one."""
        for earlier in reversed(tx.refunds_for_order(order_id)):
            if earlier.status is RefundStatus.WITHDRAWN:
                continue
            if earlier.status in (RefundStatus.REQUESTED, RefundStatus.IN_REVIEW):
                sooner = earlier.review_due_at is None or due < earlier.review_due_at
                if sooner:
                    earlier.review_due_at = due
                    self._review_deadline(tx, earlier.id, due, now)
                if sooner or (case is not None and case != earlier.platform_refund_id):
                    earlier.platform_refund_id = case or earlier.platform_refund_id
                    save_refund(tx, earlier, now)
            return earlier
        return None

    def _review_deadline(
        self, tx: UnitOfWork, refund_id: str, due: datetime, now: datetime
    ) -> None:
        """Replace the refund's review deadline with one due at ``due`` (the platform's)."""
        tx.close_deadlines(refund_id, (DeadlineKind.REFUND_REVIEW,))
        remind = now + (due - now) * self._ctx.policy.remind_at_fraction if due > now else None
        tx.add_deadline(Deadline(DeadlineKind.REFUND_REVIEW, refund_id, due, remind_at=remind))

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
            if refund.status is not RefundStatus.APPROVED or self._platform_decides(refund):
                return refund
            # still approved: the first call stopped before the payout, carry on with it
        if refund.status is RefundStatus.APPROVED:
            if self._platform_decides(refund):
                return self.answer_platform(SYSTEM, refund.id)
            return self.execute(SYSTEM, refund.id)
        return refund

    def reject(
        self, actor: Actor, refund_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> RefundRequest:
        """Reject a refund with a reason the buyer will read."""
        reason = text(reason, "reason", max_len=2000, min_len=MIN_REJECT_REASON)
        refund = self._decide(actor, refund_id, "reject", reason, idempotency_key)
        if refund.status is RefundStatus.REJECTED and self._platform_decides(refund):
            return self.answer_platform(SYSTEM, refund.id)
        return refund

    def _platform_decides(self, refund: RefundRequest) -> bool:
        """True if the platform decides this refund (all of its refunds, or a review it opened)."""
        return (
            refund.platform_refund_id is not None
            or self._ctx.platform(refund.platform).decides_refunds
        )

    def answer_platform(self, actor: Actor, refund_id: str) -> RefundRequest:
        """Send staff's decision to the platform that decides this refund; no money moves.

        Runs after approve / reject on such refunds; call it again if the answer failed (the
        refund's ``last_error`` says why, and the lead was notified). Each answer is audited.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.answer_platform")
        refund_id = ident(refund_id, "refund_id")
        refund = must(ctx.store.get_refund(refund_id), "refund", refund_id)
        if refund.status not in (RefundStatus.APPROVED, RefundStatus.REJECTED) or (
            not self._platform_decides(refund)
        ):
            raise InvalidInput(
                f"refund {refund.id} is {refund.status}: only a decision on a refund its "
                "platform decides is answered to the platform",
                field="refund_id",
            )
        order = must(ctx.store.get_order(refund.order_id), "order", refund.order_id)
        key = f"{refund.id}:answer:{refund.status}"
        try:
            result = ctx.platform(refund.platform).answer_refund_review(refund, order, key)
        except PlatformUnavailable as exc:
            result = PaymentResult(
                False, PaymentKind.REVIEW_ANSWER, refund.amount, error=str(exc), retryable=True
            )

        def record(tx: UnitOfWork, now: datetime) -> RefundRequest:
            current = must(tx.get_refund(refund_id), "refund", refund_id)
            data: dict[str, object] = {"decision": refund.status.value, "answered": result.success}
            if result.error:
                data["error"] = result.error
            if result.raw:
                data["detail"] = result.raw
            # Audited without a state change: the platform's own decision comes later.
            audit_only(tx, current, "answer_platform", actor, now, data)
            error = None if result.success else result.error
            if current.last_error != error:
                current.last_error = error
                save_refund(tx, current, now)
            if not result.success:
                ctx.notify(
                    tx,
                    "refund.answer_failed",
                    "support_lead",
                    {**refund_summary(current), "error": result.error},
                    now,
                )
            return current

        return ctx.run(actor, "refund.answer_platform", {}, None, record)

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
            REFUND.target(refund.id, refund.status, event)  # e.g. withdrawn: no one decides
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
            save_refund(tx, refund, now)
            if event == "reject":
                ctx.notify(
                    tx,
                    "refund.rejected",
                    refund.user_id,
                    {**refund_summary(refund), "reason": note},
                    now,
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
            save_refund(tx, refund, now)
            return refund

        return ctx.run(
            actor, "refund.withdraw", {"refund_id": refund_id}, key_or_none(idempotency_key), body
        )

    def execute(self, actor: Actor, refund_id: str) -> RefundRequest:
        """Pay an approved (or failed) refund out through the platform (see :func:`pay_out`)."""
        return pay_out(self._ctx, actor, refund_id)

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
            save_refund(tx, refund, now)
            refund_order(self._ctx, tx, refund, now)
            ctx.notify(tx, "refund.succeeded", refund.user_id, refund_summary(refund), now)
            return refund

        args = {"refund_id": refund_id, "platform_refund_id": platform_refund_id}
        return ctx.run(actor, "refund.platform_refund", args, key_or_none(idempotency_key), body)

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
