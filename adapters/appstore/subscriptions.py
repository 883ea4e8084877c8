"""App Store Server Notifications V2 about a subscription's state -> ``flow.subscriptions``.

The charges (``SUBSCRIBED``, ``DID_RENEW`` with or without ``BILLING_RECOVERY``, an upgrade)
are purchases and go through ``platform_events.purchased`` (see
:mod:`iap_flow.adapters.appstore.ingest`): a paid renewal order starts the next period and
recovers a subscription in grace or on hold. What Apple reports besides charges maps to one
subscription command each:

============================================  ==========================================
``DID_FAIL_TO_RENEW`` / ``GRACE_PERIOD``       ``renewal_failed(grace_until=`` the renewal
                                               info's ``gracePeriodExpiresDate``)
``DID_FAIL_TO_RENEW`` (no subtype),            ``renewal_failed()``: on hold, no access
``GRACE_PERIOD_EXPIRED``                       while Apple retries billing
``EXPIRED`` (any subtype)                      ``expired``
``DID_CHANGE_RENEWAL_STATUS``                  ``cancelled`` (``AUTO_RENEW_DISABLED``) or
                                               ``uncancelled`` (``AUTO_RENEW_ENABLED``)
``DID_CHANGE_RENEWAL_PREF`` / ``DOWNGRADE``    ``plan_changed(immediate=False)`` to the
(or no subtype: back to the current plan)      renewal info's ``autoRenewProductId``
``REVOKE`` (family sharing withdrawn)          ``revoked``
``RENEWAL_EXTENDED``                           ``extended`` to the transaction's
                                               ``expiresDate``
============================================  ==========================================

``REFUND`` of the current period's transaction revokes through the refund
(``platform_events.refunded``). A notification that finds the subscription already where it
says (Apple's retry of a change the sweep made first) is ``unchanged``; one the machine does
not allow from the current state is acknowledged as ``out_of_order`` and logged, never
refused (Apple would retry it for three days).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from appstoreserverlibrary.models.JWSRenewalInfoDecodedPayload import (
    JWSRenewalInfoDecodedPayload,
)
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
    JWSTransactionDecodedPayload,
)
from appstoreserverlibrary.models.NotificationTypeV2 import NotificationTypeV2 as Type
from appstoreserverlibrary.models.ResponseBodyV2DecodedPayload import (
    ResponseBodyV2DecodedPayload,
)
from appstoreserverlibrary.models.Subtype import Subtype
from appstoreserverlibrary.signed_data_verifier import VerificationException

from iap_flow import Actor, Flow, NotFound, Order, Subscription, TransitionNotAllowed
from iap_flow.adapters.appstore.platform import SOURCE, AppStorePlatform
from iap_flow.adapters.webhooks import Applied, rejected

log = logging.getLogger("iap_flow.adapters.appstore")

CHANGES = frozenset(
    {
        Type.DID_FAIL_TO_RENEW,
        Type.GRACE_PERIOD_EXPIRED,
        Type.EXPIRED,
        Type.DID_CHANGE_RENEWAL_STATUS,
        Type.DID_CHANGE_RENEWAL_PREF,
        Type.REVOKE,
        Type.RENEWAL_EXTENDED,
    }
)
"""Notification types that change a subscription without a charge (an upgrade, a
``DID_CHANGE_RENEWAL_PREF`` with subtype ``UPGRADE``, is a charge)."""


def _at(millis: int | None) -> datetime | None:
    return None if millis is None else datetime.fromtimestamp(millis / 1000, UTC)


class AppStoreSubscriptions:
    """Applies the App Store's subscription notifications to the flow's subscriptions."""

    def __init__(self, flow: Flow, platform: AppStorePlatform, actor: Actor) -> None:
        self._flow = flow
        self._platform = platform
        self._actor = actor

    def renewal_info(self, note: ResponseBodyV2DecodedPayload) -> JWSRenewalInfoDecodedPayload:
        """The notification's ``signedRenewalInfo``, verified (refused if it does not)."""
        signed = note.data.signedRenewalInfo if note.data else None
        if not signed:
            return JWSRenewalInfoDecodedPayload()
        try:
            return self._platform.verifier.verify_and_decode_renewal_info(signed)
        except VerificationException as exc:
            raise rejected(SOURCE, "unverified", f"renewal info did not verify: {exc}") from exc

    def of(self, order: Order) -> Subscription | None:
        """The subscription ``order`` (its first order or a renewal) belongs to."""
        try:
            return self._flow.subscriptions.for_order(self._actor, order.id)
        except NotFound:
            return None

    def upgrade(self, txn: JWSTransactionDecodedPayload, key: str) -> None:
        """Before an upgrade's charge is recorded: the plan changes at once (the charge then
        starts the new plan's period)."""
        original = txn.originalTransactionId
        if not original or original == txn.transactionId or txn.productId is None:
            return
        events = self._flow.platform_events
        first = events.order_for_transaction(self._actor, self._platform.platform, original)
        sub = None if first is None else self.of(first)
        sku = self._platform.sku_for(txn.productId)
        if sub is not None and sub.sku != sku:
            subs = self._flow.subscriptions
            self._attempt(lambda: subs.plan_changed(self._actor, sub.id, sku=sku, immediate=True, idempotency_key=key + ":plan"))  # fmt: skip

    def apply(
        self,
        note: ResponseBodyV2DecodedPayload,
        txn: JWSTransactionDecodedPayload,
        order: Order,
        key: str,
    ) -> Applied:
        """Apply one subscription change about ``order`` (the transaction's order)."""
        sub = self.of(order)
        if sub is None:
            log.warning(
                "App Store %s for order %s: no subscription", note.rawNotificationType, order.id
            )
            return "ignored", order.id, None
        command = self._command(note, txn, sub, key)
        if command is None:
            return "unchanged", order.id, None
        outcome = self._attempt(command)
        if outcome != "changed":
            log.info(
                "App Store %s/%s on subscription %s (%s): %s",
                note.rawNotificationType,
                note.rawSubtype,
                sub.id,
                sub.status.value,
                outcome,
            )
        after = self._flow.subscriptions.get(self._actor, sub.id)
        return (f"subscription_{after.status.value}" if outcome == "changed" else outcome), order.id, None  # fmt: skip

    def _command(
        self,
        note: ResponseBodyV2DecodedPayload,
        txn: JWSTransactionDecodedPayload,
        sub: Subscription,
        key: str,
    ) -> Callable[[], Subscription] | None:
        kind, subtype = note.notificationType, note.subtype
        subs, actor, sid = self._flow.subscriptions, self._actor, sub.id
        if kind is Type.DID_FAIL_TO_RENEW and subtype is Subtype.GRACE_PERIOD:
            grace = _at(self.renewal_info(note).gracePeriodExpiresDate)
            if grace is not None and grace > self._flow.clock.now():
                return lambda: subs.renewal_failed(
                    actor, sid, grace_until=grace, idempotency_key=key
                )
            # no grace left (a late delivery): on hold, as Apple's GRACE_PERIOD_EXPIRED says
        if kind in (Type.DID_FAIL_TO_RENEW, Type.GRACE_PERIOD_EXPIRED):
            return lambda: subs.renewal_failed(actor, sid, idempotency_key=key)
        if kind is Type.EXPIRED:
            return lambda: subs.expired(actor, sid, idempotency_key=key)
        if kind is Type.DID_CHANGE_RENEWAL_STATUS:
            if subtype is Subtype.AUTO_RENEW_ENABLED:
                return lambda: subs.uncancelled(actor, sid, idempotency_key=key)
            return lambda: subs.cancelled(actor, sid, idempotency_key=key)
        if kind is Type.REVOKE:
            why = f"revoked by Apple ({txn.rawRevocationReason or 'family sharing withdrawn'})"
            return lambda: subs.revoked(actor, sid, reason=why, idempotency_key=key)
        if kind is Type.RENEWAL_EXTENDED:
            end = _at(txn.expiresDate)
            if end is None or end <= sub.period_end:
                return None
            why = "renewal date extended by Apple"
            return lambda: subs.extended(
                actor, sid, period_end=end, reason=why, idempotency_key=key
            )
        # DID_CHANGE_RENEWAL_PREF: a downgrade or crossgrade from the next renewal on
        info = self.renewal_info(note)
        product = info.autoRenewProductId or txn.productId
        if product is None:
            return None
        sku = self._platform.sku_for(product)
        if sku == sub.sku and sub.pending_sku is None:
            return None
        return lambda: subs.plan_changed(actor, sid, sku=sku, immediate=False, idempotency_key=key)

    @staticmethod
    def _attempt(command: Callable[[], Subscription]) -> str:
        """Run ``command``: ``changed``, or ``unchanged`` / ``out_of_order`` when the machine
        refuses it (already in the state it leads to, or a notification out of order)."""
        try:
            command()
        except TransitionNotAllowed as exc:
            return "unchanged" if exc.state in _ALREADY.get(exc.event, ()) else "out_of_order"
        return "changed"


_ALREADY = {
    "hold": ("on_hold",),
    "enter_grace": ("in_grace_period",),
    "expire": ("expired", "revoked"),
    "cancel": ("cancelled", "expired"),
    "uncancel": ("active",),
    "revoke": ("revoked",),
    "pause": ("paused",),
    "resume": ("active",),
    "recover": ("active",),
}
"""Event -> the states in which a refused event means it already happened."""
