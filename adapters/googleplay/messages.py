"""Google Play payloads and lookups the push handler reads: the Pub/Sub message's data, the
kind of developer notification in it, and Google's view of a few orders."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from iap_flow import PlatformUnavailable
from iap_flow.adapters.googleplay.client import SOURCE, PlayApiError, PlayClient
from iap_flow.adapters.webhooks import rejected

SUBSCRIPTION_TYPES = {
    1: "RECOVERED", 2: "RENEWED", 3: "CANCELED", 4: "PURCHASED", 5: "ON_HOLD",
    6: "IN_GRACE_PERIOD", 7: "RESTARTED", 8: "PRICE_CHANGE_CONFIRMED", 9: "DEFERRED",
    10: "PAUSED", 11: "PAUSE_SCHEDULE_CHANGED", 12: "REVOKED", 13: "EXPIRED",
    17: "ITEMS_CHANGED", 18: "CANCELLATION_SCHEDULED", 19: "PRICE_CHANGE_UPDATED",
    20: "PENDING_PURCHASE_CANCELED",
}  # fmt: skip
CHARGED = frozenset({1, 2, 4})  # a new order was paid
REVOKED = 12
ONE_TIME_PURCHASED, FULL_REFUND = 1, 1
_BODIES = (
    "oneTimeProductNotification",
    "subscriptionNotification",
    "voidedPurchaseNotification",
    "pendingRefundReviewNotification",
    "testNotification",
)


def google_orders(client: PlayClient, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The orders Google knows among ``ids``: one ``orders.batchget``, or (as one unknown id
    fails a whole batch) ``orders.get`` each."""
    try:
        return client.orders(ids)
    except PlayApiError as exc:
        if exc.retryable:
            raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
    found: dict[str, dict[str, Any]] = {}
    for order_id in ids:
        try:
            found[order_id] = client.order(order_id)
        except PlayApiError as exc:
            if exc.retryable:
                raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
    return found


def looked_up(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A purchase Google confirms; one Google does not know is refused, not retried."""
    try:
        return call()
    except PlayApiError as exc:
        if exc.retryable:
            raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
        raise rejected(
            SOURCE, "unverified", f"Google does not confirm the purchase: {exc}"
        ) from exc


def decode(data: object) -> dict[str, Any]:
    if not isinstance(data, str):
        raise rejected(SOURCE, "malformed", "message has no data")
    try:
        note = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise rejected(SOURCE, "malformed", "message data is not base64 JSON") from exc
    if not isinstance(note, dict):
        raise rejected(SOURCE, "malformed", "message data is not a JSON object")
    return note


def kind_of(note: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The notification's type name and body. A body of a kind this version does not know is
    ``UNKNOWN:<field>`` (acknowledged and ignored); two known bodies are malformed."""
    bodies = {name: note[name] for name in _BODIES if isinstance(note.get(name), Mapping)}
    if len(bodies) > 1:
        raise rejected(SOURCE, "malformed", "a notification carries exactly one body")
    if not bodies:
        other = sorted(k for k in note if k.endswith("Notification"))
        return f"UNKNOWN:{','.join(other) or 'no body'}", {}
    ((name, body),) = bodies.items()
    if name == "oneTimeProductNotification":
        purchased = body.get("notificationType") == ONE_TIME_PURCHASED
        if purchased and not (body.get("purchaseToken") and body.get("sku")):
            raise rejected(SOURCE, "malformed", "one-time notification without token or sku")
        return ("ONE_TIME_PRODUCT_PURCHASED" if purchased else "ONE_TIME_PRODUCT_CANCELED"), body
    if name == "subscriptionNotification":
        number = body.get("notificationType")
        needs_token = number in CHARGED or number == REVOKED
        if needs_token and not body.get("purchaseToken"):
            raise rejected(SOURCE, "malformed", "subscription notification without token")
        return "SUBSCRIPTION_" + SUBSCRIPTION_TYPES.get(number, str(number)), body
    names = {
        "voidedPurchaseNotification": "VOIDED_PURCHASE",
        "pendingRefundReviewNotification": "PENDING_REFUND_REVIEW",
        "testNotification": "TEST",
    }
    return names[name], body
