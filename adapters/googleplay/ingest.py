"""Real-time developer notifications (Pub/Sub push) and voided purchases -> core commands.

A push is ``{"message": {"data": <base64 JSON>, "messageId": ...}, "subscription": ...}``
with Pub/Sub's OIDC token in ``Authorization``; nothing is read before that token verifies
(:class:`~iap_flow.adapters.googleplay.push_auth.PubSubPushAuth`). With no push
authentication configured every push is refused. The JSON is a DeveloperNotification for
this package, carrying one of:

- ``oneTimeProductNotification`` PURCHASED, ``subscriptionNotification`` PURCHASED /
  RENEWED / RECOVERED: the purchase is looked up with androidpublisher and recorded paid if
  Google says it is (``purchaseState`` 0); a subscription's orders the flow has not recorded
  yet (a renewal whose push came late or never) are confirmed with ``orders.batchget`` and
  recorded, each by its own order id;
- the other ``subscriptionNotification`` types (canceled, on hold, in grace period,
  restarted, deferred, paused, expired, price and pause schedule changes): one
  ``flow.subscriptions`` command each once ``purchases.subscriptionsv2.get`` confirms it
  (:mod:`iap_flow.adapters.googleplay.subscriptions`); a PURCHASED replacing an older token
  (``linkedPurchaseToken``) continues that token's subscription;
- ``voidedPurchaseNotification`` and ``subscriptionNotification`` REVOKED (a refund or
  chargeback): recorded refunded only once ``orders.get`` confirms the order is refunded;
  a quantity-based partial refund (``refundType`` 2) only once ``orders.get`` says it is
  partially refunded, as the share ``voidedQuantity`` (from ``voidedpurchases.list``) is of
  the purchase's ``quantity``;
- ``pendingRefundReviewNotification`` (a chargeback Google lets you review): a refund review
  opens with Google's deadline; staff's decision is answered with ``orders.reviewrefund``;
- anything else, including kinds this version does not know, is acknowledged, logged and
  ignored (refused, Pub/Sub would redeliver it for its whole retention).

``messageId`` keys every command, and a redelivered push is recognised before any call to
Google. A shared ``token`` query parameter can be required as well (``push_token``), never
instead.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from iap_flow import SYSTEM, Actor, Flow, Order, PlatformUnavailable
from iap_flow.adapters.googleplay.client import SOURCE, PlayApiError
from iap_flow.adapters.googleplay.messages import (
    CHARGED,
    FULL_REFUND,
    decode,
    google_orders,
    kind_of,
    looked_up,
)
from iap_flow.adapters.googleplay.platform import (
    CHARGED_STATES,
    PURCHASED,
    GooglePlayPlatform,
    about,
    first_order_id,
    latest_order,
    product_of,
    renewal_number,
)
from iap_flow.adapters.googleplay.push_auth import PubSubPushAuth, Unauthenticated
from iap_flow.adapters.googleplay.subscriptions import PlaySubscriptions
from iap_flow.adapters.googleplay.voided import Reconciled, partial_void, reconcile_voided
from iap_flow.adapters.webhooks import (
    Applied,
    IngestResult,
    StartResponse,
    apply_once,
    rejected,
    wsgi_app,
)

log = logging.getLogger("iap_flow.adapters.googleplay")


class GooglePlayNotifications:
    """Feeds Google Play RTDN pushes and voided purchases into a flow."""

    def __init__(
        self,
        flow: Flow,
        platform: GooglePlayPlatform,
        *,
        push_auth: PubSubPushAuth | None = None,
        push_token: str | None = None,
        subscription: str | None = None,
        actor: Actor = SYSTEM,
    ) -> None:
        self._flow = flow
        self._platform = platform
        self._auth = push_auth
        self._token = push_token
        self._subscription = subscription
        self._actor = actor
        self._subscriptions = PlaySubscriptions(flow, platform, actor)

    @property
    def platform(self) -> GooglePlayPlatform:
        """The Google Play platform these notifications are about."""
        return self._platform

    # -- ingest -------------------------------------------------------------------------------
    def ingest_push(
        self,
        envelope: Mapping[str, Any],
        *,
        authorization: str | None = None,
        token: str | None = None,
    ) -> IngestResult:
        """Apply one Pub/Sub push once. ``authorization`` is the request's ``Authorization``
        header (Pub/Sub's OIDC token); ``token`` the push URL's ``token`` parameter, checked
        too when ``push_token`` is configured.

        Raises :class:`~iap_flow.adapters.webhooks.NotificationRejected` (changing nothing)
        for a push that is unauthenticated, for another subscription or app, or malformed;
        PlatformUnavailable when Google could not be asked (retry later).
        """
        self._authenticate(authorization, token)
        return self._envelope(envelope)

    def ingest_body(self, body: bytes, environ: Mapping[str, Any] | None = None) -> IngestResult:
        """Ingest the JSON body Pub/Sub POSTs (``Authorization`` and the URL's ``token``
        read from the WSGI environ); the body is not read before the push authenticates."""
        environ = environ or {}
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        token = query["token"][0] if query.get("token") else None
        self._authenticate(environ.get("HTTP_AUTHORIZATION"), token)
        try:
            envelope = json.loads(body)
        except ValueError as exc:
            raise rejected(SOURCE, "malformed", "push body is not JSON") from exc
        if not isinstance(envelope, Mapping):
            raise rejected(SOURCE, "malformed", "push body is not a JSON object")
        return self._envelope(envelope)

    def wsgi_app(self) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
        """A WSGI endpoint for a Pub/Sub push subscription on your RTDN topic."""
        return wsgi_app(self.ingest_body)

    def _authenticate(self, authorization: str | None, token: str | None) -> None:
        if self._auth is None:
            raise rejected(
                SOURCE,
                "unauthenticated",
                "no push authentication configured (push_auth=PubSubPushAuth(...)): "
                "every push is refused",
            )
        try:
            self._auth.verify(authorization)
        except Unauthenticated as exc:
            raise rejected(SOURCE, "unauthenticated", f"push token refused: {exc}") from exc
        if self._token is not None and not hmac.compare_digest(token or "", self._token):
            raise rejected(SOURCE, "unauthenticated", "push URL token missing or wrong")

    def _envelope(self, envelope: Mapping[str, Any]) -> IngestResult:
        if self._subscription is not None and envelope.get("subscription") != self._subscription:
            raise rejected(SOURCE, "wrong_subscription", "push from another subscription")
        message = envelope.get("message")
        if not isinstance(message, Mapping):
            raise rejected(SOURCE, "malformed", "push has no message")
        message_id = message.get("messageId") or message.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise rejected(SOURCE, "malformed", "message has no messageId")
        note = decode(message.get("data"))
        if note.get("packageName") != self._platform.client.package_name:
            raise rejected(SOURCE, "wrong_package", f"notification for {note.get('packageName')!r}")
        kind, body = kind_of(note)
        return apply_once(
            self._flow, SOURCE, message_id, kind, lambda: self._apply(kind, body, note, message_id)
        )

    # -- mapping ------------------------------------------------------------------------------
    def _apply(
        self, kind: str, body: Mapping[str, Any], note: Mapping[str, Any], mid: str
    ) -> Applied:
        key = f"{SOURCE}:{mid}"
        number = body.get("notificationType")
        if kind == "ONE_TIME_PRODUCT_PURCHASED":
            order = self._one_time(str(body["purchaseToken"]), str(body["sku"]), key)
            return ("paid", order.id, None) if order else ("ignored", None, None)
        if kind.startswith("SUBSCRIPTION_") and number in CHARGED:
            token = str(body["purchaseToken"])
            order = self._subscription_paid(token, note, key)
            self._subscriptions.after_charge(number, token, order, key)
            return ("paid", order.id, None) if order else ("ignored", None, None)
        if kind == "VOIDED_PURCHASE":
            return self._voided(body, key, note)
        if kind == "SUBSCRIPTION_REVOKED":
            sub = looked_up(lambda: self._platform.client.subscription(str(body["purchaseToken"])))
            applied = self._confirmed_refund(latest_order(sub), "revoked in Google Play", key)
            if applied[0] == "refunded":
                return applied
            token = str(body["purchaseToken"])
            return self._subscriptions.apply(number, token, key, lambda: None)
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
        if kind.startswith("SUBSCRIPTION_") and body.get("purchaseToken"):
            token = str(body["purchaseToken"])
            record = lambda: self._subscription_paid(token, note, key)  # noqa: E731
            return self._subscriptions.apply(number, token, key, record)
        log.info("ignored Google Play notification %s (%s): nothing to record", kind, mid)
        return "ignored", None, None

    def _voided(self, body: Mapping[str, Any], key: str, note: Mapping[str, Any]) -> Applied:
        if body.get("refundType", FULL_REFUND) != FULL_REFUND:
            return self._partial_void(body, note)
        return self._confirmed_refund(body.get("orderId"), "voided in Google Play", key)

    def _partial_void(self, body: Mapping[str, Any], note: Mapping[str, Any]) -> Applied:
        """A quantity-based partial refund, confirmed before it is recorded: ``orders.get``
        must say the order is (partially) refunded, and the voided quantity is read from
        ``voidedpurchases.list`` (the push does not carry it), recorded as the
        reconciliation records it, so the two never count one refund twice."""
        order_id, found = body.get("orderId"), self._order(body.get("orderId"))
        if found is None:
            log.warning("partial void: order %r is not in this flow", order_id)
            return "ignored", None, None
        state = self._order_state(str(order_id))
        if state not in ("PARTIALLY_REFUNDED", "REFUNDED"):
            log.warning("partial void not applied: Google says order %s is %s", order_id, state)
            return "unconfirmed", found.id, None
        event_ms = int(note.get("eventTimeMillis") or 0)
        outcome = partial_void(self._flow, self._platform, self._actor, found, event_ms)
        return outcome, found.id, None

    def _confirmed_refund(self, order_id: object, why: str, key: str) -> Applied:
        """Record a refund the push reports once ``orders.get`` confirms it."""
        found = self._order(order_id)
        if found is None:
            log.warning("%s: order %r is not in this flow", why, order_id)
            return "ignored", None, None
        state = self._order_state(str(order_id))
        if state != "REFUNDED":
            log.warning("%s not applied: Google says order %s is %s", why, order_id, state)
            return "unconfirmed", found.id, None
        refund = self._flow.platform_events.refunded(
            self._actor, found.id, reason=why, idempotency_key=key
        )
        return "refunded", found.id, refund.id

    def _order_state(self, order_id: str) -> str:
        try:
            return str(self._platform.client.order(order_id).get("state") or "UNKNOWN")
        except PlayApiError as exc:
            if exc.retryable:
                raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
            return f"unknown to Google ({exc.status})"

    def _order(self, order_id: object) -> Order | None:
        if not isinstance(order_id, str) or not order_id:
            return None
        return self._flow.platform_events.order_for_transaction(
            self._actor, self._platform.platform, order_id
        )

    def _one_time(self, token: str, product_id: str, key: str) -> Order | None:
        client = self._platform.client
        purchase = looked_up(lambda: client.product_purchase(product_id, token))
        state = purchase.get("purchaseState", PURCHASED)
        if state != PURCHASED or not purchase.get("orderId"):
            # 1 canceled: never paid; 2 pending: Google notifies again once paid.
            log.info("purchase %s not recorded: purchaseState %s", purchase.get("orderId"), state)
            return None
        return self._record(purchase, str(purchase["orderId"]), product_id, None)

    def _subscription_paid(self, token: str, note: Mapping[str, Any], key: str) -> Order | None:
        """Record every paid order of the subscription the flow lacks, each by its own id
        (confirmed with ``orders.batchget``); the order this push is about is the one Google
        made last before the push's event time."""
        sub = looked_up(lambda: self._platform.client.subscription(token))
        latest, product_id = latest_order(sub), product_of(sub)
        if latest is None or product_id is None:
            return None
        first = first_order_id(latest)
        ids = [first] + [f"{first}..{n}" for n in range(renewal_number(latest) + 1)]
        recorded = {i: self._order(i) for i in ids}
        missing = [i for i, order in recorded.items() if order is None]
        # Which order the push is about: asked of Google when the flow lacks orders, or has
        # several (a late push about an older renewal).
        asked = missing or (ids[-12:] if len(ids) > 1 else [])
        known = google_orders(self._platform.client, asked) if asked else {}
        linked = self._subscriptions.linked_first(sub, key) if first in missing else None
        for order_id in missing:
            google = known.get(order_id)
            if google is None or google.get("state") not in CHARGED_STATES:
                continue
            original = linked if order_id == first else first
            recorded[order_id] = self._record(sub, order_id, product_id, original)
        made = {i: str(known[i].get("createTime") or "") for i in ids if i in known}
        made = {i: at for i, at in made.items() if recorded.get(i) is not None}
        this = about(made, note) if made else latest
        return recorded.get(this) or recorded.get(latest)

    def _record(
        self,
        purchase: Mapping[str, Any],
        order_id: str,
        product_id: str,
        first_order: str | None,
    ) -> Order:
        platform = self._platform
        return self._flow.platform_events.purchased(
            self._actor,
            platform=platform.platform,
            transaction_id=order_id,
            sku=platform.sku_for(product_id),
            user_id=platform.user_for(purchase, order_id),
            original_transaction_id=first_order,
            idempotency_key=f"{SOURCE}:order:{order_id}",
        )

    # -- reconciliation -----------------------------------------------------------------------
    def reconcile_voided(self, since: datetime) -> Reconciled:
        """Record refunds made outside the flow (Play Console, chargebacks) since ``since``
        (at most 30 days back: all ``voidedpurchases.list`` answers); see
        :func:`~iap_flow.adapters.googleplay.voided.reconcile_voided`."""
        return reconcile_voided(self._flow, self._platform, since, actor=self._actor)
