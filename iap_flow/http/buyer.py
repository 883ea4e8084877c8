"""The mobile app's routes: catalogue, orders, payments, refunds and feedback of one buyer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, Parameter

from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import OrderStatus, RefundStatus, Ticket, TicketStatus
from iap_flow.domain.money import Money
from iap_flow.domain.roles import Actor
from iap_flow.flow import Flow
from iap_flow.http.context import IdempotencyKey, Req, Routes, Service
from iap_flow.http.schemas import (
    NOT_SPACE,
    Message,
    OrderDetail,
    OrderOut,
    OrderPage,
    PayOrder,
    PlaceOrder,
    ProductOut,
    RefundOut,
    RequestRefund,
    Resolve,
    SubmitFeedback,
    TicketOut,
    TrailEntry,
)

OrderId = Annotated[
    str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE, description="An order id")
]
RefundId = Annotated[
    str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE, description="A refund id")
]
TicketId = Annotated[
    str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE, description="A ticket id")
]


def when(value: str | None, field: str) -> datetime | None:
    """An RFC 3339 date-time with its offset; a bare number is not a time."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} must be an ISO 8601 date-time, got {value!r}", field=field
        ) from None
    if when.tzinfo is None:
        raise InvalidInput(f"{field} needs a UTC offset (2026-12-01T00:00:00Z)", field=field)
    return when


