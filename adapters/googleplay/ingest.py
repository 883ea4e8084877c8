"""Real-time developer notifications (Pub/Sub push) and voided purchases -> core commands.

A push is ``{"message": {"data": <base64 JSON>, "messageId": ...}, "subscription": ...}``;
the JSON is a DeveloperNotification for this package, carrying one of:

- ``oneTimeProductNotification`` PURCHASED, ``subscriptionNotification`` PURCHASED /
  RENEWED / RECOVERED: the purchase is looked up with androidpublisher and recorded paid (a
  renewal is a new order linked to the subscription's first order);
- ``voidedPurchaseNotification`` (a full refund or chargeback): the order is recorded refunded;
- ``pendingRefundReviewNotification`` (a chargeback Google lets you review): a refund review
  opens with Google's deadline; staff's decision is answered with ``orders.reviewrefund``;
- anything else is acknowledged and ignored.

``messageId`` keys every command, so a redelivered push changes nothing. Pub/Sub push can be
authenticated with a shared ``token`` query parameter on the push endpoint URL.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import attrs

from iap_flow import SYSTEM, Actor, Flow, Order, OrderStatus
from iap_flow.adapters.googleplay.client import SOURCE, PlayApiError
from iap_flow.adapters.googleplay.platform import (
    PENDING,
    GooglePlayPlatform,
    first_order_id,
    latest_order,
    product_of,
)
from iap_flow.adapters.webhooks import (
    Applied,
    IngestResult,
    StartResponse,
    apply_once,
    rejected,
    wsgi_app,
)

log = logging.getLogger("iap_flow.adapters.googleplay")

SUBSCRIPTION_TYPES = {
    1: "RECOVERED", 2: "RENEWED", 3: "CANCELED", 4: "PURCHASED", 5: "ON_HOLD",
    6: "IN_GRACE_PERIOD", 7: "RESTARTED", 8: "PRICE_CHANGE_CONFIRMED", 9: "DEFERRED",
    10: "PAUSED", 11: "PAUSE_SCHEDULE_CHANGED", 12: "REVOKED", 13: "EXPIRED",
    17: "ITEMS_CHANGED", 18: "CANCELLATION_SCHEDULED", 19: "PRICE_CHANGE_UPDATED",
    20: "PENDING_PURCHASE_CANCELED",
}  # fmt: skip
_CHARGED = frozenset({1, 2, 4})  # a new order was paid
ONE_TIME_PURCHASED, FULL_REFUND = 1, 1
VOIDED_REASONS = (
    "other", "remorse", "not received", "defective", "accidental purchase", "fraud",
    "friendly fraud", "chargeback",
)  # fmt: skip


@attrs.frozen
class Reconciled:
    """What one ``voidedpurchases.list`` reconciliation found."""

    seen: int = 0
    refunded: int = 0
    already: int = 0
    unknown: int = 0
    partial: int = 0


class GooglePlayNotifications:
    """Feeds Google Play RTDN pushes and voided purchases into a flow."""

    def __init__(
        self,
        flow: Flow,
        platform: GooglePlayPlatform,
        *,
        push_token: str | None = None,
        subscription: str | None = None,
        actor: Actor = SYSTEM,
    ) -> None:
        self._flow = flow
        self._platform = platform
        self._token = push_token
        self._subscription = subscription
        self._actor = actor

    # -- ingest -------------------------------------------------------------------------------
    def ingest_push(self, envelope: Mapping[str, Any], *, token: str | None = None) -> IngestResult:
        """Apply one Pub/Sub push once. ``token`` is the push URL's ``token`` parameter.

        Raises :class:`~iap_flow.adapters.webhooks.NotificationRejected` (changing nothing)
        for a push that is unauthenticated, for another subscription or app, or malformed.
        """
        if self._token is not None and not hmac.compare_digest(token or "", self._token):
            raise rejected(SOURCE, "unauthenticated", "push token missing or wrong")
        if self._subscription is not None and envelope.get("subscription") != self._subscription:
            raise rejected(SOURCE, "wrong_subscription", "push from another subscription")
        message = envelope.get("message")
        if not isinstance(message, Mapping):
            raise rejected(SOURCE, "malformed", "push has no message")
        message_id = message.get("messageId") or message.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise rejected(SOURCE, "malformed", "message has no messageId")
        note = _decode(message.get("data"))
        if note.get("packageName") != self._platform.client.package_name:
            raise rejected(SOURCE, "wrong_package", f"notification for {note.get('packageName')!r}")
        kind, body = _kind(note)
        return apply_once(
            self._flow, SOURCE, message_id, kind, lambda: self._apply(kind, body, note, message_id)
        )

    def ingest_body(self, body: bytes, environ: Mapping[str, Any] | None = None) -> IngestResult:
        """Ingest the JSON body Pub/Sub POSTs (the token read from the query string)."""
        query = parse_qs(str((environ or {}).get("QUERY_STRING", "")))
        token = query["token"][0] if query.get("token") else None
        try:
            envelope = json.loads(body)
        except ValueError as exc:
            raise rejected(SOURCE, "malformed", "push body is not JSON") from exc
        if not isinstance(envelope, Mapping):
            raise rejected(SOURCE, "malformed", "push body is not a JSON object")
        return self.ingest_push(envelope, token=token)

    def wsgi_app(self) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
        """A WSGI endpoint for a Pub/Sub push subscription on your RTDN topic."""
        return wsgi_app(self.ingest_body)

    # -- mapping ------------------------------------------------------------------------------
    def _apply(
        self, kind: str, body: Mapping[str, Any], note: Mapping[str, Any], mid: str
    ) -> Applied:
        key = f"{SOURCE}:{mid}"
        if kind == "ONE_TIME_PRODUCT_PURCHASED":
            order = self._one_time(str(body["purchaseToken"]), str(body["sku"]), key)
            return ("paid", order.id, None) if order else ("ignored", None, None)
        if kind.startswith("SUBSCRIPTION_") and body.get("notificationType") in _CHARGED:
            order = self._subscription_paid(str(body["purchaseToken"]), key)
            return ("paid", order.id, None) if order else ("ignored", None, None)
        events = self._flow.platform_events
        if kind == "VOIDED_PURCHASE":
            found = self._order(body.get("orderId"))
            if found is None or body.get("refundType", FULL_REFUND) != FULL_REFUND:
                log.warning("voided purchase %s not applied: unknown or partial", body)
                return "ignored", None if found is None else found.id, None
            refund = events.refunded(
                self._actor, found.id, reason="voided in Google Play", idempotency_key=key
            )
            return "refunded", found.id, refund.id
        if kind == "PENDING_REFUND_REVIEW":
            found = self._order(body.get("orderId"))
            if found is None or not body.get("pendingRefundToken"):
                log.warning("refund review for an unknown order: %s", body.get("orderId"))
                return "ignored", None, None
            asked = datetime.fromtimestamp(int(note.get("eventTimeMillis") or 0) / 1000, UTC)
            refund = self._flow.platform_events.review_requested(
                self._actor,
                found.id,
                reason=f"Google Play chargeback review (reason {body.get('refundReason', '?')})",
                review_due=asked + self._platform.review_window,
                platform_refund_id=str(body["pendingRefundToken"]),
                idempotency_key=key,
            )
            return "review_opened", found.id, refund.id
        return "ignored", None, None

    def _order(self, order_id: object) -> Order | None:
        if not isinstance(order_id, str) or not order_id:
            return None
        return self._flow.platform_events.order_for_transaction(
            self._actor, self._platform.platform, order_id
        )

    def _one_time(self, token: str, product_id: str, key: str) -> Order | None:
        client = self._platform.client
        purchase = _looked_up(lambda: client.product_purchase(product_id, token))
        if purchase.get("purchaseState") == PENDING or not purchase.get("orderId"):
            return None  # paid later: Google notifies again then
        return self._record(purchase, str(purchase["orderId"]), product_id, None, key)

    def _subscription_paid(self, token: str, key: str) -> Order | None:
        sub = _looked_up(lambda: self._platform.client.subscription(token))
        order_id, product_id = latest_order(sub), product_of(sub)
        if order_id is None or product_id is None:
            return None
        return self._record(sub, order_id, product_id, first_order_id(order_id), key)

    def _record(
        self,
        purchase: Mapping[str, Any],
        order_id: str,
        product_id: str,
        first_order: str | None,
        key: str,
    ) -> Order:
        platform = self._platform
        return self._flow.platform_events.purchased(
            self._actor,
            platform=platform.platform,
            transaction_id=order_id,
            sku=platform.sku_for(product_id),
            user_id=platform.user_for(purchase, order_id),
            original_transaction_id=first_order,
            idempotency_key=key,
        )

    # -- reconciliation -----------------------------------------------------------------------
    def reconcile_voided(self, since: datetime) -> Reconciled:
        """Record refunds made outside the flow (Play Console, chargebacks) since ``since``.

        Pages through ``voidedpurchases.list``; safe to run as often as you like: orders
        already refunded are left alone. Run it daily, with ``since`` a few days back.
        """
        client, counts = self._platform.client, dict.fromkeys(attrs.fields_dict(Reconciled), 0)
        page: str | None = None
        while True:
            answer = client.voided_purchases(
                start_ms=int(since.timestamp() * 1000), page_token=page
            )
            for voided in answer.get("voidedPurchases") or []:
                counts["seen"] += 1
                counts[self._reconcile(voided)] += 1
            page = (answer.get("tokenPagination") or {}).get("nextPageToken")
            if not page:
                return Reconciled(**counts)

    def _reconcile(self, voided: Mapping[str, Any]) -> str:
        if voided.get("voidedQuantity"):
            return "partial"  # a quantity-based partial refund: the order stands
        found = self._order(voided.get("orderId"))
        if found is None:
            return "unknown"
        if found.status is OrderStatus.REFUNDED:
            return "already"
        reason = int(voided.get("voidedReason") or 0)
        why = VOIDED_REASONS[reason] if 0 <= reason < len(VOIDED_REASONS) else str(reason)
        self._flow.platform_events.refunded(
            self._actor,
            found.id,
            reason=f"voided in Google Play ({why})",
            idempotency_key=f"{SOURCE}:voided:{found.platform_transaction_id}",
        )
        return "refunded"


def _looked_up(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A purchase Google confirms; one Google does not know is refused, not retried."""
    try:
        return call()
    except PlayApiError as exc:
        if exc.retryable:
            raise
        raise rejected(
            SOURCE, "unverified", f"Google does not confirm the purchase: {exc}"
        ) from exc


