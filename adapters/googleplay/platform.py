"""Google Play as a payment platform: purchases confirmed through androidpublisher, refunds
staff approve paid out with ``orders.refund``, chargeback reviews answered with
``orders.reviewrefund``.

``orders.refund`` refunds a whole order and takes no idempotency key, so the adapter makes
retries safe itself: when a refund call fails (or timed out earlier and is retried), it asks
``orders.get`` whether the order is already refunded and, if so, reports success. Money moves
at most once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from iap_flow.adapters.accounts import google_account_matches
from iap_flow.adapters.googleplay.client import SOURCE, PlayApiError, PlayClient
from iap_flow.domain.clock import SystemClock
from iap_flow.domain.errors import PlatformUnavailable, PurchaseNotOwned
from iap_flow.domain.models import (
    Order,
    OrderStatus,
    Platform,
    ProductKind,
    RefundRequest,
    RefundStatus,
)
from iap_flow.ports import Clock, PaymentKind, PaymentResult

CHARGED_STATES = ("PROCESSED", "PENDING_REFUND", "PARTIALLY_REFUNDED", "REFUNDED")
"""Order states (orders.get / batchget) of an order the buyer was charged for."""
REVIEW_WINDOW = timedelta(hours=24)
"""How long Google waits for an answer to a pending refund review (a chargeback)."""
PURCHASED, PENDING = 0, 2  # ProductPurchase.purchaseState
_LIVE = ("SUBSCRIPTION_STATE_ACTIVE", "SUBSCRIPTION_STATE_IN_GRACE_PERIOD")


def first_order_id(order_id: str) -> str:
    """The subscription's first order id: renewals are ``<first>..0``, ``<first>..1``, ...

    >>> first_order_id("GPA.3345-1234-5678-90123..2")
    'GPA.3345-1234-5678-90123'
    """
    return order_id.split("..", 1)[0]


def _no_consumption(order: Order) -> int | None:
    return None


class GooglePlayPlatform:
    """Google Play behind the core's PaymentPlatform port.

    ``client`` wraps androidpublisher for your package (:class:`PlayClient`). ``revoke``
    makes refunds also take the item away. ``skus`` maps Play product ids to catalogue SKUs
    when they differ; ``user_for(purchase)`` names the buyer of a purchase resource (default:
    ``obfuscatedExternalAccountId``, the id your app passed to the billing flow).

    A purchase token the app sends to pay an order must carry the order's buyer as its
    ``obfuscatedExternalAccountId`` (the user id or
    :func:`~iap_flow.adapters.accounts.obfuscated_account_id` of it; with ``user_for``
    given, ``user_for(purchase)`` must name the buyer), else
    :class:`~iap_flow.domain.errors.PurchaseNotOwned`; ``require_account_id=False`` also
    accepts purchases that carry none (never one naming someone else).

    A chargeback review's answer is checked before it is sent (``consumption(order)`` in
    0-100000 milliunits; when it says None, ``delivered_consumption`` for a delivered
    purchase) and never sent after the review's deadline (``clock`` tells the
    time): Google keeps only the first answer, within 24 hours.
    """

    decides_refunds = False
    keeps_first_answer = True
    """Google keeps the first answer to a chargeback review: one is sent, never a second."""
    acknowledges_deliveries = True
    """Google refunds a purchase not acknowledged within 3 days: the sweep acknowledges."""

    def __init__(
        self,
        client: PlayClient,
        *,
        revoke: bool = True,
        skus: Mapping[str, str] | None = None,
        user_for: Callable[[Mapping[str, Any]], str | None] | None = None,
        sample_content_provided: bool = False,
        consumption: Callable[[Order], int | None] = _no_consumption,
        review_window: timedelta = REVIEW_WINDOW,
        require_account_id: bool = True,
        clock: Clock | None = None,
        delivered_consumption: int | None = None,
    ) -> None:
        self.client = client
        self._clock: Clock = clock or SystemClock()
        self._require_account = require_account_id
        self.review_window = review_window
        self._revoke = revoke
        self._skus = dict(skus or {})
        self._product_ids = {sku: pid for pid, sku in self._skus.items()}
        self._user_for = user_for
        self._sample = sample_content_provided
        self._consumption = consumption
        self._delivered_consumption = delivered_consumption
        self._done: dict[str, PaymentResult] = {}
        self._lock = threading.Lock()

    @property
    def platform(self) -> Platform:
        return Platform.GOOGLE_PLAY

    def sku_for(self, product_id: str) -> str:
        """The catalogue SKU of a Play product id."""
        return self._skus.get(product_id, product_id)

    def product_id_for(self, sku: str) -> str:
        """The Play product id of a catalogue SKU."""
        return self._product_ids.get(sku, sku)

    def user_for(self, purchase: Mapping[str, Any], order_id: str) -> str:
        """The buyer of a purchase resource, or a stable stand-in from its first order id."""
        if self._user_for is not None:
            user = self._user_for(purchase)
        else:
            ids = purchase.get("externalAccountIdentifiers") or purchase
            user = ids.get("obfuscatedExternalAccountId")
        return str(user) if user else f"{SOURCE}:{first_order_id(order_id)}"

    def check_owner(self, purchase: Mapping[str, Any], order: Order, order_id: str) -> None:
        """Refuse (PurchaseNotOwned) a purchase not bound to the order's buyer."""
        if self._user_for is not None:
            owner = self._user_for(purchase)
            ok = owner is not None and str(owner) == order.user_id
            account = owner
        else:
            ids = purchase.get("externalAccountIdentifiers") or purchase
            account = ids.get("obfuscatedExternalAccountId")
            if account:
                ok = google_account_matches(str(account), order.user_id)
            else:
                ok = not self._require_account
        if not ok:
            why = "no obfuscatedExternalAccountId" if not account else "another account id"
            raise PurchaseNotOwned(
                f"Google Play order {order_id} carries {why}: it is not a purchase of order "
                f"{order.id}'s buyer",
                platform=SOURCE,
                transaction_id=order_id,
                order_id=order.id,
                user_id=order.user_id,
            )

    def acknowledge(self, order: Order, token: str) -> None:
        """Tell Google the purchase ``token`` of ``order`` was delivered: consumed
        (consumables), acknowledged (other products, subscriptions). Google refunds a
        purchase not acknowledged within 3 days (``voidedReason`` 8). Safe to repeat: a
        purchase Google already has as acknowledged or consumed counts as done. Raises
        PlatformUnavailable when Google does not answer (call again later)."""
        product_id = self.product_id_for(order.sku)
        if order.kind is ProductKind.SUBSCRIPTION:
            how = "subscription"
        elif order.kind is ProductKind.CONSUMABLE:
            how = "consume"
        else:
            how = "acknowledge"
        try:
            self.client.acknowledge(product_id, token, how=how)
        except PlayApiError as exc:
            if exc.retryable:
                raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
            if not self._acknowledged(product_id, token, how):
                raise
        # Google may answer before it has it: nothing to do, a repeat is harmless.

    def acknowledge_delivery(self, order: Order) -> PaymentResult:
        """The core's ``Acknowledges`` port: find the purchase token of the order's Google
        order (``orders.get``) and acknowledge or consume it (:meth:`acknowledge`)."""
        kind, amount, txn = PaymentKind.ACKNOWLEDGE, order.amount, order.platform_transaction_id
        if txn is None:
            return PaymentResult(False, kind, amount, error=f"order {order.id} has no Play order")
        try:
            token = self.client.order(txn).get("purchaseToken")
            if not token:
                error = f"Google Play order {txn} names no purchase token"
                return PaymentResult(False, kind, amount, error=error)
            self.acknowledge(order, str(token))
        except PlatformUnavailable as exc:
            return PaymentResult(False, kind, amount, error=str(exc), retryable=True)
        except PlayApiError as exc:
            return PaymentResult(False, kind, amount, error=str(exc), retryable=exc.retryable)
        how = {ProductKind.SUBSCRIPTION: "subscription", ProductKind.CONSUMABLE: "consume"}
        raw = {"order_id": txn, "how": how.get(order.kind, "acknowledge")}
        return PaymentResult(True, kind, amount, platform_transaction_id=txn, raw=raw)

    def _acknowledged(self, product_id: str, token: str, how: str) -> bool:
        try:
            if how == "subscription":
                state = self.client.subscription(token).get("acknowledgementState")
                return bool(state == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED")
            purchase = self.client.product_purchase(product_id, token)
        except (PlayApiError, PlatformUnavailable):
            return False
        if how == "consume":
            return bool(purchase.get("consumptionState") == 1)
        return bool(purchase.get("acknowledgementState") == 1)

    # -- the PaymentPlatform port ---------------------------------------------------------------
    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        """Confirm a purchase the app made with Play Billing: ``token`` is its purchase token.

        A pending purchase (not paid yet) raises PlatformUnavailable: the order stays unpaid
        until Google's notification says it was paid.
        """
        try:
            if order.kind is ProductKind.SUBSCRIPTION:
                purchase = self.client.subscription(token)
                live = purchase.get("subscriptionState") in _LIVE
                live = live and product_of(purchase) == self.product_id_for(order.sku)
                order_id = latest_order(purchase)
            else:
                purchase = self.client.product_purchase(self.product_id_for(order.sku), token)
                if purchase.get("purchaseState") == PENDING:
                    raise PlatformUnavailable(
                        f"purchase of {order.sku} is pending payment", platform=SOURCE
                    )
                live = purchase.get("purchaseState", PURCHASED) == PURCHASED
                order_id = purchase.get("orderId")
        except PlayApiError as exc:
            if exc.retryable:
                raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
            return PaymentResult(False, PaymentKind.CHARGE, order.amount, error=str(exc))
        if not live or not order_id:
            error = f"purchase token is not a paid purchase of {order.sku}"
            return PaymentResult(False, PaymentKind.CHARGE, order.amount, error=error)
        self.check_owner(purchase, order, str(order_id))
        return PaymentResult(
            True, PaymentKind.CHARGE, order.amount, platform_transaction_id=str(order_id)
        )

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        """``orders.refund`` all that remains of the order (its whole amount, or the rest
        after a partial refund); a retry after an unclear outcome never refunds twice (Google
        refunds an order once; the adapter checks ``orders.get`` on failure). A smaller amount
        is refused, not retried: Google's API takes no amount (use Play Console)."""
        with self._lock:
            done = self._done.get(idempotency_key)
        if done is not None:
            return done
        kind, amount, txn = PaymentKind.REFUND, refund.amount, order.platform_transaction_id
        if txn is None:
            return PaymentResult(False, kind, amount, error=f"order {order.id} has no Play order")
        if amount != order.refundable:
            error = (
                f"Google Play refunds whole orders ({order.refundable} remains): refund that "
                "or make a partial refund in Play Console"
            )
            return PaymentResult(False, kind, amount, error=error)
        try:
            self.client.refund(txn, revoke=self._revoke)
        except PlayApiError as exc:
            if not self._already_refunded(txn):
                return PaymentResult(False, kind, amount, error=str(exc), retryable=exc.retryable)
        result = PaymentResult(True, kind, amount, platform_transaction_id=txn)
        with self._lock:
            self._done[idempotency_key] = result
        return result

    def _already_refunded(self, order_id: str) -> bool:
        try:
            return self.client.order(order_id).get("state") == "REFUNDED"
        except (PlayApiError, PlatformUnavailable):
            return False

    def answer_refund_review(
        self, refund: RefundRequest, order: Order, idempotency_key: str
    ) -> PaymentResult:
        """``orders.reviewrefund`` with staff's decision as the refund preference."""
        kind, amount, txn = PaymentKind.REVIEW_ANSWER, refund.amount, order.platform_transaction_id
        token = refund.platform_refund_id
        if token is None or txn is None:
            error = "Google did not ask for this review (no pending refund token)"
            return PaymentResult(False, kind, amount, error=error)
        due = refund.review_due_at
        if due is not None and self._clock.now() > due:
            error = f"Google's 24-hour window closed at {due.isoformat()}: the answer was not sent"
            return PaymentResult(False, kind, amount, error=error)
        consumed = self._consumption(order)
        if consumed is None and order.status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
            consumed = self._delivered_consumption
        if consumed is not None and (
            isinstance(consumed, bool)
            or not isinstance(consumed, int)
            or not 0 <= consumed <= 100_000
        ):
            error = f"not sent to Google: consumption share {consumed!r} is not 0-100000 milliunits"
            return PaymentResult(False, kind, amount, error=error)
        preference = "APPROVE" if refund.status is RefundStatus.APPROVED else "DECLINE"
        body: dict[str, Any] = {
            "pendingRefundToken": token,
            "sampleContentProvided": self._sample,
            "refundPreference": preference,
        }
        if consumed is not None:
            body["consumptionPercentageMilliunits"] = consumed
        # Google asks for no consent to answer a chargeback review: recorded as such
        raw: dict[str, Any] = {
            "sent": body,
            "consent": {"given": None, "source": "not required by Google Play", "at": None},
        }
        try:
            reply = self.client.review_refund(txn, body)
        except PlayApiError as exc:
            raw["reply"] = {"status": exc.status, "error": str(exc)}
            return PaymentResult(
                False, kind, amount, error=str(exc), retryable=exc.retryable, raw=raw
            )
        raw["reply"] = {"status": 200, "body": reply}
        return PaymentResult(True, kind, amount, platform_transaction_id=txn, raw=raw)


def latest_order(sub: Mapping[str, Any]) -> str | None:
    """The latest paid order id of a subscription resource."""
    for item in sub.get("lineItems") or []:
        if item.get("latestSuccessfulOrderId"):
            return str(item["latestSuccessfulOrderId"])
    latest = sub.get("latestOrderId")
    return None if latest is None else str(latest)


def product_of(sub: Mapping[str, Any]) -> str | None:
    """The product id of a subscription resource's first line item."""
    for item in sub.get("lineItems") or []:
        if item.get("productId"):
            return str(item["productId"])
    return None


def renewal_number(order_id: str) -> int:
    """``-1`` for a subscription's first order, ``n`` for ``<first>..n``."""
    _, _, tail = order_id.partition("..")
    return int(tail) if tail.isdigit() else -1


def about(made: Mapping[str, str], note: Mapping[str, Any]) -> str:
    """Of a subscription's orders (id -> Google's ``createTime``, oldest first), the one made
    last at or before the push's event time; the newest if none says when it was made."""
    event = datetime.fromtimestamp(int(note.get("eventTimeMillis") or 0) / 1000, UTC)
    best, best_at = list(made)[-1], None
    for order_id, created in made.items():
        try:
            at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            continue
        if at <= event + timedelta(minutes=5) and (best_at is None or at > best_at):
            best, best_at = order_id, at
    return best
