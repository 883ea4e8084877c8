"""The mobile app's routes: catalogue, orders, payments, refunds and feedback of one buyer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, Parameter

from iap_flow.domain.errors import InvalidInput, NotFound
from iap_flow.domain.models import OrderStatus, RefundRequest, RefundStatus, Ticket, TicketStatus
from iap_flow.domain.money import Money
from iap_flow.http.context import BUYER_SECURITY, IdempotencyKey, Service, errors, op, owned, scoped
from iap_flow.http.schemas import (
    NOT_SPACE,
    AttachPurchase,
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

Req = Request[Any, Any, Any]
OrderId = Annotated[
    str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE, description="An order id")
]
RefundId = Annotated[
    str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE, description="A refund id")
]
TicketId = Annotated[
    str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE, description="A ticket id")
]


def _when(value: str | None, field: str) -> datetime | None:
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


def buyer_routes(svc: Service, *, threads: bool, app_store: Any = None) -> list[HTTPRouteHandler]:
    """The buyer's routes on ``svc``; ``threads`` runs the blocking SDK calls in a pool."""
    flow = svc.flow
    common: dict[str, Any] = {"sync_to_thread": threads, "security": BUYER_SECURITY}

    @op(get, "/v1/products", tags=["catalogue"], responses=errors(), **common)
    def products(request: Req) -> list[ProductOut]:
        """The products on sale."""
        svc.buyer(request)
        return [ProductOut.of(p) for p in flow.catalogue.products()]

    @op(
        post,
        "/v1/orders",
        tags=["orders"],
        responses=errors(
            "not_found", "product_unavailable", "invalid_input", "idempotency_key_reused"
        ),
        **common,
    )
    def place(
        request: Req, data: JSONBody[PlaceOrder], idempotency_key: IdempotencyKey
    ) -> OrderOut:
        """Place an order for a product; it waits for payment."""
        actor = svc.buyer(request)
        order = flow.orders.place(
            actor, data.sku, platform=data.platform, idempotency_key=scoped(actor, idempotency_key)
        )
        return OrderOut.of(order)

    @op(
        post,
        "/v1/orders/{order_id:str}/pay",
        tags=["orders"],
        status_code=200,
        responses=errors(
            "not_found",
            "transition_not_allowed",
            "invalid_input",
            "idempotency_key_reused",
            "concurrent_modification",
            "platform_unavailable",
        ),
        **common,
    )
    def pay(
        request: Req, order_id: OrderId, data: JSONBody[PayOrder], idempotency_key: IdempotencyKey
    ) -> OrderOut:
        """Pay an order with a payment platform token; paid, or payment_failed if declined."""
        actor = svc.buyer(request)
        order = owned(
            actor,
            "order",
            order_id,
            lambda: flow.orders.pay(
                actor, order_id, token=data.token, idempotency_key=scoped(actor, idempotency_key)
            ),
        )
        return OrderOut.of(order)

    @op(
        post,
        "/v1/purchases/app-store",
        tags=["orders"],
        status_code=200,
        responses=errors("not_found", "invalid_input", "notification_rejected"),
        **common,
    )
    def attach_app_store(request: Req, data: JSONBody[AttachPurchase]) -> OrderOut:
        """Record an App Store purchase the app made (StoreKit's signed transaction)."""
        actor = svc.buyer(request)
        order = app_store.record_transaction(data.signed_transaction)
        if order.user_id != actor.id:  # a real purchase, but another account's
            raise NotFound("purchase", "app_store")
        return OrderOut.of(order)

    @op(get, "/v1/orders", tags=["orders"], responses=errors("invalid_input"), **common)
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
        actor = svc.buyer(request)
        page = flow.orders.query(
            actor,
            status=status,
            since=_when(since, "since"),
            until=_when(until, "until"),
            limit=limit,
            cursor=cursor,
        )
        return OrderPage([OrderOut.of(o) for o in page.items], page.next_cursor)

    @op(get, "/v1/orders/{order_id:str}", tags=["orders"], responses=errors("not_found"), **common)
    def one_order(request: Req, order_id: OrderId) -> OrderDetail:
        """One of my orders with its refunds, feedback tickets and trail of changes."""
        actor = svc.buyer(request)
        order = owned(actor, "order", order_id, lambda: flow.orders.get(actor, order_id))
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

    @op(
        post,
        "/v1/orders/{order_id:str}/refunds",
        tags=["refunds"],
        responses=errors(
            "not_found", "refund_not_allowed", "invalid_input", "idempotency_key_reused", "conflict"
        ),
        **common,
    )
    def request_refund(
        request: Req,
        order_id: OrderId,
        data: JSONBody[RequestRefund],
        idempotency_key: IdempotencyKey,
    ) -> RefundOut:
        """Ask for money back on a paid order; staff review it before its deadline."""
        actor = svc.buyer(request)

        def ask() -> RefundOut:
            order = flow.orders.get(actor, order_id)  # whose it is comes first
            amount = None if data.amount is None else Money(data.amount, order.amount.currency)
            refund = flow.refunds.request(
                actor,
                order_id,
                reason=data.reason,
                amount=amount,
                idempotency_key=scoped(actor, idempotency_key),
            )
            return RefundOut.of(refund)

        return owned(actor, "order", order_id, ask)

    @op(
        post,
        "/v1/refunds/{refund_id:str}/withdraw",
        tags=["refunds"],
        status_code=200,
        responses=errors(
            "not_found",
            "transition_not_allowed",
            "idempotency_key_reused",
            "concurrent_modification",
        ),
        **common,
    )
    def withdraw(request: Req, refund_id: RefundId, idempotency_key: IdempotencyKey) -> RefundOut:
        """I no longer want this refund."""
        actor = svc.buyer(request)
        key = scoped(actor, idempotency_key)

        def withdraw_it() -> RefundRequest:
            flow.refunds.get(actor, refund_id)  # whose it is comes before what state it is in
            return flow.refunds.withdraw(actor, refund_id, idempotency_key=key)

        refund = owned(actor, "refund", refund_id, withdraw_it)
        return RefundOut.of(refund)

    @op(
        post,
        "/v1/feedback",
        tags=["feedback"],
        responses=errors("not_found", "invalid_input", "idempotency_key_reused"),
        **common,
    )
    def submit(
        request: Req, data: JSONBody[SubmitFeedback], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """Rate (1-5) and comment, about an order or in general."""
        actor = svc.buyer(request)
        key = scoped(actor, idempotency_key)

        def submit_it() -> Ticket:
            if data.order_id is not None:
                flow.orders.get(actor, data.order_id)  # whose order it is comes first
            return flow.feedback.submit(
                actor,
                rating=data.rating,
                body=data.body,
                order_id=data.order_id,
                reason=data.reason,
                idempotency_key=key,
            )

        ticket = owned(actor, "order", data.order_id or "", submit_it)
        return TicketOut.of(ticket)

    @op(
        get,
        "/v1/feedback/{ticket_id:str}",
        tags=["feedback"],
        responses=errors("not_found"),
        **common,
    )
    def ticket(request: Req, ticket_id: TicketId) -> TicketOut:
        """One of my feedback tickets with its conversation."""
        actor = svc.buyer(request)
        return TicketOut.of(
            owned(actor, "ticket", ticket_id, lambda: flow.feedback.get(actor, ticket_id))
        )

    step_errors = errors(
        "not_found",
        "transition_not_allowed",
        "invalid_input",
        "idempotency_key_reused",
        "concurrent_modification",
    )

    @op(
        post,
        "/v1/feedback/{ticket_id:str}/reopen",
        tags=["feedback"],
        status_code=200,
        responses=step_errors,
        **common,
    )
    def reopen(
        request: Req, ticket_id: TicketId, data: JSONBody[Message], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """The answer did not solve it: staff must answer again."""
        actor = svc.buyer(request)
        key = scoped(actor, idempotency_key)

        def step() -> Ticket:
            flow.feedback.get(actor, ticket_id)  # whose it is comes before what state it is in
            return flow.feedback.reopen(actor, ticket_id, body=data.body, idempotency_key=key)

        return TicketOut.of(owned(actor, "ticket", ticket_id, step))

    @op(
        post,
        "/v1/feedback/{ticket_id:str}/resolve",
        tags=["feedback"],
        status_code=200,
        responses=step_errors,
        **common,
    )
    def resolve(
        request: Req, ticket_id: TicketId, data: JSONBody[Resolve], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """The answer solved it: close the ticket."""
        actor = svc.buyer(request)
        key = scoped(actor, idempotency_key)

        def step() -> Ticket:
            flow.feedback.get(actor, ticket_id)  # whose it is comes before what state it is in
            return flow.feedback.resolve(actor, ticket_id, note=data.note, idempotency_key=key)

        return TicketOut.of(owned(actor, "ticket", ticket_id, step))

    return [
        products,
        place,
        pay,
        *([attach_app_store] if app_store is not None else []),
        my_orders,
        one_order,
        request_refund,
        withdraw,
        submit,
        ticket,
        reopen,
        resolve,
    ]
