"""Orders: placed on a tap, paid through the platform, delivered, completed, queried."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from iap_flow.codec import clone_order
from iap_flow.domain.clock import utc
from iap_flow.domain.errors import (
    ConcurrentModification,
    ConflictError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProductUnavailable,
    TransitionNotAllowed,
)
from iap_flow.domain.models import Order, OrderStatus, Page, Platform, ProductKind
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.domain.transitions import ORDER
from iap_flow.ports import OrderQuery, UnitOfWork
from iap_flow.services.base import Context, check, ident, key_or_none, must, names, text
from iap_flow.services.saves import save_order

_STATUS = {s.value: s for s in OrderStatus}
MAX_PAGE = 200
RECENT = 1_024


def _platform(value: object) -> Platform:
    try:
        return Platform(str(value))
    except ValueError:
        raise InvalidInput(
            f"platform must be one of {', '.join(Platform)}, got {value!r}", field="platform"
        ) from None


def _statuses(value: OrderStatus | str | Iterable[OrderStatus | str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = names(value, "status")
    out = []
    for item in items:
        if item not in _STATUS:
            raise InvalidInput(
                f"status must be one of {', '.join(OrderStatus)}, got {item!r}", field="status"
            )
        out.append(str(_STATUS[str(item)].value))
    return tuple(out)


class Orders:
    """Place, pay, deliver, complete, cancel and query orders."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._recent: dict[str, Order] = {}

    # -- creation ---------------------------------------------------------------------------
    def place(
        self,
        actor: Actor,
        sku: str,
        *,
        platform: Platform | str | None = None,
        idempotency_key: str | None = None,
    ) -> Order:
        """The buyer tapped "buy": create an order with a snapshot of the product."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "order.place")
        sku = ident(sku, "sku")
        plat = ctx.default_platform if platform is None else _platform(platform)
        ctx.platform(plat)

        def body(tx: UnitOfWork, now: datetime) -> Order:
            product = tx.get_product(sku)
            if product is None:
                raise NotFound("product", sku)
            if not product.active:
                raise ProductUnavailable(sku)
            order = Order(
                id=ctx.ids.new("ord", now),
                user_id=actor.id,
                sku=product.sku,
                title=product.title,
                kind=product.kind,
                period=product.period,
                amount=product.price,
                platform=plat,
                status=OrderStatus.PENDING_PAYMENT,
                created_at=now,
                updated_at=now,
            )
            tx.insert_order(order)
            ctx.created(tx, ORDER, order.id, "order.place", actor, now)
            return order

        args = {"sku": sku, "platform": plat}
        return self._remember(
            ctx.run(actor, "order.place", args, key_or_none(idempotency_key), body)
        )

    def renew(
        self, actor: Actor, subscription_id: str, *, token: str, idempotency_key: str | None = None
    ) -> Order:
        """Charge the next period of a subscription: a new order linked to the first one."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "order.renew")
        subscription_id = ident(subscription_id, "subscription_id")
        token = text(token, "token", max_len=500)  # before the renewal is written
        key = key_or_none(idempotency_key)
        # the token is part of the request: reusing the key with another one is refused here,
        # naming the caller's key, rather than later under the derived payment key
        args = {"subscription_id": subscription_id, "token": token}

        def body(tx: UnitOfWork, now: datetime) -> Order:
            first = must(tx.get_order(subscription_id), "order", subscription_id)
            if first.kind is not ProductKind.SUBSCRIPTION:
                raise InvalidInput(
                    f"order {first.id} is not a subscription", field="subscription_id"
                )
            if first.subscription_id is not None:
                raise InvalidInput(
                    f"order {first.id} is a renewal; renew the subscription {first.subscription_id}",
                    field="subscription_id",
                )
            if first.status in (
                OrderStatus.REFUNDED,
                OrderStatus.PENDING_PAYMENT,
                OrderStatus.PAYMENT_FAILED,
                OrderStatus.CANCELLED,
                OrderStatus.EXPIRED,
            ):
                raise InvalidInput(
                    f"subscription {first.id} is {first.status}; it cannot renew",
                    field="subscription_id",
                )
            order = Order(
                id=ctx.ids.new("ord", now),
                user_id=first.user_id,
                sku=first.sku,
                title=first.title,
                kind=first.kind,
                period=first.period,
                amount=first.amount,
                platform=first.platform,
                status=OrderStatus.PENDING_PAYMENT,
                subscription_id=first.id,
                created_at=now,
                updated_at=now,
            )
            tx.insert_order(order)
            ctx.created(
                tx, ORDER, order.id, "order.renew", actor, now, {"subscription_id": first.id}
            )
            return order

        # The key covers both steps: a repeat finds the renewal created under it and the
        # payment made under a key derived from it, so it returns the first result, charges
        # at most once, and resumes the payment if the first call stopped between the two.
        renewal = ctx.run(actor, "order.renew", args, key, body)
        pay_key = None if key is None else "renew-pay:" + hashlib.sha256(key.encode()).hexdigest()
        return self.pay(actor, renewal.id, token=token, idempotency_key=pay_key)

    # -- payment ----------------------------------------------------------------------------
    def pay(
        self, actor: Actor, order_id: str, *, token: str, idempotency_key: str | None = None
    ) -> Order:
        """Send the order to its payment platform; paid on success, payment_failed on decline.

        Raises :class:`~iap_flow.domain.errors.PlatformUnavailable` (and changes nothing) when the
        platform does not answer; the order then stays pending until paid or expired.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        order_id = ident(order_id, "order_id")
        token = text(token, "token", max_len=500)
        key = key_or_none(idempotency_key)
        args = {"order_id": order_id, "token": token}
        replayed = ctx.replay(actor, "order.pay", args, key)
        if replayed is not None:
            assert isinstance(replayed, Order)
            return replayed
        # Money is about to move: decide on a fresh read, never on the cache.
        order = must(ctx.store.get_order(order_id), "order", order_id)
        check(actor, "order.pay", order.user_id)
        ORDER.target(order.id, order.status, "pay")
        result = ctx.platform(order.platform).charge(order, token, order.id)

        def body(tx: UnitOfWork, now: datetime) -> Order:
            # First try with the order read above: the version check in the UPDATE refuses
            # it if anything changed since, and then we read it again inside the transaction.
            current = order if not attempts else must(tx.get_order(order_id), "order", order_id)
            attempts.append(1)
            if result.success:
                return self._paid(tx, current, actor, now, result.platform_transaction_id)
            if current.status is OrderStatus.PENDING_PAYMENT:
                # The platform declined: its event (system-only in PERMISSIONS), not the payer's.
                data = {"error": result.error}
                target = ctx.fire(
                    tx, ORDER, current.id, current.status, "fail_payment", SYSTEM, now, data
                )
                current.status = _STATUS[target]
                save_order(tx, current, now)
            # else: a late attempt on an expired or cancelled order was declined; it stays so.
            ctx.notify(
                tx,
                "order.payment_failed",
                current.user_id,
                {"order_id": current.id, "reason": result.error or "declined"},
                now,
            )
            return current

        attempts: list[int] = []
        try:
            return self._remember(ctx.run(actor, "order.pay", args, key, body))
        except ConcurrentModification:
            return self._remember(ctx.run(actor, "order.pay", args, key, body))

    def record_payment(
        self,
        actor: Actor,
        order_id: str,
        *,
        transaction_id: str,
        idempotency_key: str | None = None,
    ) -> Order:
        """The platform confirmed a payment itself (a store notification): mark the order paid."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        order_id = ident(order_id, "order_id")
        transaction_id = ident(transaction_id, "transaction_id")

        def body(tx: UnitOfWork, now: datetime) -> Order:
            order = must(tx.get_order(order_id), "order", order_id)
            check(actor, "order.pay", order.user_id)
            other = tx.find_order_by_transaction(order.platform, transaction_id)
            if other is not None and other.id != order.id:
                raise ConflictError(
                    f"{order.platform} transaction {transaction_id} already paid order "
                    f"{other.id}; one platform transaction pays one order"
                )
            return self._paid(tx, order, actor, now, transaction_id)

        args = {"order_id": order_id, "transaction_id": transaction_id}
        return ctx.run(actor, "order.pay", args, key_or_none(idempotency_key), body)

    def _paid(
        self, tx: UnitOfWork, order: Order, actor: Actor, now: datetime, txn: str | None
    ) -> Order:
        ctx = self._ctx
        target = ctx.fire(
            tx, ORDER, order.id, order.status, "pay", actor, now, {"transaction_id": txn}
        )
        order.status = _STATUS[target]
        order.platform_transaction_id = txn
        order.paid_at = now
        save_order(tx, order, now)
        ctx.notify(
            tx,
            "order.paid",
            order.user_id,
            {
                "order_id": order.id,
                "sku": order.sku,
                "title": order.title,
                "amount": order.amount.amount,
                "currency": order.amount.currency,
                "transaction_id": txn,
                "paid_at": now.isoformat(),
            },
            now,
        )
        return order

    # -- the rest of the lifecycle ----------------------------------------------------------
    def hold_delivery(
        self, actor: Actor, order_id: str, *, idempotency_key: str | None = None
    ) -> Order:
        """Paid, but the goods cannot be granted yet: the order awaits delivery."""
        return self._simple(actor, order_id, "hold_delivery", idempotency_key)

    def deliver(self, actor: Actor, order_id: str, *, idempotency_key: str | None = None) -> Order:
        """The goods were granted to the buyer."""
        return self._simple(actor, order_id, "deliver", idempotency_key)

    def complete(self, actor: Actor, order_id: str, *, idempotency_key: str | None = None) -> Order:
        """The buyer has what they paid for: the order is complete."""
        return self._simple(actor, order_id, "complete", idempotency_key)

    def cancel(self, actor: Actor, order_id: str, *, idempotency_key: str | None = None) -> Order:
        """Cancel an order that was never paid."""
        return self._simple(actor, order_id, "cancel", idempotency_key)

    def _simple(
        self, actor: Actor, order_id: str, event: str, idempotency_key: str | None
    ) -> Order:
        ctx = self._ctx
        actor = ctx.actor(actor)
        action = "order." + event
        check(actor, action)
        order_id = ident(order_id, "order_id")
        key = key_or_none(idempotency_key)
        cached = self._recent.get(order_id)

        def body(tx: UnitOfWork, now: datetime) -> Order:
            nonlocal cached
            if cached is not None:
                order, cached = clone_order(cached), None
            else:
                order = must(tx.get_order(order_id), "order", order_id)
            check(actor, action, order.user_id)
            target = ctx.fire(tx, ORDER, order_id, order.status, event, actor, now)
            order.status = _STATUS[target]
            save_order(tx, order, now)
            return order

        args = {"order_id": order_id}
        if cached is None:
            return self._remember(ctx.run(actor, action, args, key, body))
        try:
            return self._remember(ctx.run(actor, action, args, key, body))
        except (ConcurrentModification, TransitionNotAllowed):
            # The cached copy was stale (another process or path changed the order): the
            # version check refused it, so nothing was written. Decide again on a fresh read.
            return self._remember(ctx.run(actor, action, args, key, body))

    def _remember(self, order: Order) -> Order:
        """Keep a copy of an order as committed: the next command on it can skip the read,
        because the UPDATE's version check refuses a stale copy (and we then re-read).
        Only committed versions are kept: a committed (id, version) names one state."""
        recent = self._recent
        if len(recent) >= RECENT:
            recent.pop(next(iter(recent)), None)
        recent[order.id] = clone_order(order)
        return order

    # -- reads --------------------------------------------------------------------------------
    def get(self, actor: Actor, order_id: str) -> Order:
        """One order; a buyer sees only their own."""
        actor = self._ctx.actor(actor)
        check(actor, "order.read")
        order = must(self._ctx.store.get_order(ident(order_id, "order_id")), "order", order_id)
        check(actor, "order.read", order.user_id)
        return order

    def query(
        self,
        actor: Actor,
        *,
        user_id: str | None = None,
        status: OrderStatus | str | Iterable[OrderStatus | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
        subscription_id: str | None = None,
    ) -> Page[Order]:
        """Orders newest first, filtered by user, status and creation time ``[since, until)``;
        with ``subscription_id``, a subscription's first order and its renewals.

        A buyer's query is always limited to their own orders.
        """
        actor = self._ctx.actor(actor)
        check(actor, "order.read")
        if actor.role is Role.BUYER:
            if user_id not in (None, actor.id):
                raise PermissionDenied(
                    f"buyer {actor.id} may only query their own orders",
                    actor_id=actor.id,
                    role=actor.role,
                    action="order.read",
                )
            user_id = actor.id
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be an int from 1 to {MAX_PAGE}", field="limit")
        query = OrderQuery(
            user_id=None if user_id is None else ident(user_id, "user_id"),
            statuses=_statuses(status),
            since=None if since is None else utc(since, "since"),
            until=None if until is None else utc(until, "until"),
            limit=limit,
            cursor=None if cursor is None else ident(cursor, "cursor"),
            subscription_id=None
            if subscription_id is None
            else ident(subscription_id, "subscription_id"),
        )
        if query.since and query.until and query.since >= query.until:
            raise InvalidInput("since must be before until", field="since")
        items, next_cursor = self._ctx.store.query_orders(query)
        return Page(items, next_cursor)
