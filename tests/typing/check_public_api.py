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


def typed_service_levels() -> None:
    from datetime import date, time, timedelta

    calendar = iap_flow.BusinessCalendar(
        tz="Asia/Shanghai", opens=time(9), closes=time(18), holidays=frozenset({date(2026, 10, 1)})
    )
    policy = iap_flow.Policy(
        ticket_calendar=calendar,
        ticket_targets={iap_flow.TicketPriority.URGENT: (timedelta(hours=1), timedelta(hours=8))},
    )
    flow: iap_flow.Flow = open_flow("sqlite://", policy=policy)
    buyer = Actor.buyer("u1")
    ticket: iap_flow.Ticket = flow.feedback.submit(
        buyer, rating=1, body="late", priority=iap_flow.TicketPriority.HIGH
    )
    ticket = flow.feedback.explain(buyer, ticket.id, reason=iap_flow.RatingReason.SLOW_DELIVERY)
    ticket = flow.feedback.ask_buyer(Actor.agent("a"), ticket.id, body="which account?")
    ticket = flow.feedback.buyer_reply(buyer, ticket.id, body="u1")
    due: datetime = calendar.add(ticket.created_at, timedelta(hours=4))
    print(due, ticket.first_response_due, ticket.level)
