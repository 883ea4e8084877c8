"""Orders: placed on a tap, paid through the platform, delivered, completed, queried."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from iap_flow.codec import clone_order
from iap_flow.domain.clock import utc
from iap_flow.domain.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProductUnavailable,
    TransitionNotAllowed,
)
from iap_flow.domain.models import Order, OrderStatus, Page, Platform
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.domain.transitions import ORDER
from iap_flow.ports import OrderQuery, PaymentResult, UnitOfWork
from iap_flow.services import inputs, subscription_writes
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, key_or_none, member, must, statuses, text

MAX_PAGE = 200
RECENT = 1_024


def charge_key(order: Order) -> str:
    """The key a platform is charged with for ``order``: one order is charged at most once
    however often, from wherever, the charge is asked for."""
    return f"{order.id}:charge:1"


def mark_paid(
    ctx: Context, tx: UnitOfWork, order: Order, actor: Actor, now: datetime, txn: str | None
) -> Order:
    """The order is paid with platform transaction ``txn``; the buyer is told."""
    order.platform_transaction_id = txn
    order.paid_at = now
    ctx.change(tx, order, "pay", actor, now, {"transaction_id": txn})
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
    subscription_writes.order_paid(ctx, tx, order, now)
    return order


def _platform(value: object) -> Platform:
    return member(Platform, value, "platform")


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
        """Charge the next period of a subscription: a new order linked to the first one.

        The platform is charged before anything is written, and the renewal is written paid
        (or failed) in one transaction: if the platform does not answer,
        :class:`~iap_flow.domain.errors.PlatformUnavailable` is raised and nothing changed.
        With a key, a repeat returns the first renewal and charges at most once.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "order.renew")
        subscription_id = ident(subscription_id, "subscription_id")
        token = text(token, "token", max_len=500)
        key = key_or_none(idempotency_key)
        args = {"subscription_id": subscription_id, "token": token}
        first = must(ctx.store.get_order(subscription_id), "order", subscription_id)
        with ctx.store.transaction() as tx:
            subscription_writes.check_renewable(tx, first)  # before the platform is charged
        now = ctx.now()
        # With a key the renewal's id is derived from it, so a retry charges the same order id.
        suffix = None if key is None else hashlib.sha256(key.encode()).hexdigest()[:20]
        renewal = Order(
            id=ctx.ids.new("ord", now) if suffix is None else f"ord_renew_{suffix}",
            user_id=first.user_id,
            sku=first.sku,
            title=first.title,
            kind=first.kind,
            period=first.period,
            amount=first.amount,
            platform=first.platform,
            status=ORDER.initial,
            subscription_id=first.id,
            created_at=now,
            updated_at=now,
        )

        def call() -> PaymentResult:
            return ctx.platform(renewal.platform).charge(renewal, token, charge_key(renewal))

        def body(tx: UnitOfWork, now: datetime, result: PaymentResult) -> Order:
            current = must(tx.get_order(subscription_id), "order", subscription_id)
            subscription_writes.check_renewable(tx, current)
            order = clone_order(renewal)  # a fresh copy each time the body runs
            order.created_at = order.updated_at = now
            tx.insert_order(order)
            ctx.created(
                tx, ORDER, order.id, "order.renew", actor, now, {"subscription_id": first.id}
            )
            return self._settle(tx, order, actor, now, result)

        return self._remember(ctx.run_calling(actor, "order.renew", args, key, call, body))

    # -- payment ----------------------------------------------------------------------------
    def pay(
        self, actor: Actor, order_id: str, *, token: str, idempotency_key: str | None = None
    ) -> Order:
        """Send a pending order to its payment platform; paid on success, payment_failed on
        decline.

        Only an order still pending payment is charged: an expired or cancelled order is
        refused before the platform is called. The platform is charged with a key derived
        from the order, so the order is charged at most once whoever asks and however often.
        With ``idempotency_key``, concurrent callers with the key (in any process) get the
        first result. Raises :class:`~iap_flow.domain.errors.PlatformUnavailable` (and
        changes nothing) when the platform does not answer; the order then stays pending.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        order_id = ident(order_id, "order_id")
        token = text(token, "token", max_len=500)
        key = key_or_none(idempotency_key)
        args = {"order_id": order_id, "token": token}
        check(actor, "order.pay")

        def call() -> PaymentResult:
            # Runs once the key (if any) is this caller's: a repeat that lost the race gets
            # the first result instead of a refusal. Money is about to move: decide on a
            # fresh read, never on the cache.
            order = must(ctx.store.get_order(order_id), "order", order_id)
            check(actor, "order.pay", order.user_id)
            if order.status is not OrderStatus.PENDING_PAYMENT:
                raise TransitionNotAllowed(
                    kind="order", id=order.id, state=order.status, event="pay"
                )
            read.append(order)
            return ctx.platform(order.platform).charge(order, token, charge_key(order))

        def body(tx: UnitOfWork, now: datetime, result: PaymentResult) -> Order:
            # First with the order read before the charge: the UPDATE's version check refuses
            # it if anything changed since, and run() then runs this again on a fresh read.
            current = read.pop() if read else must(tx.get_order(order_id), "order", order_id)
            return self._settle(tx, current, actor, now, result)

        read: list[Order] = []
        return self._remember(ctx.run_calling(actor, "order.pay", args, key, call, body))

    def _settle(
        self, tx: UnitOfWork, order: Order, actor: Actor, now: datetime, result: PaymentResult
    ) -> Order:
        """Record the platform's answer to a charge of ``order``."""
        ctx = self._ctx
        txn = result.platform_transaction_id
        if result.success:
            if order.status is OrderStatus.PAID and order.platform_transaction_id == txn:
                return order  # the same charge, recorded by a caller that raced this one
            # One platform transaction pays one order: the stores' unique index on
            # (platform, platform_transaction_id) refuses a second with ConflictError.
            return mark_paid(ctx, tx, order, actor, now, txn)
        if order.status is OrderStatus.PENDING_PAYMENT:
            # The platform declined: its event (system-only in PERMISSIONS), not the payer's.
            ctx.change(tx, order, "fail_payment", SYSTEM, now, {"error": result.error})
            subscription_writes.renewal_declined(ctx, tx, order, now)
        # else: a declined attempt that crossed an expiry or a cancel; the order stays so.
        ctx.notify(
            tx,
            "order.payment_failed",
            order.user_id,
            {"order_id": order.id, "reason": result.error or "declined"},
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
            return ctx.change(tx, order, event, actor, now)

        args = {"order_id": order_id}
        if cached is None:
            return self._remember(ctx.run(actor, action, args, key, body))
        try:
            return self._remember(ctx.run(actor, action, args, key, body))
        except TransitionNotAllowed:
            # The cached copy was stale (another process or path changed the order) and its
            # state refused the event; nothing was written. Decide again on a fresh read.
            # (A stale copy that passed the machine loses the version check, and run()
            # retries that on fresh reads by itself.)
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
        query = OrderQuery(
            user_id=None if user_id is None else ident(user_id, "user_id"),
            statuses=statuses(status, OrderStatus),
            since=None if since is None else utc(since, "since"),
            until=None if until is None else utc(until, "until"),
            limit=inputs.limit(limit, MAX_PAGE),
            cursor=None if cursor is None else ident(cursor, "cursor"),
            subscription_id=None
            if subscription_id is None
            else ident(subscription_id, "subscription_id"),
        )
        if query.since and query.until and query.since >= query.until:
            raise InvalidInput("since must be before until", field="since")
        items, next_cursor = self._ctx.store.query_orders(query)
        return Page(items, next_cursor)
