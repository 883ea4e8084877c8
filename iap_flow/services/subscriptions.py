"""Subscriptions: read them, and the commands a store adapter calls with normalised events.

A subscription starts with its first paid order and a paid renewal order extends it (both
through the order paths, :mod:`iap_flow.services.subscription_writes`). What the stores report
besides charges arrives here: a renewal that failed (with or without a grace period), a
recovery, a pause and resume, auto-renew turned off or on, expiry, revocation and plan
changes. Each is one state change on the subscription machine through the one write path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from iap_flow.domain.clock import utc
from iap_flow.domain.errors import InvalidInput, NotFound, TransitionNotAllowed
from iap_flow.domain.models import ProductKind, Subscription, SubscriptionStatus
from iap_flow.domain.roles import Actor
from iap_flow.ports import UnitOfWork
from iap_flow.services import subscription_writes as writes
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, key_or_none, must, text

Change = Callable[[UnitOfWork, Subscription, datetime], str]
"""Sets the fields a command changes on the subscription; returns the event to fire."""


def _when(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else utc(value, field)


class Subscriptions:
    """A buyer's subscriptions, and the store's word on them."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- reads ----------------------------------------------------------------------------
    def get(self, actor: Actor, subscription_id: str) -> Subscription:
        """One subscription; a buyer sees only their own."""
        actor = self._ctx.actor(actor)
        check(actor, "subscription.read")
        sid = ident(subscription_id, "subscription_id")
        sub = must(self._ctx.store.get_subscription(sid), "subscription", sid)
        check(actor, "subscription.read", sub.user_id)
        return sub

    def for_user(self, actor: Actor, user_id: str) -> list[Subscription]:
        """A buyer's subscriptions, oldest first (a buyer may ask only for their own)."""
        actor = self._ctx.actor(actor)
        user = ident(user_id, "user_id")
        check(actor, "subscription.read", user)
        return self._ctx.store.subscriptions_for_user(user)

    def for_order(self, actor: Actor, order_id: str) -> Subscription:
        """The subscription an order (its first order or a renewal) belongs to."""
        actor = self._ctx.actor(actor)
        check(actor, "subscription.read")
        oid = ident(order_id, "order_id")
        order = must(self._ctx.store.get_order(oid), "order", oid)
        check(actor, "subscription.read", order.user_id)
        with self._ctx.store.transaction() as tx:
            sub = tx.find_subscription(order.subscription_id or order.id)
        if sub is None:
            raise NotFound("subscription", f"of order {oid}")
        return sub

    # -- the store's word -------------------------------------------------------------------
    def renewal_failed(
        self,
        actor: Actor,
        subscription_id: str,
        *,
        grace_until: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """A renewal could not be charged. With ``grace_until`` the buyer keeps access until
        then (grace period); without, access stops now and billing retries (on hold)."""
        grace = _when(grace_until, "grace_until")

        def change(tx: UnitOfWork, sub: Subscription, now: datetime) -> str:
            if grace is None:
                return "hold"
            if grace <= now:
                raise InvalidInput("grace_until must be in the future", field="grace_until")
            sub.grace_until = grace
            return "enter_grace"

        args = {"grace_until": None if grace is None else grace.isoformat()}
        event = "hold" if grace is None else "enter_grace"
        return self._run(
            actor, "renewal_failed", subscription_id, args, idempotency_key, change, event=event
        )

    def recovered(
        self,
        actor: Actor,
        subscription_id: str,
        *,
        period_end: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Billing recovered (from grace or hold): access again, until ``period_end`` (default
        one plan period from now)."""
        end = _when(period_end, "period_end")
        change = self._new_period(end)
        args = {"period_end": None if end is None else end.isoformat()}
        return self._run(actor, "recover", subscription_id, args, idempotency_key, change)

    def paused(
        self, actor: Actor, subscription_id: str, *, idempotency_key: str | None = None
    ) -> Subscription:
        """The buyer paused the subscription (a pause in force: no access until resumed)."""
        return self._run(actor, "pause", subscription_id, {}, idempotency_key, _fire("pause"))

    def resumed(
        self,
        actor: Actor,
        subscription_id: str,
        *,
        period_end: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """A paused subscription resumed: a new period until ``period_end`` (default one plan
        period from now)."""
        end = _when(period_end, "period_end")
        args = {"period_end": None if end is None else end.isoformat()}
        change = self._new_period(end, "resume")
        return self._run(actor, "resume", subscription_id, args, idempotency_key, change)

    def cancelled(
        self, actor: Actor, subscription_id: str, *, idempotency_key: str | None = None
    ) -> Subscription:
        """Auto-renew turned off: access continues until the period end, then it expires."""
        change = _auto_renew(False, "cancel")
        return self._run(actor, "cancel", subscription_id, {}, idempotency_key, change)

    def uncancelled(
        self, actor: Actor, subscription_id: str, *, idempotency_key: str | None = None
    ) -> Subscription:
        """Auto-renew turned back on before the period ended."""
        change = _auto_renew(True, "uncancel")
        return self._run(actor, "uncancel", subscription_id, {}, idempotency_key, change)

    def expired(
        self, actor: Actor, subscription_id: str, *, idempotency_key: str | None = None
    ) -> Subscription:
        """The store says the subscription ended (no renewal): no access."""
        return self._run(actor, "expire", subscription_id, {}, idempotency_key, _fire("expire"))

    def revoked(
        self,
        actor: Actor,
        subscription_id: str,
        *,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Access withdrawn at once (family sharing withdrawn, a refund the store made)."""
        why = text(reason, "reason", max_len=500)
        args = {"reason": why}
        return self._run(actor, "revoke", subscription_id, args, idempotency_key, _fire("revoke"))

    def plan_changed(
        self,
        actor: Actor,
        subscription_id: str,
        *,
        sku: str,
        immediate: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """The buyer moved to plan ``sku``. An upgrade (a dearer plan, or ``immediate``) takes
        effect at once; a downgrade or crossgrade at the next renewal (``pending_sku``)."""
        new_sku = ident(sku, "sku")
        if immediate is not None and not isinstance(immediate, bool):
            raise InvalidInput("immediate must be True, False or None", field="immediate")
        ctx = self._ctx

        def body(tx: UnitOfWork, now: datetime) -> Subscription:
            sub = must(tx.get_subscription(sid), "subscription", sid)
            product = must(tx.get_product(new_sku), "product", new_sku)
            if product.kind is not ProductKind.SUBSCRIPTION:
                raise InvalidInput(f"{new_sku} is not a subscription plan", field="sku")
            if sub.status is SubscriptionStatus.REVOKED:
                raise InvalidInput(f"subscription {sid} is revoked", field="subscription_id")
            old = tx.get_product(sub.sku)
            at_once = immediate
            if new_sku == sub.sku:  # back to the current plan: a pending change is called off
                at_once = False
            elif at_once is None:
                at_once = (
                    old is not None
                    and old.price.currency == product.price.currency
                    and product.price.amount > old.price.amount
                )
            data = {"from_sku": sub.sku, "to_sku": new_sku, "immediate": at_once}
            if at_once:
                sub.sku, sub.pending_sku = new_sku, None
            else:
                sub.pending_sku = None if new_sku == sub.sku else new_sku
            had = writes.grants(sub)
            ctx.amend(tx, sub, "change_plan", actor, now, data)
            writes.record(ctx, tx, sub, now, had)
            return sub

        actor = ctx.actor(actor)
        check(actor, "subscription.change_plan")
        sid = ident(subscription_id, "subscription_id")
        args = {"subscription_id": sid, "sku": new_sku, "immediate": immediate}
        return ctx.run(actor, "subscription.change_plan", args, key_or_none(idempotency_key), body)

    def extended(
        self,
        actor: Actor,
        subscription_id: str,
        *,
        period_end: datetime,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """The store moved the period end later without a charge (Apple's renewal date
        extension, Google's deferred billing): access continues until ``period_end``."""
        end = utc(period_end, "period_end")
        why = text(reason, "reason", max_len=500)
        ctx = self._ctx

        def body(tx: UnitOfWork, now: datetime) -> Subscription:
            sub = must(tx.get_subscription(sid), "subscription", sid)
            if not writes.grants(sub):
                raise TransitionNotAllowed(
                    kind="subscription", id=sid, state=sub.status.value, event="extend"
                )
            if end <= sub.period_end:
                raise InvalidInput("period_end must be after the current one", field="period_end")
            data = {"from": sub.period_end.isoformat(), "to": end.isoformat(), "reason": why}
            sub.period_end = end
            ctx.amend(tx, sub, "extend", actor, now, data)
            writes.record(ctx, tx, sub, now, had=True)
            return sub

        actor = ctx.actor(actor)
        check(actor, "subscription.extend")
        sid = ident(subscription_id, "subscription_id")
        args = {"subscription_id": sid, "period_end": end.isoformat(), "reason": why}
        return ctx.run(actor, "subscription.extend", args, key_or_none(idempotency_key), body)

    # -- helpers ------------------------------------------------------------------------------
    def _new_period(self, end: datetime | None, event: str = "recover") -> Change:
        def change(tx: UnitOfWork, sub: Subscription, now: datetime) -> str:
            if end is not None and end <= now:
                raise InvalidInput("period_end must be in the future", field="period_end")
            product = tx.get_product(sub.sku)
            sub.period_start = now
            sub.period_end = end or writes.add_period(
                now, None if product is None else product.period
            )
            sub.grace_until = None
            return event

        return change

    def _run(
        self,
        actor: Actor,
        command: str,
        subscription_id: str,
        args: Mapping[str, object],
        idempotency_key: str | None,
        change: Change,
        *,
        event: str | None = None,
    ) -> Subscription:
        ctx = self._ctx
        actor = ctx.actor(actor)
        sid = ident(subscription_id, "subscription_id")
        key = key_or_none(idempotency_key)
        check(actor, f"subscription.{event or command}")  # before any read

        def body(tx: UnitOfWork, now: datetime) -> Subscription:
            sub = must(tx.get_subscription(sid), "subscription", sid)
            fired = change(tx, sub, now)
            return writes.apply(ctx, tx, sub, fired, now, dict(args), actor=actor)

        return ctx.run(actor, f"subscription.{command}", {"id": sid, **args}, key, body)


def _fire(event: str) -> Change:
    return lambda tx, sub, now: event


def _auto_renew(on: bool, event: str) -> Change:
    """Fire ``event`` with the subscription's auto-renew set to ``on``."""

    def change(tx: UnitOfWork, sub: Subscription, now: datetime) -> str:
        sub.auto_renew = on
        return event

    return change
