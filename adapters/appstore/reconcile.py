"""App Store reconciliation: Get Notification History (everything since the last run, and
what Apple failed to deliver in the last 30 days), replayed through the notification ingest
(each notification is applied once, by its ``notificationUUID``); and Get Refund History for
the buyers whose refund Apple is still deciding, from each buyer's stored revision."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from appstoreserverlibrary.api_client import APIException
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest

from iap_flow import SYSTEM, Flow, IapFlowError, OrderStatus, RefundStatus
from iap_flow.adapters.appstore.ingest import AppStoreNotifications
from iap_flow.adapters.appstore.platform import SOURCE, AppStorePlatform

if TYPE_CHECKING:
    from iap_flow.adapters.reconcile import SourceReport

log = logging.getLogger("iap_flow.adapters.appstore")
FIRST_RUN = timedelta(days=30)
"""How far back the first run asks (Apple keeps 180 days)."""
FAILURES = timedelta(days=30)
"""How far back every run asks again for notifications Apple could not deliver."""
OVERLAP = timedelta(minutes=5)
"""Each run starts this long before the last one ended: nothing falls between two runs."""
_PENDING = (RefundStatus.IN_REVIEW, RefundStatus.APPROVED)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def run(
    flow: Flow, platform: AppStorePlatform, last: dict[str, Any] | None, report: SourceReport
) -> None:
    """Reconcile the App Store into ``report`` (its ``cursor`` is where the next run starts)."""
    api = platform.api
    if api is None:
        report.failed += 1
        report.problems.append("no App Store API client: nothing to ask Apple")
        return
    now = flow.clock.now()
    since = now - FIRST_RUN
    if last and last.get("until"):
        since = datetime.fromisoformat(str(last["until"])) - OVERLAP
    notes = AppStoreNotifications(flow, platform)
    seen: set[str] = set()
    for start, failures in ((since, False), (now - FAILURES, True)):
        request = NotificationHistoryRequest(
            startDate=_ms(start), endDate=_ms(now) + 1, onlyFailures=failures or None
        )
        page: str | None = None
        while True:
            try:
                answer = api.get_notification_history(page, request)
            except (APIException, requests.RequestException) as exc:
                report.failed += 1
                report.problems.append(f"Get Notification History: {exc}")
                break
            for item in answer.notificationHistory or []:
                if item.signedPayload and item.signedPayload not in seen:
                    seen.add(item.signedPayload)
                    _replay(notes, item.signedPayload, report)
            page = answer.paginationToken
            if not answer.hasMore or not page:
                break
    cursor = dict((last or {}).get("cursor") or {})
    cursor["refund_revisions"] = _refunds(flow, platform, cursor.get("refund_revisions"), report)
    report.cursor = cursor


def _replay(notes: AppStoreNotifications, signed: str, report: SourceReport) -> None:
    try:
        result = notes.ingest(signed)
    except (IapFlowError, ValueError) as exc:  # refused, or a command refused it: next run
        log.warning("reconcile: an App Store notification could not be applied: %s", exc)
        report.count("failed", f"notification: {exc}")
        return
    if result.duplicate:
        report.count("already_known")
    else:
        report.count("ignored" if result.outcome == "ignored" else "applied")


def _refunds(
    flow: Flow, platform: AppStorePlatform, revisions: Any, report: SourceReport
) -> dict[str, str]:
    """Get Refund History for each buyer with a refund Apple is still deciding."""
    stored: dict[str, str] = dict(revisions or {})
    api = platform.api
    assert api is not None
    pending = flow.refunds.queue(SYSTEM, status=_PENDING, limit=1000)
    buyers: dict[str, str] = {}
    for refund in pending:
        if refund.platform is platform.platform and refund.user_id not in buyers:
            order = flow.orders.get(SYSTEM, refund.order_id)
            if order.platform_transaction_id:
                buyers[refund.user_id] = order.platform_transaction_id
    for user, transaction_id in buyers.items():
        revision = stored.get(user)
        while True:
            try:
                answer = api.get_refund_history(transaction_id, revision)
            except (APIException, requests.RequestException) as exc:
                report.failed += 1
                report.problems.append(f"Get Refund History of {user}: {exc}")
                break
            for signed in answer.signedTransactions or []:
                _refunded(flow, platform, signed, report)
            revision = answer.revision or revision
            if not answer.hasMore:
                break
        if revision:
            stored[user] = revision
    return stored


def _refunded(flow: Flow, platform: AppStorePlatform, signed: str, report: SourceReport) -> None:
    try:
        txn = platform.verify_transaction(signed)
        assert txn.transactionId is not None  # verified
        order = flow.platform_events.order_for_transaction(
            SYSTEM, platform.platform, txn.transactionId
        )
        if order is None or txn.revocationDate is None:
            report.count("ignored")
        elif order.status is OrderStatus.REFUNDED:
            report.count("already_known")
        else:
            why = f"refunded by Apple ({txn.rawRevocationReason or 'no reason given'}; refund history)"
            key = f"{SOURCE}:refund_history:{txn.transactionId}"
            flow.platform_events.refunded(SYSTEM, order.id, reason=why, idempotency_key=key)
            report.count("applied")
    except IapFlowError as exc:
        report.count("failed", f"refunded transaction: {exc}")