def _decode(data: object) -> dict[str, Any]:
    if not isinstance(data, str):
        raise rejected(SOURCE, "malformed", "message has no data")
    try:
        note = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise rejected(SOURCE, "malformed", "message data is not base64 JSON") from exc
    if not isinstance(note, dict):
        raise rejected(SOURCE, "malformed", "message data is not a JSON object")
    return note


def _kind(note: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The notification's type name and body; exactly one body must be present."""
    bodies = {
        name: note[name]
        for name in (
            "oneTimeProductNotification",
            "subscriptionNotification",
            "voidedPurchaseNotification",
            "pendingRefundReviewNotification",
            "testNotification",
        )
        if isinstance(note.get(name), Mapping)
    }
    if len(bodies) != 1:
        raise rejected(SOURCE, "malformed", "a notification carries exactly one body")
    ((name, body),) = bodies.items()
    if name == "oneTimeProductNotification":
        purchased = body.get("notificationType") == ONE_TIME_PURCHASED
        if purchased and not (body.get("purchaseToken") and body.get("sku")):
            raise rejected(SOURCE, "malformed", "one-time notification without token or sku")
        return ("ONE_TIME_PRODUCT_PURCHASED" if purchased else "ONE_TIME_PRODUCT_CANCELED"), body
    if name == "subscriptionNotification":
        number = body.get("notificationType")
        if number in _CHARGED and not body.get("purchaseToken"):
            raise rejected(SOURCE, "malformed", "subscription notification without token")
        return "SUBSCRIPTION_" + SUBSCRIPTION_TYPES.get(number, str(number)), body
    names = {
        "voidedPurchaseNotification": "VOIDED_PURCHASE",
        "pendingRefundReviewNotification": "PENDING_REFUND_REVIEW",
        "testNotification": "TEST",
    }
    return names[name], body
