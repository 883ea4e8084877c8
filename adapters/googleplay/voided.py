"""Voided purchases (``purchases.voidedpurchases.list``): refunds, chargebacks and
revocations made outside the flow, found and recorded once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from iap_flow import SYSTEM, Actor, Flow, OrderStatus
from iap_flow.adapters.googleplay.client import SOURCE
from iap_flow.adapters.googleplay.platform import GooglePlayPlatform

log = logging.getLogger("iap_flow.adapters.googleplay")

VOIDED_REASONS = (
    "other", "remorse", "not_received", "defective", "accidental_purchase", "fraud",
    "friendly_fraud", "chargeback", "unacknowledged_purchase",
)  # fmt: skip
"""``voidedReason`` 0-8 by name, as Google documents them."""
VOIDED_WINDOW = timedelta(days=30)
"""How far back ``voidedpurchases.list`` answers."""


@attrs.frozen
class Reconciled:
    """What one ``voidedpurchases.list`` reconciliation found."""

    seen: int = 0
    refunded: int = 0
    already: int = 0
    unknown: int = 0
    partial: int = 0


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
    client, counts = platform.client, dict.fromkeys(attrs.fields_dict(Reconciled), 0)
    page: str | None = None
    while True:
        answer = client.voided_purchases(start_ms=int(since.timestamp() * 1000), page_token=page)
        for voided in answer.get("voidedPurchases") or []:
            counts["seen"] += 1
            counts[_reconcile(flow, platform, actor, voided)] += 1
        page = (answer.get("tokenPagination") or {}).get("nextPageToken")
        if not page:
            return Reconciled(**counts)


def _reconcile(
    flow: Flow, platform: GooglePlayPlatform, actor: Actor, voided: Mapping[str, Any]
) -> str:
    if voided.get("voidedQuantity"):
        return "partial"  # a quantity-based partial refund: the order stands
    order_id = voided.get("orderId")
    if not isinstance(order_id, str) or not order_id:
        return "unknown"
    found = flow.platform_events.order_for_transaction(actor, platform.platform, order_id)
    if found is None:
        return "unknown"
    if found.status is OrderStatus.REFUNDED:
        return "already"
    flow.platform_events.refunded(
        actor,
        found.id,
        reason=f"voided in Google Play ({voided_reason(voided.get('voidedReason'))})",
        idempotency_key=f"{SOURCE}:voided:{found.platform_transaction_id}",
    )
    return "refunded"


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
