"""App Store Server Notifications V2 -> core commands.

Verified with the library's ``SignedDataVerifier`` (chain to the configured roots, bundle id,
app Apple id, environment), then mapped:

- ``ONE_TIME_CHARGE``, ``SUBSCRIBED``, ``DID_RENEW``, and an upgrade
  (``DID_CHANGE_RENEWAL_PREF`` or ``OFFER_REDEEMED`` with subtype ``UPGRADE``: Apple charges
  it at once, with a new transaction): the purchase is recorded and paid (a renewal or an
  upgrade is a new order linked to the subscription's first order; a renewal that comes
  before its first purchase looks that one up first). A ``FAMILY_SHARED`` transaction is a
  family member's access, recorded at zero: the revenue is the purchaser's;
- ``CONSUMPTION_REQUEST``: a refund review opens (or joins the buyer's open request) with
  Apple's deadline (12 hours after Apple signed the request, configurable);
- ``REFUND``: Apple refunded: the refund and the order become refunded, the buyer is told;
  a prorated refund (``revocationType`` ``REFUND_PRORATED``, ``revocationPercentage`` in
  thousandths of a percent) refunds that share of what was paid, rounded half up to the
  minor unit (:func:`~iap_flow.domain.money.share`): the order is partially refunded;
- ``REFUND_DECLINED``: Apple declined: the refund is rejected, the buyer is told;
- ``REFUND_REVERSED``: Apple took a refund back: audited and told (states stay refunded);
- the subscription's own changes (renewal failures, grace and its expiry, expiry, auto-renew
  off and on, downgrades, revocation, renewal date extensions): one ``flow.subscriptions``
  command each (:mod:`iap_flow.adapters.appstore.subscriptions`);
- anything else (including kinds this version does not know) is acknowledged, logged and
  ignored: refusing it would make Apple retry it for three days.

A transaction that already carries ``revocationDate`` is never recorded as paid: a purchase
notification about one records the refund, and :meth:`AppStoreNotifications.record_transaction`
refuses it.

``notificationUUID`` keys every command, so Apple's retries change nothing and return the
first result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from appstoreserverlibrary.api_client import APIException
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
    JWSTransactionDecodedPayload,
)
from appstoreserverlibrary.models.NotificationTypeV2 import NotificationTypeV2 as Type
from appstoreserverlibrary.models.ResponseBodyV2DecodedPayload import (
    ResponseBodyV2DecodedPayload,
)
from appstoreserverlibrary.models.Subtype import Subtype

from iap_flow import SYSTEM, Actor, Flow, Money, NotFound, Order
from iap_flow.adapters.appstore.platform import SOURCE, AppStorePlatform
from iap_flow.adapters.appstore.subscriptions import CHANGES, AppStoreSubscriptions
from iap_flow.adapters.webhooks import (
    Applied,
    IngestResult,
    StartResponse,
    already_applied,
    apply_once,
    rejected,
    wsgi_app,
)
from iap_flow.domain.money import share

log = logging.getLogger("iap_flow.adapters.appstore")

_PURCHASES = frozenset({Type.ONE_TIME_CHARGE, Type.SUBSCRIBED, Type.DID_RENEW})
_UPGRADES = frozenset({Type.DID_CHANGE_RENEWAL_PREF, Type.OFFER_REDEEMED})
_ABOUT_A_TRANSACTION = (
    _PURCHASES
    | CHANGES
    | {
        Type.REFUND,
        Type.REFUND_DECLINED,
        Type.REFUND_REVERSED,
        Type.CONSUMPTION_REQUEST,
    }
)


def _upgrade(note: ResponseBodyV2DecodedPayload) -> bool:
    return note.notificationType in _UPGRADES and note.subtype is Subtype.UPGRADE


class AppStoreNotifications:
    """Feeds App Store notifications (and transactions your app sends) into a flow."""

    def __init__(self, flow: Flow, platform: AppStorePlatform, *, actor: Actor = SYSTEM) -> None:
        self._flow = flow
        self._platform = platform
        self._actor = actor
        self._subscriptions = AppStoreSubscriptions(flow, platform, actor)

    def ingest(self, signed_payload: str) -> IngestResult:
        """Verify one notification's ``signedPayload`` and apply it once.

        Raises :class:`~iap_flow.adapters.webhooks.NotificationRejected` (and changes nothing)
        if it does not verify.
        """
        note = self._platform.verify_notification(signed_payload)
        if not note.notificationUUID or not note.rawNotificationType:
            raise rejected(SOURCE, "malformed", "notification has no notificationUUID or type")
        uuid = note.notificationUUID
        seen = already_applied(self._flow, SOURCE, uuid)
        if seen is not None:  # Apple's retry: the first result, no more verification
            return seen
        txn = None
        if note.notificationType in _ABOUT_A_TRANSACTION or _upgrade(note):
            signed = note.data.signedTransactionInfo if note.data else None
            if not signed:
                raise rejected(
                    SOURCE, "malformed", f"{note.rawNotificationType} has no transaction"
                )
            txn = self._platform.verify_transaction(signed)
        kind = note.rawNotificationType

        def apply() -> Applied:
            return self._apply(note, txn)

        return apply_once(self._flow, SOURCE, uuid, kind, apply, checked=True)

    def ingest_body(self, body: bytes, environ: Mapping[str, Any] | None = None) -> IngestResult:
        """Ingest the JSON body Apple POSTs: ``{"signedPayload": "..."}``."""
        try:
            signed = json.loads(body)["signedPayload"]
        except (ValueError, KeyError, TypeError) as exc:
            raise rejected(SOURCE, "malformed", 'body is not {"signedPayload": ...}') from exc
        if not isinstance(signed, str):
            raise rejected(SOURCE, "malformed", "signedPayload must be a string")
        return self.ingest(signed)

    def wsgi_app(self) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
        """A WSGI endpoint for App Store Server Notifications V2: point App Store Connect's
        production / sandbox server URL at wherever you mount it."""
        return wsgi_app(self.ingest_body)

    def record_transaction(self, signed_transaction: str) -> Order:
        """Record a purchase from a signed transaction your app sent (StoreKit's
        ``jwsRepresentation``): verified, then paid once however often it is sent.

        Refuses (NotificationRejected, nothing written) a transaction Apple has revoked."""
        txn = self._platform.verify_transaction(signed_transaction)
        if txn.revocationDate is not None:
            raise rejected(
                SOURCE, "revoked", f"transaction {txn.transactionId} was revoked: it is not paid"
            )
        return self._purchase(txn, f"{SOURCE}:txn:{txn.transactionId}")

    # -- mapping ------------------------------------------------------------------------------
    def _apply(
        self, note: ResponseBodyV2DecodedPayload, txn: JWSTransactionDecodedPayload | None
    ) -> Applied:
        kind = note.notificationType
        if txn is None:
            log.info(
                "ignored App Store notification %s/%s (%s): nothing to record",
                note.rawNotificationType,
                note.rawSubtype,
                note.notificationUUID,
            )
            return "ignored", None, None
        key = f"{SOURCE}:{note.notificationUUID}"
        if _upgrade(note):
            kind = Type.DID_RENEW  # a new, charged transaction of the same subscription
            self._subscriptions.upgrade(txn, key)
        if kind in _PURCHASES and txn.revocationDate is None:
            order = self._purchase(txn, key)
            return "paid", order.id, None
        if kind in _PURCHASES:  # Apple already revoked it: the refund is what is true now
            kind = Type.REFUND
        # About an earlier purchase: record it first if this flow never saw it.
        order = self._purchase(txn, key + ":purchase")
        events, actor = self._flow.platform_events, self._actor
        if kind in CHANGES:  # about the subscription: see appstore.subscriptions
            return self._subscriptions.apply(note, txn, order, key)
        if kind is Type.CONSUMPTION_REQUEST:
            reason = note.data.rawConsumptionRequestReason if note.data else None
            refund = self._flow.platform_events.review_requested(
                actor,
                order.id,
                reason=f"App Store refund request ({reason or 'no reason given'})",
                review_due=self._signed_at(note) + self._platform.review_window,
                idempotency_key=key,
            )
            return "review_opened", order.id, refund.id
        if kind is Type.REFUND:
            why = f"refunded by Apple ({txn.rawRevocationReason or 'no reason given'})"
            part = prorated(txn, order)
            if part is None:
                refund = events.refunded(actor, order.id, reason=why, idempotency_key=key)
                return "refunded", order.id, refund.id
            if part.amount == 0:  # a share smaller than the currency's minor unit
                log.warning("App Store refund of %s rounds to nothing", txn.transactionId)
                return "ignored", order.id, None
            refund = events.refunded(
                actor,
                order.id,
                reason=f"{why}, prorated {txn.revocationPercentage} of 100000",
                amount=part,
                platform_refund_id=f"{txn.transactionId}:revoked:{txn.revocationDate}",
                idempotency_key=key,
            )
            whole = part.amount >= order.refundable.amount
            return ("refunded" if whole else "partially_refunded"), order.id, refund.id
        if kind is Type.REFUND_DECLINED:
            why = "Apple declined the refund request"
            refund = events.refund_declined(actor, order.id, reason=why, idempotency_key=key)
            return "declined", order.id, refund.id
        try:
            why = "Apple reversed the refund: the buyer keeps the purchase"
            refund = events.refund_reversed(actor, order.id, reason=why, idempotency_key=key)
        except NotFound:  # a reversal of a refund this flow never recorded: nothing to undo
            return "ignored", order.id, None
        return "reversed", order.id, refund.id

    def _purchase(self, txn: JWSTransactionDecodedPayload, key: str) -> Order:
        platform = self._platform
        assert txn.transactionId is not None and txn.productId is not None  # verified
        original = txn.originalTransactionId
        if original and original != txn.transactionId:
            self._record_original(original)
        return self._flow.platform_events.purchased(
            self._actor,
            platform=platform.platform,
            transaction_id=txn.transactionId,
            sku=platform.sku_for(txn.productId),
            user_id=platform.user_for(txn),
            original_transaction_id=txn.originalTransactionId,
            amount=platform.amount_of(txn),
            idempotency_key=key,
        )

    def _record_original(self, original: str) -> None:
        """A renewal that came before its subscription's first purchase: look the first one
        up (when an API client is configured) and record it, so the renewal links to it."""
        events, platform = self._flow.platform_events, self._platform
        if not platform.can_look_up:
            return
        if events.order_for_transaction(self._actor, platform.platform, original) is not None:
            return
        try:
            first = platform.look_up(original)
        except APIException as exc:
            log.warning("first purchase %s not found at Apple: %s", original, exc)
            return
        if first.revocationDate is None and first.transactionId == original:
            self._purchase(first, f"{SOURCE}:txn:{original}")

    def _signed_at(self, note: ResponseBodyV2DecodedPayload) -> datetime:
        if note.signedDate is None:
            return self._flow.clock.now()
        return datetime.fromtimestamp(note.signedDate / 1000, UTC)


def prorated(txn: JWSTransactionDecodedPayload, order: Order) -> Money | None:
    """The share of ``order``'s payment a prorated refund gave back; None for a refund of
    all of it (``REFUND_FULL``, ``FAMILY_REVOKE``, or a percentage of 100 % or none)."""
    percentage = txn.revocationPercentage
    if txn.rawRevocationType != "REFUND_PRORATED":
        return None
    if isinstance(percentage, bool) or not isinstance(percentage, int) or percentage <= 0:
        log.warning(
            "prorated App Store refund of %s without a usable revocationPercentage (%r): "
            "recorded as a full refund",
            txn.transactionId,
            percentage,
        )
        return None
    if percentage >= 100_000:
        return None
    return share(order.amount, percentage, 100_000)