def buyer_routes(svc: Service, *, threads: bool) -> list[HTTPRouteHandler]:
    """The buyer's routes on ``svc``; ``threads`` runs the blocking SDK calls in a pool."""
    r = Routes(svc, threads, staff=False, tag="orders")
    flow = svc.flow

    @r.get("/v1/products", tags=["catalogue"])
    def products(request: Req) -> list[ProductOut]:
        """The products on sale."""
        return r.run(request, lambda a, k: [ProductOut.of(p) for p in flow.catalogue.products()])

    @r.post(
        "/v1/orders",
        "not_found",
        "product_unavailable",
        "invalid_input",
        "idempotency_key_reused",
        status=201,
    )
    def place(
        request: Req, data: JSONBody[PlaceOrder], idempotency_key: IdempotencyKey
    ) -> OrderOut:
        """Place an order for a product; it waits for payment."""
        return r.run(
            request,
            lambda a, k: OrderOut.of(
                flow.orders.place(a, data.sku, platform=data.platform, idempotency_key=k)
            ),
            key=idempotency_key,
        )

    @r.post(
        "/v1/orders/{order_id:str}/pay",
        "not_found",
        "transition_not_allowed",
        "invalid_input",
        "idempotency_key_reused",
        "concurrent_modification",
        "platform_unavailable",
    )
    def pay(
        request: Req, order_id: OrderId, data: JSONBody[PayOrder], idempotency_key: IdempotencyKey
    ) -> OrderOut:
        """Pay an order with a payment platform token; paid, or payment_failed if declined."""
        return r.run(
            request,
            lambda a, k: OrderOut.of(
                flow.orders.pay(a, order_id, token=data.token, idempotency_key=k)
            ),
            key=idempotency_key,
            owns=("order", order_id),
        )

    @r.get("/v1/orders", "invalid_input")
    def my_orders(
        request: Req,
        status: Annotated[list[OrderStatus] | None, Parameter(max_items=9)] = None,
        since: Annotated[
            str | None, Parameter(max_length=64, schema_extra={"format": "date-time"})
        ] = None,
        until: Annotated[
            str | None, Parameter(max_length=64, schema_extra={"format": "date-time"})
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 20,
        cursor: Annotated[
            str | None, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE)
        ] = None,
    ) -> OrderPage:
        """My orders, newest first, by status and creation time ``[since, until)``."""

        def query(actor: Actor, key: str | None) -> OrderPage:
            page = flow.orders.query(
                actor,
                status=status,
                since=when(since, "since"),
                until=when(until, "until"),
                limit=limit,
                cursor=cursor,
            )
            return OrderPage([OrderOut.of(o) for o in page.items], page.next_cursor)

        return r.run(request, query)

    @r.get("/v1/orders/{order_id:str}", "not_found")
    def one_order(request: Req, order_id: OrderId) -> OrderDetail:
        """One of my orders with its refunds, feedback tickets and trail of changes."""
        return r.run(request, lambda a, k: _detail(flow, a, order_id), owns=("order", order_id))

    @r.post(
        "/v1/orders/{order_id:str}/refunds",
        "not_found",
        "refund_not_allowed",
        "invalid_input",
        "idempotency_key_reused",
        "conflict",
        tags=["refunds"],
        status=201,
    )
    def request_refund(
        request: Req,
        order_id: OrderId,
        data: JSONBody[RequestRefund],
        idempotency_key: IdempotencyKey,
    ) -> RefundOut:
        """Ask for money back on a paid order; staff review it before its deadline."""

        def ask(actor: Actor, key: str | None) -> RefundOut:
            order = flow.orders.get(actor, order_id)  # whose it is comes first
            amount = None if data.amount is None else Money(data.amount, order.amount.currency)
            refund = flow.refunds.request(
                actor, order_id, reason=data.reason, amount=amount, idempotency_key=key
            )
            return RefundOut.of(refund)

        return r.run(request, ask, key=idempotency_key, owns=("order", order_id))

    @r.post(
        "/v1/refunds/{refund_id:str}/withdraw",
        "not_found",
        "transition_not_allowed",
        "idempotency_key_reused",
        "concurrent_modification",
        tags=["refunds"],
    )
    def withdraw(request: Req, refund_id: RefundId, idempotency_key: IdempotencyKey) -> RefundOut:
        """I no longer want this refund."""
        return r.run(
            request,
            lambda a, k: RefundOut.of(flow.refunds.withdraw(a, refund_id, idempotency_key=k)),
            key=idempotency_key,
            owns=("refund", refund_id),
            first=lambda a: flow.refunds.get(a, refund_id),
        )

    @r.post(
        "/v1/feedback",
        "not_found",
        "invalid_input",
        "idempotency_key_reused",
        tags=["feedback"],
        status=201,
    )
    def submit(
        request: Req, data: JSONBody[SubmitFeedback], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """Rate (1-5) and comment, about an order or in general."""
        return r.run(
            request,
            lambda a, k: TicketOut.of(
                flow.feedback.submit(
                    a,
                    rating=data.rating,
                    body=data.body,
                    order_id=data.order_id,
                    reason=data.reason,
                    idempotency_key=k,
                )
            ),
            key=idempotency_key,
            owns=("order", data.order_id or ""),
            first=lambda a: data.order_id is None or flow.orders.get(a, data.order_id),
        )

    @r.get("/v1/feedback/{ticket_id:str}", "not_found", tags=["feedback"])
    def ticket(request: Req, ticket_id: TicketId) -> TicketOut:
        """One of my feedback tickets with its conversation."""
        return r.run(
            request,
            lambda a, k: TicketOut.of(flow.feedback.get(a, ticket_id)),
            owns=("ticket", ticket_id),
        )

    def my_ticket(
        request: Req, ticket_id: str, key: str | None, call: Callable[[Actor, str | None], Ticket]
    ) -> TicketOut:
        """One step on the caller's ticket (whose it is comes before what state it is in)."""
        return r.run(
            request,
            lambda a, k: TicketOut.of(call(a, k)),
            key=key,
            owns=("ticket", ticket_id),
            first=lambda a: flow.feedback.get(a, ticket_id),
        )

    step = (
        "not_found",
        "transition_not_allowed",
        "invalid_input",
        "idempotency_key_reused",
        "concurrent_modification",
    )

    @r.post("/v1/feedback/{ticket_id:str}/reopen", *step, tags=["feedback"])
    def reopen(
        request: Req, ticket_id: TicketId, data: JSONBody[Message], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """The answer did not solve it: staff must answer again."""
        return my_ticket(
            request,
            ticket_id,
            idempotency_key,
            lambda a, k: flow.feedback.reopen(a, ticket_id, body=data.body, idempotency_key=k),
        )

    @r.post("/v1/feedback/{ticket_id:str}/resolve", *step, tags=["feedback"])
    def resolve(
        request: Req, ticket_id: TicketId, data: JSONBody[Resolve], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """The answer solved it: close the ticket."""
        return my_ticket(
            request,
            ticket_id,
            idempotency_key,
            lambda a, k: flow.feedback.resolve(a, ticket_id, note=data.note, idempotency_key=k),
        )

    return [
        products,
        place,
        pay,
        my_orders,
        one_order,
        request_refund,
        withdraw,
        submit,
        ticket,
        reopen,
        resolve,
    ]


def _detail(flow: Flow, actor: Actor, order_id: str) -> OrderDetail:
    order = flow.orders.get(actor, order_id)
    refunds = [
        r
        for r in flow.refunds.queue(actor, status=list(RefundStatus), limit=1000)
        if r.order_id == order.id
    ]
    tickets = [
        t
        for t in flow.feedback.queue(actor, status=list(TicketStatus), limit=1000)
        if t.order_id == order.id
    ]
    trail = [
        TrailEntry.of(e)
        for subject in (order.id, *(r.id for r in refunds), *(t.id for t in tickets))
        for e in flow.history(actor, subject)
    ]
    trail.sort(key=lambda e: e.at)
    return OrderDetail(
        OrderOut.of(order),
        [RefundOut.of(r) for r in refunds],
        [TicketOut.of(t) for t in tickets],
        trail,
    )
