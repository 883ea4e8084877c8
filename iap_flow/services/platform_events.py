"""What a payment platform reports on its own: a purchase it charged, a refund it decided.

Store adapters turn verified notifications into these commands, run on the one write path like
every other command (permission, machine, audit, outbox, idempotency). No platform by name."""

from __future__ import annotations

from datetime import datetime

from iap_flow.domain.clock import utc
from iap_flow.domain.errors import InvalidInput, NotFound, RefundNotAllowed
from iap_flow.domain.models import (
    Deadline,
    DeadlineKind,
    Order,
    OrderStatus,
    Platform,
    RefundRequest,
    RefundStatus,
)
from iap_flow.domain.money import Money
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.domain.transitions import ORDER
from iap_flow.ports import OrderQuery, UnitOfWork
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, key_or_none, must, text
from iap_flow.services.orders import _platform, mark_paid
from iap_flow.services.refund_platform import (
    already_recorded,
    capped_share,
    refund_order,
    refund_summary,
)
from iap_flow.services.refunds import REFUNDABLE, Refunds, open_refund

_ADOPTABLE = (OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED)
_OPEN_FOR_REFUND = (
    RefundStatus.REQUESTED,
    RefundStatus.IN_REVIEW,
    RefundStatus.APPROVED,
    RefundStatus.SUBMITTED,
    RefundStatus.FAILED,
)
_OPEN_FOR_DECLINE = (RefundStatus.REQUESTED, RefundStatus.IN_REVIEW, RefundStatus.APPROVED)


