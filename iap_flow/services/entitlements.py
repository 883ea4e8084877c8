"""Entitlements: what a buyer may use, derived from their orders and subscriptions when asked.

Nothing here is stored: every answer is computed from the orders (a non-consumable held
until refunded, consumables counted as delivered units) and the subscriptions (until the
period end, plus the grace period while in it; nothing on hold, paused, expired or revoked).
A question about a past time reads the subscriptions' history rows and the orders' audit
trail, so support can ask "did they have access on the 3rd?".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from iap_flow.domain.clock import utc
from iap_flow.domain.models import Entitlement, OrderStatus, ProductKind
from iap_flow.domain.roles import Actor
from iap_flow.ports import HeldOrder, SubscriptionState
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident
from iap_flow.services.subscription_writes import access_until

_GRANTS = frozenset(
    {
        OrderStatus.PAID,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
        OrderStatus.PARTIALLY_REFUNDED,
    }
)
# A partial refund keeps access: a partially refunded order grants what it did before (its
# consumable units count as delivered); only a refund of the whole amount takes it away.
_DELIVERED = frozenset(
    {OrderStatus.DELIVERED, OrderStatus.COMPLETED, OrderStatus.PARTIALLY_REFUNDED}
)


def derive(
    orders: Sequence[HeldOrder], subscriptions: Sequence[SubscriptionState], at: datetime
) -> list[Entitlement]:
    """The entitlements that ``orders`` and ``subscriptions`` (as they stood at ``at``) give.

    An order refunded by ``at`` gives nothing; one refunded later still gave at ``at``.
    """
    out: list[Entitlement] = []
    units: dict[str, tuple[int, str]] = {}
    for o in orders:
        refunded = o.refunded_at
        if refunded is not None:
            if refunded <= at:
                continue
        elif o.status is OrderStatus.REFUNDED:
            continue
        kind = o.kind
        if kind is ProductKind.NON_CONSUMABLE:
            if o.status in _GRANTS or refunded is not None:
                out.append(Entitlement(o.sku, kind, o.order_id, None))
        elif o.status in _DELIVERED or refunded is not None:
            count, newest = units.get(o.sku, (0, ""))
            units[o.sku] = (count + 1, max(newest, o.order_id))
    for sku, (count, newest) in units.items():
        out.append(Entitlement(sku, ProductKind.CONSUMABLE, newest, None, units=count))
    for s in subscriptions:
        until = access_until(s.status, s.period_end, s.grace_until)
        if until is not None and at < until:
            out.append(
                Entitlement(
                    s.sku,
                    ProductKind.SUBSCRIPTION,
                    s.latest_order_id,
                    until,
                    s.subscription_id,
                    s.status,
                )
            )
    out.sort(key=lambda e: (e.sku, e.source_order_id))
    return out


class Entitlements:
    """``flow.entitlements.active(actor, user_id)``: what the buyer may use right now."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def active(
        self, actor: Actor, user_id: str, *, at: datetime | None = None
    ) -> list[Entitlement]:
        """The buyer's entitlements now, or as they stood at ``at``, sorted by sku.

        A buyer may ask only about themselves; staff about anyone.
        """
        ctx = self._ctx
        who = ctx.actor(actor)
        user = ident(user_id, "user_id")
        check(who, "entitlement.read", user)
        if at is None:
            orders, subscriptions = ctx.store.entitlement_sources(user, None)
            return derive(orders, subscriptions, ctx.now())
        when = utc(at, "at")
        orders, subscriptions = ctx.store.entitlement_sources(user, when)
        return derive(orders, subscriptions, when)
