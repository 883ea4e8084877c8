"""Refunds: the buyer asks, staff review before a deadline, the platform pays out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from iap_flow.domain.errors import (
    AlreadyDecided,
    InvalidInput,
    RefundNotAllowed,
)
from iap_flow.domain.models import OrderStatus, Platform, RefundRequest, RefundStatus
from iap_flow.domain.money import Money
from iap_flow.domain.policy import ApprovalLimitExceeded
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.domain.transitions import REFUND
from iap_flow.ports import UnitOfWork
from iap_flow.services import inputs, refund_platform
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, key_or_none, must, text
from iap_flow.services.refund_platform import platform_decides, refund_summary

REFUNDABLE = frozenset(
    {
        OrderStatus.PAID,
        OrderStatus.AWAITING_DELIVERY,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
        OrderStatus.PARTIALLY_REFUNDED,
    }
)
_AGAIN = frozenset({RefundStatus.WITHDRAWN, RefundStatus.REFUNDED})
"""An order whose earlier refunds are all withdrawn or paid may be refunded again (the rest
of what it paid); any other earlier refund (open, rejected) stands in the way."""
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
        """The buyer asks for money back on a paid order: opens a review task with a deadline.

        ``amount`` asks for part of it (default: all that is still refundable). One refund is
        in flight per order at a time (the store enforces it); after a partial refund another
        may be asked for, up to what remains: what is refunded never exceeds what was paid.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.request")
        order_id = ident(order_id, "order_id")
        reason = text(reason, "reason", max_len=2000)
        if amount is not None and not isinstance(amount, Money):
            raise InvalidInput("amount must be a Money", field="amount")

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            order = must(tx.get_order(order_id, lock=True), "order", order_id)
            check(actor, "refund.request", order.user_id)
            if order.status not in REFUNDABLE:
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
                if earlier.status not in _AGAIN:
                    raise RefundNotAllowed(
                        f"order {order.id} already has refund {earlier.id} ({earlier.status})",
                        order_id=order.id,
                    )
            money = within(order.refundable, order.refundable if amount is None else amount)
            refund = open_refund(
                ctx, tx, order.id, order.user_id, money, reason, order.platform, actor, now
            )
            refund.review_due_at = now + ctx.policy.refund_review
            ctx.change(tx, refund, "open_review", SYSTEM, now)
            ctx.notify(tx, "refund.review_requested", "support_agent", refund_summary(refund), now)
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
        amount: Money | None = None,
        idempotency_key: str | None = None,
        policy: dict[str, object] | None = None,
    ) -> RefundRequest:
        """Approve a refund and pay it out through the platform (unless the platform decides).

        ``amount`` grants less than was asked (a partial refund); the payout is of that amount.
        A support agent may approve up to their amount limit; above it a lead must decide.
        ``policy`` (the system's policy answer) records the rules that decided it.
        """
        if amount is not None and not isinstance(amount, Money):
            raise InvalidInput("amount must be a Money", field="amount")
        fresh: list[bool] = []
        refund = self._decide(
            actor, refund_id, "approve", note, idempotency_key, fresh, policy, granted=amount
        )
        if not fresh:  # a repeat with the same key: the decision stands, report where it led
            refund = must(self._ctx.store.get_refund(refund.id), "refund", refund.id)
            if refund.status is not RefundStatus.APPROVED or platform_decides(self._ctx, refund):
                return refund
            # still approved: the first call stopped before the payout, carry on with it
        if refund.status is RefundStatus.APPROVED:
            if platform_decides(self._ctx, refund):
                return self.answer_platform(SYSTEM, refund.id)
            return self.execute(SYSTEM, refund.id)
        return refund

    def reject(
        self,
        actor: Actor,
        refund_id: str,
        *,
        reason: str,
        idempotency_key: str | None = None,
        policy: dict[str, object] | None = None,
    ) -> RefundRequest:
        """Reject a refund with a reason the buyer will read."""
        reason = text(reason, "reason", max_len=2000, min_len=MIN_REJECT_REASON)
        refund = self._decide(actor, refund_id, "reject", reason, idempotency_key, None, policy)
        if refund.status is RefundStatus.REJECTED and platform_decides(self._ctx, refund):
            return self.answer_platform(SYSTEM, refund.id)
        return refund

    def answer_platform(self, actor: Actor, refund_id: str) -> RefundRequest:
        """Send staff's decision to the platform that decides this refund (see
        :func:`~iap_flow.services.refund_platform.answer_platform`); no money moves."""
        return refund_platform.answer_platform(self._ctx, actor, refund_id)

    def _decide(
        self,
        actor: Actor,
        refund_id: str,
        event: str,
        note: str | None,
        key: str | None,
        fresh: list[bool] | None = None,
        policy: dict[str, object] | None = None,
        *,
        granted: Money | None = None,
    ) -> RefundRequest:
        """Record the decision; ``fresh`` gets an entry if this call made it (not a repeat).
        ``granted``: an approval of less than was asked."""
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
            data: dict[str, object] = {"note": note} if note else {}
            if granted is not None and granted != refund.amount:
                data["asked"] = refund.amount.amount
                refund.amount = within(refund.amount, granted)
                data["granted"] = refund.amount.amount
            if event == "approve" and ctx.policy.needs_lead(actor.role, refund.amount):
                limit = ctx.policy.agent_limit(refund.amount.currency)
                raise ApprovalLimitExceeded(
                    actor_id=actor.id,
                    refund_id=refund.id,
                    amount=refund.amount,
                    limit=Money.trusted(limit, refund.amount.currency),
                )
            refund.decided_by = actor.id
            refund.decided_at = now
            refund.decision_note = note
            if policy is not None:
                data["policy"] = policy  # the system decided, by these rules
            ctx.change(tx, refund, event, actor, now, data or None)
            if event == "reject":
                ctx.notify(
                    tx,
                    "refund.rejected",
                    refund.user_id,
                    {**refund_summary(refund), "reason": note},
                    now,
                )
            return refund

        args: dict[str, object] = {"refund_id": refund_id, "note": note}
        if granted is not None:
            args["amount"] = [granted.amount, granted.currency]
        return ctx.run(actor, action, args, key_or_none(key), body)

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
            return ctx.change(tx, refund, "withdraw", actor, now)

        return ctx.run(
            actor, "refund.withdraw", {"refund_id": refund_id}, key_or_none(idempotency_key), body
        )

    def execute(self, actor: Actor, refund_id: str) -> RefundRequest:
        """Pay an approved (or failed) refund out through the platform (see
        :func:`~iap_flow.services.refund_platform.pay_out`)."""
        return refund_platform.pay_out(self._ctx, actor, refund_id)

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
        found = inputs.statuses(status, RefundStatus)
        return self._ctx.store.refunds(found, user_id, inputs.limit(limit, 1000))

    def of_order(self, actor: Actor, order_id: str) -> list[RefundRequest]:
        """Every refund of one order, oldest first; a buyer sees only their own orders'."""
        actor = self._ctx.actor(actor)
        check(actor, "refund.read")
        order_id = ident(order_id, "order_id")
        order = must(self._ctx.store.get_order(order_id), "order", order_id)
        check(actor, "refund.read", order.user_id)
        with self._ctx.store.transaction() as tx:
            return tx.refunds_for_order(order.id)


def within(limit: Money, amount: Money) -> Money:
    """``amount`` if it is more than nothing and at most ``limit`` (same currency); else
    InvalidInput, naming the limit."""
    if amount.currency != limit.currency or not 0 < amount.amount <= limit.amount:
        raise InvalidInput(
            f"refund amount must be more than 0 and at most {limit}, got {amount}",
            field="amount",
        )
    return amount


def open_refund(
    ctx: Context,
    tx: UnitOfWork,
    order_id: str,
    user_id: str,
    amount: Money,
    reason: str,
    platform: Platform,
    actor: Actor,
    now: datetime,
) -> RefundRequest:
    """Create a refund of an order in the machine's initial state, audited."""
    refund = RefundRequest(
        id=ctx.ids.new("rfd", now),
        order_id=order_id,
        user_id=user_id,
        amount=amount,
        reason=reason,
        status=REFUND.initial,
        platform=platform,
        created_at=now,
        updated_at=now,
    )
    tx.insert_refund(refund)
    ctx.created(tx, REFUND, refund.id, "refund.request", actor, now, {"reason": reason})
    return refund
