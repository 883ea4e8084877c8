"""Google Play subscription notifications -> ``flow.subscriptions``, on Google's word.

A push only says *that* something happened to a purchase token; what is true is read from
``purchases.subscriptionsv2.get`` (Google: "the source of truth"). Each notification type
names the command it may lead to and the ``subscriptionState`` that must confirm it; a push
Google's answer does not confirm changes nothing (outcome ``unconfirmed``):

=====================================  ====================================  ==================
notification (``notificationType``)    command                               confirmed by state
=====================================  ====================================  ==================
1 RECOVERED                            the paid order, then ``recovered``    ACTIVE
2 RENEWED, 4 PURCHASED                 the paid order (a renewal extends)    (the order itself)
3 CANCELED                             ``cancelled`` (or ``expired``)        CANCELED (EXPIRED)
5 ON_HOLD                              ``renewal_failed()``                  ON_HOLD
6 IN_GRACE_PERIOD                      ``renewal_failed(grace_until=``       IN_GRACE_PERIOD
                                       the line item's ``expiryTime``)
7 RESTARTED                            ``uncancelled``                       ACTIVE
9 DEFERRED                             ``extended`` to ``expiryTime``        ACTIVE
10 PAUSED                              ``paused``                            PAUSED
12 REVOKED                             the refund (``orders.get`` says       EXPIRED
                                       REFUNDED), else ``revoked``
13 EXPIRED                             ``expired``                           EXPIRED
8, 11, 19-22 (price changes, pause    acknowledged and recorded as          -
schedule, a pending purchase dropped)  ``noted``: no state change
=====================================  ====================================  ==================

A PURCHASED whose resource names a ``linkedPurchaseToken`` (an upgrade, downgrade or
crossgrade in Google's replacement flow) continues the old token's subscription: the plan
changes at once and the new token's first order is recorded as its renewal, so one
subscription (and one entitlement) carries on. A subscription the flow has not recorded yet
is recorded from Google's orders first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from iap_flow import (
    Actor,
    Flow,
    NotFound,
    Order,
    PlatformUnavailable,
    Subscription,
    TransitionNotAllowed,
)
from iap_flow.adapters.googleplay.client import SOURCE, PlayApiError
from iap_flow.adapters.googleplay.platform import (
    GooglePlayPlatform,
    first_order_id,
    latest_order,
    product_of,
)
from iap_flow.adapters.webhooks import Applied, rejected

log = logging.getLogger("iap_flow.adapters.googleplay")

NOTED = frozenset({8, 11, 19, 20, 21, 22})
"""Price changes (8, 19, 21, 22), pause schedule changes (11), a pending purchase cancelled
before it was paid (20): nothing changes until Google charges or pauses."""
_CONFIRMS: dict[int, tuple[str, ...]] = {
    1: ("ACTIVE",),
    3: ("CANCELED", "EXPIRED"),
    5: ("ON_HOLD",),
    6: ("IN_GRACE_PERIOD",),
    7: ("ACTIVE",),
    9: ("ACTIVE",),
    10: ("PAUSED",),
    12: ("EXPIRED",),
    13: ("EXPIRED",),
}
_ALREADY = {
    "hold": ("on_hold",),
    "enter_grace": ("in_grace_period",),
    "expire": ("expired", "revoked"),
    "cancel": ("cancelled", "expired"),
    "uncancel": ("active",),
    "revoke": ("revoked",),
    "pause": ("paused",),
    "recover": ("active",),
}
"""Event -> the states in which a refused event means it already happened."""
Command = Callable[[], Subscription]


def state_of(resource: Mapping[str, Any]) -> str:
    """``SUBSCRIPTION_STATE_ACTIVE`` -> ``ACTIVE``."""
    return str(resource.get("subscriptionState") or "").removeprefix("SUBSCRIPTION_STATE_")


def expiry_of(resource: Mapping[str, Any]) -> datetime | None:
    """The first line item's ``expiryTime`` (RFC 3339), if Google gives one."""
    for item in resource.get("lineItems") or []:
        raw = item.get("expiryTime")
        if raw:
            try:
                return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


