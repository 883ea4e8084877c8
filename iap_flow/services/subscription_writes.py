"""How paid, failed and refunded orders and due deadlines move subscriptions.

Called inside the transaction of the change that caused it (an order paid, a renewal
declined, a refund paid out, a deadline due), so the subscription, its history row, its
deadlines, its audit event and its notifications commit with that change or not at all.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from iap_flow.domain.errors import InvalidInput, TransitionNotAllowed
from iap_flow.domain.models import (
    Deadline,
    DeadlineKind,
    Order,
    OrderStatus,
    Period,
    ProductKind,
    Subscription,
    SubscriptionStatus,
)
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.domain.transitions import SUBSCRIPTION
from iap_flow.ports import UnitOfWork
from iap_flow.services.context import Context

KINDS = (
    DeadlineKind.SUBSCRIPTION_PERIOD_END,
    DeadlineKind.SUBSCRIPTION_GRACE_END,
    DeadlineKind.SUBSCRIPTION_HOLD_END,
)
_PERIOD_STANDS = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELLED})


def add_period(start: datetime, period: Period | None) -> datetime:
    """``start`` plus one billing period (a calendar month or year, clamped to the month's
    last day: 31 Jan + 1 month is 28 or 29 Feb).

    >>> from datetime import UTC
    >>> add_period(datetime(2026, 1, 31, tzinfo=UTC), Period.MONTH).date()
    datetime.date(2026, 2, 28)
    """
    if period is Period.WEEK:
        return start + timedelta(days=7)
    months = 12 if period is Period.YEAR else 1
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def access_until(
    status: SubscriptionStatus, period_end: datetime, grace_until: datetime | None
) -> datetime | None:
    """Until when a subscription in ``status`` gives access; None: no access at all."""
    if status in _PERIOD_STANDS:
        return period_end
    if status is SubscriptionStatus.IN_GRACE_PERIOD:
        return grace_until or period_end
    return None


def has_access(sub: Subscription, at: datetime) -> bool:
    until = access_until(sub.status, sub.period_end, sub.grace_until)
    return until is not None and at < until


def grants(sub: Subscription) -> bool:
    """Whether the subscription's state grants access (until its period or grace end)."""
    return access_until(sub.status, sub.period_end, sub.grace_until) is not None


def summary(sub: Subscription) -> dict[str, Any]:
    """The subscription as notifications carry it."""
    return {
        "subscription_id": sub.id,
        "user_id": sub.user_id,
        "sku": sub.sku,
        "status": sub.status.value,
        "period_end": sub.period_end.isoformat(),
        "grace_until": None if sub.grace_until is None else sub.grace_until.isoformat(),
        "pending_sku": sub.pending_sku,
        "auto_renew": sub.auto_renew,
        "order_id": sub.latest_order_id,
    }


def schedule(ctx: Context, tx: UnitOfWork, sub: Subscription, now: datetime) -> None:
    """Replace the subscription's open deadline with the one its state calls for."""
    tx.close_deadlines(sub.id, KINDS)
    policy = ctx.policy
    due: tuple[DeadlineKind, datetime] | None = None
    if sub.status in _PERIOD_STANDS:
        kind = DeadlineKind.SUBSCRIPTION_PERIOD_END
        due = kind, sub.period_end + policy.window(kind)
    elif sub.status is SubscriptionStatus.IN_GRACE_PERIOD:
        due = DeadlineKind.SUBSCRIPTION_GRACE_END, sub.grace_until or sub.period_end
    elif sub.status is SubscriptionStatus.ON_HOLD:
        kind = DeadlineKind.SUBSCRIPTION_HOLD_END
        due = kind, now + policy.window(kind)
    if due is not None:
        tx.add_deadline(Deadline(due[0], sub.id, due[1]))


def record(ctx: Context, tx: UnitOfWork, sub: Subscription, now: datetime, had: bool) -> None:
    """After a change: its history row, its deadline, and the buyer told what changed
    (``had``: the state before granted access, so leaving it revokes)."""
    schedule(ctx, tx, sub, now)
    tx.add_subscription_period(sub, now)
    payload = summary(sub)
    ctx.notify(tx, f"subscription.{sub.status.value}", sub.user_id, payload, now)
    until = access_until(sub.status, sub.period_end, sub.grace_until)
    if until is not None and now < until:
        granted = payload | {
            "kind": ProductKind.SUBSCRIPTION.value,
            "expires_at": until.isoformat(),
        }
        ctx.notify(tx, "entitlement.granted", sub.user_id, granted, now)
    elif had and not grants(sub):
        revoked = payload | {"kind": ProductKind.SUBSCRIPTION.value}
        ctx.notify(tx, "entitlement.revoked", sub.user_id, revoked, now)


def apply(
    ctx: Context,
    tx: UnitOfWork,
    sub: Subscription,
    event: str,
    now: datetime,
    data: dict[str, Any] | None = None,
    *,
    actor: Actor = SYSTEM,
    handled: DeadlineKind | None = None,
) -> Subscription:
    """Fire ``event`` on ``sub`` (set the fields it changes first) through the one write path."""
    had = grants(sub)
    ctx.change(tx, sub, event, actor, now, data, handled=handled)
    record(ctx, tx, sub, now, had)
    return sub


