"""Voided purchases (``purchases.voidedpurchases.list``): refunds, chargebacks and
revocations made outside the flow, found and recorded once."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from iap_flow import SYSTEM, Actor, Flow, Order, OrderStatus, PlatformUnavailable, ProductKind
from iap_flow.adapters.googleplay.client import SOURCE, PlayApiError
from iap_flow.adapters.googleplay.platform import GooglePlayPlatform
from iap_flow.domain.money import share

log = logging.getLogger("iap_flow.adapters.googleplay")

VOIDED_REASONS = (
    "other", "remorse", "not_received", "defective", "accidental_purchase", "fraud",
    "friendly_fraud", "chargeback", "unacknowledged_purchase",
)  # fmt: skip
"""``voidedReason`` 0-8 by name, as Google documents them."""
VOIDED_WINDOW = timedelta(days=30)
"""How far back ``voidedpurchases.list`` answers."""
PARTIAL_LOOKBACK_MS = 10 * 60 * 1000
"""How far before a partial void's push its entry in ``voidedpurchases.list`` is looked for."""


@attrs.frozen
class Reconciled:
    """What one ``voidedpurchases.list`` reconciliation found."""

    seen: int = 0
    refunded: int = 0
    already: int = 0
    unknown: int = 0
    partial: int = 0
    """Quantity-based partial refunds recorded (a partial one that refunded the rest counts
    as refunded)."""


def reconcile_voided(
    flow: Flow, platform: GooglePlayPlatform, since: datetime, *, actor: Actor = SYSTEM
) -> Reconciled:
    """Record refunds made outside the flow (Play Console, chargebacks) since ``since``,
    asking at most 30 days back (all the API answers; an older ``since`` is moved up and
    logged).

    Pages through ``voidedpurchases.list``; safe to run as often as you like: orders
    already refunded are left alone. Run it daily.
    """
    oldest = flow.clock.now() - VOIDED_WINDOW + timedelta(minutes=1)
    if since < oldest:
        log.info("voided purchases are kept 30 days: asking since %s", oldest.isoformat())
        since = oldest
    counts = dict.fromkeys(attrs.fields_dict(Reconciled), 0)
    for voided in _listed(platform, int(since.timestamp() * 1000)):
        counts["seen"] += 1
        counts[_reconcile(flow, platform, actor, voided)] += 1
    return Reconciled(**counts)


def _listed(platform: GooglePlayPlatform, start_ms: int) -> Iterator[Mapping[str, Any]]:
    """Every purchase voided since ``start_ms``, partial ones included, page after page."""
    page: str | None = None
    while True:
        answer = platform.client.voided_purchases(start_ms=max(start_ms, 0), page_token=page)
        yield from answer.get("voidedPurchases") or []
        page = (answer.get("tokenPagination") or {}).get("nextPageToken")
        if not page:
            return


def partial_void(
    flow: Flow, platform: GooglePlayPlatform, actor: Actor, order: Order, event_ms: int
) -> str:
    """A push's quantity-based partial refund of ``order`` (which ``orders.get`` said is
    refunded in part): its voided quantity is read from ``voidedpurchases.list`` (the push
    does not carry it) and recorded as the reconciliation records it, so the two never count
    one refund twice. "partially_refunded", "refunded", or "unconfirmed" (not listed yet:
    the reconciliation records it when it is)."""
    txn = order.platform_transaction_id
    try:
        listed = [
            v
            for v in _listed(platform, event_ms - PARTIAL_LOOKBACK_MS)
            if v.get("orderId") == txn and v.get("voidedQuantity")
        ]
    except PlayApiError as exc:
        raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
    if not listed:
        log.warning("partial void of %s not listed by Google yet", txn)
        return "unconfirmed"
    for voided in listed:
        record_partial(flow, platform, actor, order, voided)
    after = flow.orders.get(actor, order.id)
    return "refunded" if after.status is OrderStatus.REFUNDED else "partially_refunded"


def _reconcile(
    flow: Flow, platform: GooglePlayPlatform, actor: Actor, voided: Mapping[str, Any]
) -> str:
    order_id = voided.get("orderId")
    if not isinstance(order_id, str) or not order_id:
        return "unknown"
    found = flow.platform_events.order_for_transaction(actor, platform.platform, order_id)
    if found is None:
        return "unknown"
    if found.status is OrderStatus.REFUNDED:
        return "already"
    if voided.get("voidedQuantity"):
        return record_partial(flow, platform, actor, found, voided)
    flow.platform_events.refunded(
        actor,
        found.id,
        reason=f"voided in Google Play ({voided_reason(voided.get('voidedReason'))})",
        idempotency_key=f"{SOURCE}:voided:{found.platform_transaction_id}",
    )
    return "refunded"


def record_partial(
    flow: Flow, platform: GooglePlayPlatform, actor: Actor, order: Order, voided: Mapping[str, Any]
) -> str:
    """Record one quantity-based partial refund (a voided purchase with ``voidedQuantity``):
    that share of what the order paid (:func:`~iap_flow.domain.money.share`, rounded half up;
    all of the purchase's quantity is the rest). Recorded once however often it is seen (the
    push and the reconciliation name it alike): "partial", "refunded" (it was the rest) or
    "already"."""
    quantity = purchase_quantity(platform, order, str(voided.get("purchaseToken") or ""))
    count = _int(voided.get("voidedQuantity"))
    if quantity is None or count is None or count < 1:
        log.warning("partial refund of %s: quantities unknown, not recorded", order.id)
        return "unknown"
    case = f"{order.platform_transaction_id}:voided:{voided.get('voidedTimeMillis')}:{count}"
    part = None if count >= quantity else share(order.amount, count, quantity)
    if part is not None and part.amount == 0:
        log.warning("partial refund of %s rounds to nothing", order.id)
        return "unknown"
    before = order.refunded_amount
    refund = flow.platform_events.refunded(
        actor,
        order.id,
        reason=f"{count} of {quantity} voided in Google Play "
        f"({voided_reason(voided.get('voidedReason'))})",
        platform_refund_id=case,
        amount=part,
        idempotency_key=f"{SOURCE}:voided:{case}",
    )
    after = flow.orders.get(actor, order.id)
    if after.refunded_amount == before and refund.platform_refund_id == case:
        return "already"
    return "refunded" if after.status is OrderStatus.REFUNDED else "partial"


def purchase_quantity(platform: GooglePlayPlatform, order: Order, token: str) -> int | None:
    """How many the purchase bought (``quantity`` of purchases.products.get, 1 when Google
    leaves it out; 1 for a subscription); None if Google does not know the purchase."""
    if order.kind is ProductKind.SUBSCRIPTION:
        return 1
    try:
        found = platform.client.product_purchase(platform.product_id_for(order.sku), token)
    except PlayApiError as exc:
        if exc.retryable:
            raise PlatformUnavailable(str(exc), platform=SOURCE) from exc
        return None
    return max(_int(found.get("quantity")) or 1, 1)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def voided_reason(value: object) -> str:
    """Google's ``voidedReason`` by name.

    >>> voided_reason(8), voided_reason("7"), voided_reason(42)
    ('unacknowledged_purchase', 'chargeback', 'reason 42')
    """
    try:
        number = int(str(value or 0))
    except ValueError:
        return f"reason {value!r}"
    return VOIDED_REASONS[number] if 0 <= number < len(VOIDED_REASONS) else f"reason {number}"
