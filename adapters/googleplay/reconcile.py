"""Google Play reconciliation: voided purchases (``purchases.voidedpurchases.list``, at most 30
days back, paged) since the last run, and the states Google has (``orders.batchget``) for the
orders whose refund the flow is still waiting on (submitted, failed, approved, or a
chargeback review): an order Google has as refunded is recorded as such."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from iap_flow import SYSTEM, Flow, IapFlowError, OrderStatus, PlatformUnavailable, RefundStatus
from iap_flow.adapters.googleplay.client import SOURCE, PlayApiError
from iap_flow.adapters.googleplay.platform import GooglePlayPlatform
from iap_flow.adapters.googleplay.voided import VOIDED_WINDOW, reconcile_voided

if TYPE_CHECKING:
    from iap_flow.adapters.reconcile import SourceReport

log = logging.getLogger("iap_flow.adapters.googleplay")
OVERLAP = timedelta(minutes=5)
_WAITING = (
    RefundStatus.APPROVED,
    RefundStatus.SUBMITTED,
    RefundStatus.FAILED,
    RefundStatus.IN_REVIEW,
)


def run(
    flow: Flow, platform: GooglePlayPlatform, last: dict[str, Any] | None, report: SourceReport
) -> None:
    """Reconcile Google Play into ``report``."""
    now = flow.clock.now()
    since = now - VOIDED_WINDOW
    if last and last.get("until"):
        since = max(since, datetime.fromisoformat(str(last["until"])) - OVERLAP)
    try:
        voided = reconcile_voided(flow, platform, since, actor=SYSTEM)
    except (PlayApiError, PlatformUnavailable) as exc:
        report.failed += 1
        report.problems.append(f"voidedpurchases.list: {exc}")
    else:
        report.seen += voided.seen
        report.applied += voided.refunded
        report.already_known += voided.already
        report.ignored += voided.seen - voided.refunded - voided.already
    _order_states(flow, platform, report)


def _order_states(flow: Flow, platform: GooglePlayPlatform, report: SourceReport) -> None:
    waiting: dict[str, str] = {}  # Google order id -> flow order id
    for refund in flow.refunds.queue(SYSTEM, status=_WAITING, limit=1000):
        if refund.platform is not platform.platform:
            continue
        if refund.status is RefundStatus.IN_REVIEW and refund.platform_refund_id is None:
            continue  # a buyer's request staff have not decided: nothing at Google yet
        order = flow.orders.get(SYSTEM, refund.order_id)
        if order.platform_transaction_id:
            waiting[order.platform_transaction_id] = order.id
    if not waiting:
        return
    try:
        states = platform.client.orders(list(waiting))
    except PlayApiError as exc:  # one id Google does not know fails the batch: one by one
        if exc.status != 404:
            report.failed += 1
            report.problems.append(f"orders.batchget: {exc}")
            return
        states = {}
        for order_id in waiting:
            try:
                states[order_id] = platform.client.order(order_id)
            except (PlayApiError, PlatformUnavailable) as one:
                report.count("ignored", f"orders.get {order_id}: {one}")
    except PlatformUnavailable as exc:
        report.failed += 1
        report.problems.append(f"orders.batchget: {exc}")
        return
    for google_id, state in states.items():
        _apply(flow, google_id, waiting[google_id], state, report)


def _apply(
    flow: Flow, google_id: str, order_id: str, state: dict[str, Any], report: SourceReport
) -> None:
    if state.get("state") != "REFUNDED":
        report.count("ignored")  # not refunded (yet): nothing was missed
        return
    if flow.orders.get(SYSTEM, order_id).status is OrderStatus.REFUNDED:
        report.count("already_known")
        return
    try:
        flow.platform_events.refunded(
            SYSTEM,
            order_id,
            reason="refunded in Google Play (the order's state)",
            idempotency_key=f"{SOURCE}:order_state:{google_id}",
        )
    except IapFlowError as exc:
        report.count("failed", f"order {google_id}: {exc}")
        return
    report.count("applied")