_ENDED = frozenset({SubscriptionStatus.REVOKED, SubscriptionStatus.EXPIRED})
_CANNOT_RENEW = (
    OrderStatus.REFUNDED,
    OrderStatus.PENDING_PAYMENT,
    OrderStatus.PAYMENT_FAILED,
    OrderStatus.CANCELLED,
    OrderStatus.EXPIRED,
)


def check_renewable(tx: UnitOfWork, first: Order) -> None:
    """Whether ``first`` (a subscription's first order) may be charged a renewal: InvalidInput
    if it is no paid subscription order, TransitionNotAllowed if its subscription ended
    (revoked, or expired: the buyer subscribes again, and a store reports that itself)."""
    if first.kind is not ProductKind.SUBSCRIPTION:
        raise InvalidInput(f"order {first.id} is not a subscription", field="subscription_id")
    if first.subscription_id is not None:
        raise InvalidInput(
            f"order {first.id} is a renewal; renew the subscription {first.subscription_id}",
            field="subscription_id",
        )
    if first.status in _CANNOT_RENEW:
        raise InvalidInput(
            f"subscription {first.id} is {first.status}; it cannot renew",
            field="subscription_id",
        )
    sub = tx.find_subscription(first.id)
    if sub is not None and sub.status in _ENDED:
        raise TransitionNotAllowed(
            kind="subscription", id=sub.id, state=sub.status.value, event="renew"
        )


def start(ctx: Context, tx: UnitOfWork, order: Order, now: datetime, first: str) -> Subscription:
    """A subscription's first paid order (``first``: the order renewals will name)."""
    sub = Subscription(
        id=ctx.ids.new("sub", now),
        user_id=order.user_id,
        sku=order.sku,
        platform=order.platform,
        status=SUBSCRIPTION.initial,
        first_order_id=first,
        latest_order_id=order.id,
        period_start=now,
        period_end=add_period(now, order.period),
        created_at=now,
        updated_at=now,
    )
    tx.insert_subscription(sub)
    data = {"order_id": order.id, "period_end": sub.period_end.isoformat()}
    ctx.created(tx, SUBSCRIPTION, sub.id, "subscription.start", SYSTEM, now, data)
    record(ctx, tx, sub, now, had=False)
    return sub


def order_paid(ctx: Context, tx: UnitOfWork, order: Order, now: datetime) -> None:
    """A paid subscription order: the first starts the subscription, a renewal extends its
    period (and a pending downgrade applies). Other products need nothing here: their
    entitlement is the order itself, and ``order.paid`` already told the buyer."""
    if order.kind is not ProductKind.SUBSCRIPTION:
        return
    first = order.subscription_id or order.id
    sub = tx.find_subscription(first)
    if sub is None:
        start(ctx, tx, order, now, first)
        return
    if sub.status is SubscriptionStatus.REVOKED:
        return  # a revoked subscription stays revoked; the order is on record
    begin = sub.period_end if sub.period_end > now and sub.status in _PERIOD_STANDS else now
    if sub.pending_sku is not None:
        sub.sku, sub.pending_sku = sub.pending_sku, None
    sub.period_start, sub.period_end = begin, add_period(begin, order.period)
    sub.latest_order_id, sub.grace_until, sub.auto_renew = order.id, None, True
    data = {"order_id": order.id, "period_end": sub.period_end.isoformat()}
    apply(ctx, tx, sub, "renew", now, data)


def renewal_declined(ctx: Context, tx: UnitOfWork, order: Order, now: datetime) -> None:
    """A renewal charge was declined: the subscription enters its grace period (policy)."""
    if order.subscription_id is None:
        return
    sub = tx.find_subscription(order.subscription_id)
    if sub is None or (sub.status.value, "enter_grace") not in SUBSCRIPTION.targets:
        return
    sub.grace_until = max(sub.period_end, now) + ctx.policy.subscription_grace
    apply(ctx, tx, sub, "enter_grace", now, {"order_id": order.id})


def order_refunded(ctx: Context, tx: UnitOfWork, order: Order, now: datetime) -> None:
    """A refunded subscription order revokes the subscription if it paid the current period
    (a refund of an earlier period is audited only). A refunded one-off product needs nothing
    here: its entitlement ends with the order, and ``refund.succeeded`` (or the platform's
    refund notification) already tells the app what to take back."""
    if order.kind is not ProductKind.SUBSCRIPTION:
        return
    sub = tx.find_subscription(order.subscription_id or order.id)
    if sub is None or sub.status is SubscriptionStatus.REVOKED:
        return
    data = {"order_id": order.id}
    if order.id == sub.latest_order_id:
        apply(ctx, tx, sub, "revoke", now, data)
    else:
        ctx.amend(tx, sub, "past_period_refunded", SYSTEM, now, data, action="subscription.revoke")


def deadline_due(
    ctx: Context, tx: UnitOfWork, sub: Subscription, event: str, kind: DeadlineKind, now: datetime
) -> None:
    """The sweep found ``kind`` due on ``sub`` (which still stands in its states)."""
    apply(ctx, tx, sub, event, now, {"deadline": kind.value}, handled=kind)