class PlaySubscriptions:
    """Applies Google Play's subscription notifications to the flow's subscriptions."""

    def __init__(self, flow: Flow, platform: GooglePlayPlatform, actor: Actor) -> None:
        self._flow = flow
        self._platform = platform
        self._actor = actor

    def look_up(self, token: str) -> dict[str, Any]:
        """``purchases.subscriptionsv2.get``; a token Google does not know is refused."""
        try:
            return self._platform.client.subscription(token)
        except PlayApiError as exc:
            if exc.retryable:
                raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
            raise rejected(SOURCE, "unverified", f"Google does not know the token: {exc}") from exc

    def of_order(self, order_id: str | None) -> Subscription | None:
        """The flow's subscription of the Play order ``order_id`` (or of its first order)."""
        if not order_id:
            return None
        events, plat = self._flow.platform_events, self._platform.platform
        for candidate in dict.fromkeys((order_id, first_order_id(order_id))):
            order = events.order_for_transaction(self._actor, plat, candidate)
            if order is not None:
                try:
                    return self._flow.subscriptions.for_order(self._actor, order.id)
                except NotFound:
                    return None
        return None

    def linked_first(self, resource: Mapping[str, Any], key: str) -> str | None:
        """For a purchase replacing an older one (``linkedPurchaseToken``): the old
        subscription's first Play order id, after its plan changed to the new product at
        once (the new token's orders are then recorded as that subscription's renewals)."""
        linked = resource.get("linkedPurchaseToken")
        if not linked:
            return None
        try:
            old = self._platform.client.subscription(str(linked))
        except PlayApiError as exc:
            if exc.retryable:
                raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
            return None
        old_latest = latest_order(old)
        sub = self.of_order(old_latest)
        product = product_of(resource)
        if sub is None or product is None:
            return None
        sku = self._platform.sku_for(product)
        if sub.sku != sku and sub.status.value not in ("revoked", "expired"):
            subs = self._flow.subscriptions
            self._attempt(lambda: subs.plan_changed(self._actor, sub.id, sku=sku, immediate=True, idempotency_key=key + ":plan"))  # fmt: skip
        return None if old_latest is None else first_order_id(old_latest)

    def after_charge(self, number: object, token: str, order: Order | None, key: str) -> None:
        """After a RECOVERED push's order is recorded: recover the subscription if the order
        alone did not (Google collected without a new period of its own)."""
        if number != 1 or order is None:
            return
        resource = self.look_up(token)
        sub = self.of_order(latest_order(resource))
        if sub is None or state_of(resource) != "ACTIVE":
            return
        if sub.status.value in ("in_grace_period", "on_hold"):
            end = expiry_of(resource)
            if end is not None and end <= self._flow.clock.now():
                end = None
            subs = self._flow.subscriptions
            self._attempt(lambda: subs.recovered(self._actor, sub.id, period_end=end, idempotency_key=key))  # fmt: skip

    def apply(
        self, number: object, token: str, key: str, record: Callable[[], Order | None]
    ) -> Applied:
        """Apply one non-charge subscription notification about ``token``; ``record``
        records the subscription's paid orders the flow lacks (and returns the latest)."""
        if not isinstance(number, int) or number in NOTED:
            log.info("Google Play subscription notification %s for %s noted", number, token)
            return "noted", None, None
        if number not in _CONFIRMS:
            return "ignored", None, None
        resource = self.look_up(token)
        sub = self.of_order(latest_order(resource))
        if sub is None:
            order = record()
            sub = None if order is None else self.of_order(order.platform_transaction_id)
        if sub is None:
            log.warning("Google Play notification %s: token %s has no subscription", number, token)
            return "ignored", None, None
        state = state_of(resource)
        if state not in _CONFIRMS[number]:
            log.warning(
                "Google Play notification %s not applied to %s: Google says %s",
                number,
                sub.id,
                state or "nothing",
            )
            return "unconfirmed", sub.latest_order_id, None
        command = self._command(number, state, resource, sub, key)
        if command is None:
            return "unchanged", sub.latest_order_id, None
        outcome = self._attempt(command)
        if outcome != "changed":
            log.info("Google Play notification %s on %s (%s): %s", number, sub.id, sub.status.value, outcome)  # fmt: skip
            return outcome, sub.latest_order_id, None
        after = self._flow.subscriptions.get(self._actor, sub.id)
        return f"subscription_{after.status.value}", after.latest_order_id, None

    def _command(
        self,
        number: int,
        state: str,
        resource: Mapping[str, Any],
        sub: Subscription,
        key: str,
    ) -> Command | None:
        subs, actor, sid = self._flow.subscriptions, self._actor, sub.id
        now = self._flow.clock.now()
        expiry = expiry_of(resource)
        if number == 3 and state == "CANCELED":
            return lambda: subs.cancelled(actor, sid, idempotency_key=key)
        if number in (3, 13):
            return lambda: subs.expired(actor, sid, idempotency_key=key)
        if number == 6 and expiry is not None and expiry > now:
            return lambda: subs.renewal_failed(actor, sid, grace_until=expiry, idempotency_key=key)
        if number in (5, 6):
            return lambda: subs.renewal_failed(actor, sid, idempotency_key=key)
        if number == 7:
            return lambda: subs.uncancelled(actor, sid, idempotency_key=key)
        if number == 10:
            return lambda: subs.paused(actor, sid, idempotency_key=key)
        if number == 12:
            if sub.status.value == "revoked":  # the confirmed refund revoked it already
                return None
            why = "revoked in Google Play"
            return lambda: subs.revoked(actor, sid, reason=why, idempotency_key=key)
        if number == 9:
            if expiry is None or expiry <= sub.period_end:
                return None
            why = "billing deferred in Google Play"
            return lambda: subs.extended(actor, sid, period_end=expiry, reason=why, idempotency_key=key)  # fmt: skip
        # 1 RECOVERED with nothing left to record: the subscription is recovered
        if sub.status.value not in ("in_grace_period", "on_hold"):
            return None
        end = expiry if expiry is not None and expiry > now else None
        return lambda: subs.recovered(actor, sid, period_end=end, idempotency_key=key)

    @staticmethod
    def _attempt(command: Command) -> str:
        try:
            command()
        except TransitionNotAllowed as exc:
            return "unchanged" if exc.state in _ALREADY.get(exc.event, ()) else "out_of_order"
        return "changed"
