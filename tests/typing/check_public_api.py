"""Type-checked (never run) use of the public API: keeps the annotations honest."""

from __future__ import annotations

from datetime import UTC, datetime

import iap_flow
from iap_flow import SYSTEM, Actor, ManualClock, Money, Order, Page, RefundRequest, open_flow


def typed_use() -> None:
    flow: iap_flow.Flow = open_flow(
        "sqlite://", clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    )
    pm = Actor("pm", iap_flow.Role.PRODUCT_MANAGER)
    flow.catalogue.add(
        pm, sku="g", title="G", description="d", price=Money(1, "USD"), kind="consumable"
    )
    buyer = Actor.buyer("u1")
    order: Order = flow.orders.place(buyer, "g")
    order = flow.orders.pay(buyer, order.id, token="tok_approve")
    page: Page[Order] = flow.orders.query(buyer, status="paid")
    first: Order = page.items[0]
    refund: RefundRequest = flow.refunds.request(buyer, first.id, reason="changed my mind")
    decided: RefundRequest = flow.refunds.approve(Actor.agent("a"), refund.id)
    status: iap_flow.RefundStatus = decided.status
    result: iap_flow.SweepResult = flow.sweep(SYSTEM)
    report: iap_flow.Report = flow.report(Actor("d", "developer"))
    print(status, result, report.refund_rate)