class PlatformEvents:
    """Record what a payment platform did by itself. Every command takes an idempotency key:
    pass the platform's notification id so a notification delivered twice changes nothing."""

    def __init__(self, ctx: Context, refunds: Refunds) -> None:
        self._ctx = ctx
        self._refunds = refunds

    # -- purchases ----------------------------------------------------------------------------
    def purchased(
        self,
        actor: Actor,
        *,
        platform: Platform | str,
        transaction_id: str,
        sku: str,
        user_id: str | None = None,
        original_transaction_id: str | None = None,
        amount: Money | None = None,
        idempotency_key: str | None = None,
    ) -> Order:
        """The platform charged the buyer: the order for ``transaction_id``, paid.

        An order already paid with this transaction is returned as it is. Otherwise the buyer's
        newest unpaid order for the product on this platform is paid, or a new paid order is
        made (at ``amount``, default the catalogue price). With ``original_transaction_id``
        naming an earlier purchase, the new order is a renewal of that subscription and
        belongs to its buyer (``user_id`` may then be omitted).
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "order.record")
        plat = _platform(platform)
        ctx.platform(plat)
        txn = ident(transaction_id, "transaction_id")
        sku = ident(sku, "sku")
        user = None if user_id is None else ident(user_id, "user_id")
        original = None
        if original_transaction_id is not None and original_transaction_id != txn:
            original = ident(original_transaction_id, "original_transaction_id")
        if amount is not None and not isinstance(amount, Money):
            raise InvalidInput("amount must be a Money", field="amount")
        waiting = self._unpaid(user, sku, plat) if original is None else []

        def body(tx: UnitOfWork, now: datetime) -> Order:
            done = tx.find_order_by_transaction(plat, txn)
            if done is not None:
                return done
            first = None if original is None else tx.find_order_by_transaction(plat, original)
            for candidate in waiting:
                order = tx.get_order(candidate)
                if order is not None and order.status in _ADOPTABLE:
                    return mark_paid(ctx, tx, order, actor, now, txn)
            buyer = first.user_id if first is not None else user
            if buyer is None:
                raise InvalidInput(
                    f"user_id is needed: transaction {txn} renews no recorded purchase",
                    field="user_id",
                )
            product = must(tx.get_product(sku), "product", sku)
            order = Order(
                id=ctx.ids.new("ord", now),
                user_id=buyer,
                sku=product.sku,
                title=product.title,
                kind=product.kind,
                period=product.period,
                amount=product.price if amount is None else amount,
                platform=plat,
                status=OrderStatus.PENDING_PAYMENT,
                subscription_id=None if first is None else (first.subscription_id or first.id),
                created_at=now,
                updated_at=now,
            )
            tx.insert_order(order)
            data: dict[str, object] = {"transaction_id": txn}
            if original is not None:
                data["original_transaction_id"] = original
                data["subscription_id"] = order.subscription_id
            ctx.created(tx, ORDER, order.id, "order.record", actor, now, data)
            return mark_paid(ctx, tx, order, actor, now, txn)

        args = {
            "platform": plat.value,
            "transaction_id": txn,
            "sku": sku,
            "user_id": user,
            "original_transaction_id": original,
            "amount": None if amount is None else [amount.amount, amount.currency],
        }
        return ctx.run(actor, "order.record", args, key_or_none(idempotency_key), body)

    def _unpaid(self, user: str | None, sku: str, plat: Platform) -> list[str]:
        """Ids of the buyer's unpaid orders for ``sku`` on ``plat``, newest first."""
        if user is None:
            return []
        query = OrderQuery(user_id=user, statuses=tuple(s.value for s in _ADOPTABLE), limit=20)
        orders, _ = self._ctx.store.query_orders(query)
        return [o.id for o in orders if o.sku == sku and o.platform is plat]

    def order_for_transaction(
        self, actor: Actor, platform: Platform | str, transaction_id: str
    ) -> Order | None:
        """The order the platform's ``transaction_id`` paid, if one was recorded."""
        actor = self._ctx.actor(actor)
        check(actor, "order.read")
        plat = _platform(platform)
        txn = ident(transaction_id, "transaction_id")
        with self._ctx.store.transaction() as tx:
            order = tx.find_order_by_transaction(plat, txn)
        if order is not None:
            check(actor, "order.read", order.user_id)
        return order

    # -- refunds the platform decided -----------------------------------------------------------
    def refunded(
        self,
        actor: Actor,
        order_id: str,
        *,
        reason: str,
        platform_refund_id: str | None = None,
        amount: Money | None = None,
        idempotency_key: str | None = None,
    ) -> RefundRequest:
        """The platform refunded the order (its own decision, a chargeback, a console refund):
        ``amount`` of it (a prorated or quantity-based refund: partially refunded, unless that
        is all that remained), or all that remains. The order's open refund records it; without
        one (or over a rejected one: the platform overrode staff) a refund is created to record
        it. An order already refunded, or a ``platform_refund_id`` already recorded, is left as
        it is and its refund returned, so reconciling again changes nothing.
        """
        if amount is not None and (not isinstance(amount, Money) or amount.amount == 0):
            raise InvalidInput("amount must be a Money of more than nothing", field="amount")
        action, key = "refund.platform_refund", idempotency_key
        return self._outcome(actor, action, order_id, reason, platform_refund_id, key, amount)

    def refund_declined(
        self, actor: Actor, order_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> RefundRequest:
        """The platform declined a refund of the order; the buyer is told."""
        return self._outcome(
            actor, "refund.platform_decline", order_id, reason, None, idempotency_key
        )

    def _outcome(
        self,
        actor: Actor,
        action: str,
        order_id: str,
        reason: str,
        case: str | None,
        key: str | None,
        amount: Money | None = None,
    ) -> RefundRequest:
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, action)
        order_id = ident(order_id, "order_id")
        reason = text(reason, "reason", max_len=2000)
        case = None if case is None else ident(case, "platform_refund_id")
        refunding = action == "refund.platform_refund"
        event = action.split(".", 1)[1]

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            order = must(tx.get_order(order_id, lock=True), "order", order_id)
            history = tx.refunds_for_order(order.id)
            still_open = _OPEN_FOR_REFUND if refunding else _OPEN_FOR_DECLINE
            opened = [r for r in history if r.status in still_open]
            if refunding:
                earlier = already_recorded(history, order, case, opened)
                if earlier is not None:
                    return earlier  # already recorded: nothing to change
            elif not opened and history and history[-1].status is RefundStatus.REJECTED:
                return history[-1]
            share = order.refundable if amount is None else capped_share(order, amount)
            data: dict[str, object] = {"reason": reason, "platform_refund_id": case}
            if opened:
                refund = opened[-1]
                if refunding and refund.amount != share:
                    data["asked"] = refund.amount.amount
                    refund.amount = share  # what the platform gave back, not what was asked
            else:
                money = share if refunding else order.refundable
                who, plat = order.user_id, order.platform
                refund = open_refund(ctx, tx, order.id, who, money, reason, plat, actor, now)
            if case is not None:
                refund.platform_refund_id = case
            if refunding:
                data["amount"] = refund.amount.amount
            ctx.change(tx, refund, event, actor, now, data)
            if refunding:
                if order.status is not OrderStatus.REFUNDED:
                    refund_order(ctx, tx, refund, now)
                ctx.notify(tx, "refund.succeeded", refund.user_id, refund_summary(refund), now)
            else:
                payload = {**refund_summary(refund), "reason": reason}
                ctx.notify(tx, "refund.rejected", refund.user_id, payload, now)
            return refund

        args: dict[str, object] = dict(order_id=order_id, reason=reason, platform_refund_id=case)
        if amount is not None:
            args["amount"] = [amount.amount, amount.currency]
        return ctx.run(actor, action, args, key_or_none(key), body)

    def refund_reversed(
        self, actor: Actor, order_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> RefundRequest:
        """The platform took back a refund it granted (the buyer keeps the purchase after all).

        Refunded is final in both machines, so nothing changes state: the reversal is an audit
        event on the refund and a notification to support and the buyer, who should get the
        purchase back (re-grant it in the app).
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.platform_reversal")
        order_id = ident(order_id, "order_id")
        reason = text(reason, "reason", max_len=2000)

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            order = must(tx.get_order(order_id), "order", order_id)
            refunded = [
                r for r in tx.refunds_for_order(order.id) if r.status is RefundStatus.REFUNDED
            ]
            if not refunded:
                raise NotFound("refunded refund of order", order.id)
            refund = refunded[-1]
            data = {"reason": reason}
            ctx.amend(tx, refund, "platform_reversal", actor, now, data, save=False)
            payload = {**refund_summary(refund), "reason": reason}
            ctx.notify(tx, "refund.reversed", "support_agent", payload, now)
            ctx.notify(tx, "refund.reversed", refund.user_id, payload, now)
            return refund

        args = {"order_id": order_id, "reason": reason}
        return ctx.run(actor, "refund.platform_reversal", args, key_or_none(idempotency_key), body)

    # -- reviews the platform asks for --------------------------------------------------------
    def review_requested(
        self,
        actor: Actor,
        order_id: str,
        *,
        reason: str,
        review_due: datetime,
        platform_refund_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RefundRequest:
        """The platform asks staff to review a refund of the order before ``review_due`` (the
        platform's deadline; the buyer's refund window does not apply).

        If the platform names the case (``platform_refund_id``) it decides the refund, and
        staff's decision is answered to it instead of paid out. An order that already has a
        refund joins it: under review it takes the sooner deadline; decided, the decision is
        answered again.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "refund.open_review")
        order_id = ident(order_id, "order_id")
        reason = text(reason, "reason", max_len=2000)
        due = utc(review_due, "review_due")
        case = (
            None if platform_refund_id is None else text(platform_refund_id, "platform_refund_id")
        )
        answer_again: list[str] = []

        def body(tx: UnitOfWork, now: datetime) -> RefundRequest:
            answer_again.clear()
            order = must(tx.get_order(order_id, lock=True), "order", order_id)
            earlier = self._joins(tx, order.id, due, case, actor, now)
            if earlier is not None:
                if earlier.status in (RefundStatus.APPROVED, RefundStatus.REJECTED):
                    answer_again.append(earlier.id)
                return earlier
            if order.status not in REFUNDABLE:
                raise RefundNotAllowed(
                    f"order {order.id} is {order.status}; only paid orders can be refunded",
                    order_id=order.id,
                )
            refund = open_refund(
                ctx,
                tx,
                order.id,
                order.user_id,
                order.refundable,
                reason,
                order.platform,
                actor,
                now,
            )
            refund.review_due_at = due
            refund.platform_refund_id = case
            ctx.change(tx, refund, "open_review", SYSTEM, now)
            self._review_deadline(tx, refund.id, due, now)
            ctx.notify(tx, "refund.review_requested", "support_agent", refund_summary(refund), now)
            return refund

        args = {
            "order_id": order_id,
            "reason": reason,
            "review_due": due.isoformat(),
            "platform_refund_id": case,
        }
        refund = ctx.run(actor, "refund.review", args, key_or_none(idempotency_key), body)
        if answer_again:  # the platform asks about a refund staff already decided
            return self._refunds.answer_platform(SYSTEM, refund.id)
        return refund

    def _joins(
        self,
        tx: UnitOfWork,
        order_id: str,
        due: datetime,
        case: str | None,
        actor: Actor,
        now: datetime,
    ) -> RefundRequest | None:
        """The order's refund a platform's review joins (of a partly refunded order: none)."""
        for earlier in reversed(tx.refunds_for_order(order_id)):
            if earlier.status is RefundStatus.WITHDRAWN:
                continue
            if earlier.status is RefundStatus.REFUNDED and _partly_refunded(tx, order_id):
                return None  # a review of what remains is a case of its own
            if earlier.status in (RefundStatus.REQUESTED, RefundStatus.IN_REVIEW):
                sooner = earlier.review_due_at is None or due < earlier.review_due_at
                if sooner:
                    earlier.review_due_at = due
                    self._review_deadline(tx, earlier.id, due, now)
                if sooner or (case is not None and case != earlier.platform_refund_id):
                    earlier.platform_refund_id = case or earlier.platform_refund_id
                    data = {"review_due": due.isoformat(), "platform_refund_id": case}
                    amend = self._ctx.amend  # audited as the review, opened on new terms
                    amend(tx, earlier, "open_review", actor, now, data, action="refund.open_review")
            return earlier
        return None

    def _review_deadline(
        self, tx: UnitOfWork, refund_id: str, due: datetime, now: datetime
    ) -> None:
        """Replace the refund's review deadline with one due at ``due`` (the platform's), and
        its policy answer with one ``Policy.review_answer.lead_time`` before it."""
        tx.close_deadlines(refund_id, (DeadlineKind.REFUND_REVIEW, DeadlineKind.REVIEW_ANSWER))
        remind = now + (due - now) * self._ctx.policy.remind_at_fraction if due > now else None
        tx.add_deadline(Deadline(DeadlineKind.REFUND_REVIEW, refund_id, due, remind_at=remind))
        # the policy answer, shortly before the window closes, if no one has decided by then
        answer_at = max(now, due - self._ctx.policy.review_answer.lead_time)
        tx.add_deadline(Deadline(DeadlineKind.REVIEW_ANSWER, refund_id, answer_at))


def _partly_refunded(tx: UnitOfWork, order_id: str) -> bool:
    found = tx.get_order(order_id)
    return found is not None and found.status is OrderStatus.PARTIALLY_REFUNDED
