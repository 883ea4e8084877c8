"""Staff and system routes (API keys with a role): refund review, ticket answers, catalogue,
order look-up with its full audit trail, the sweep and outbox delivery."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, Parameter

from iap_flow.domain.models import AuditEvent, RefundStatus, TicketStatus
from iap_flow.domain.money import Money
from iap_flow.http.context import STAFF_SECURITY, IdempotencyKey, Service, errors, op, scoped
from iap_flow.http.schemas import (
    NOT_SPACE,
    Decision,
    Message,
    NewProduct,
    OrderOut,
    ProductOut,
    Rejection,
    Resolve,
    StaffRefundOut,
    SweepOut,
    TicketOut,
)

Req = Request[Any, Any, Any]
Id = Annotated[str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE)]
DECIDE = (
    "not_found",
    "permission_denied",
    "approval_limit_exceeded",
    "transition_not_allowed",
    "already_decided",
    "concurrent_modification",
    "invalid_input",
    "idempotency_key_reused",
    "platform_unavailable",
)


def staff_routes(svc: Service, *, threads: bool) -> list[HTTPRouteHandler]:
    flow = svc.flow
    common: dict[str, Any] = {"sync_to_thread": threads, "security": STAFF_SECURITY}

    @op(
        get,
        "/v1/staff/refunds",
        tags=["staff"],
        responses=errors("forbidden", "permission_denied", "invalid_input"),
        **common,
    )
    def refund_queue(
        request: Req,
        status: Annotated[list[RefundStatus] | None, Parameter(max_items=8)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
    ) -> list[StaffRefundOut]:
        """Refunds by status, soonest review deadline first (in review by default)."""
        actor = svc.staff_member(request)
        chosen = status or [RefundStatus.IN_REVIEW]
        return [StaffRefundOut.of(r) for r in flow.refunds.queue(actor, status=chosen, limit=limit)]

    @op(
        post,
        "/v1/staff/refunds/{refund_id:str}/approve",
        tags=["staff"],
        status_code=200,
        responses=errors("forbidden", *DECIDE),
        **common,
    )
    def approve(
        request: Req, refund_id: Id, data: JSONBody[Decision], idempotency_key: IdempotencyKey
    ) -> StaffRefundOut:
        """Approve a refund (paid out through the platform, or answered to it); ``amount``
        grants less than was asked."""
        actor = svc.staff_member(request)
        granted = None
        if data.amount is not None:
            currency = flow.refunds.get(actor, refund_id).amount.currency
            granted = Money(data.amount, currency)
        refund = flow.refunds.approve(
            actor,
            refund_id,
            note=data.note,
            amount=granted,
            idempotency_key=scoped(actor, idempotency_key),
        )
        return StaffRefundOut.of(refund)

    @op(
        post,
        "/v1/staff/refunds/{refund_id:str}/reject",
        tags=["staff"],
        status_code=200,
        responses=errors("forbidden", *DECIDE),
        **common,
    )
    def reject(
        request: Req, refund_id: Id, data: JSONBody[Rejection], idempotency_key: IdempotencyKey
    ) -> StaffRefundOut:
        """Reject a refund with a reason the buyer will read."""
        actor = svc.staff_member(request)
        refund = flow.refunds.reject(
            actor, refund_id, reason=data.reason, idempotency_key=scoped(actor, idempotency_key)
        )
        return StaffRefundOut.of(refund)

    @op(
        get,
        "/v1/staff/tickets",
        tags=["staff"],
        responses=errors("forbidden", "permission_denied", "invalid_input"),
        **common,
    )
    def ticket_queue(
        request: Req,
        status: Annotated[list[TicketStatus] | None, Parameter(max_items=4)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
    ) -> list[TicketOut]:
        """Tickets by status, oldest first (awaiting an answer by default)."""
        actor = svc.staff_member(request)
        chosen = status or [TicketStatus.OPEN, TicketStatus.REOPENED]
        return [TicketOut.of(t) for t in flow.feedback.queue(actor, status=chosen, limit=limit)]

    step = errors(
        "forbidden",
        "not_found",
        "permission_denied",
        "transition_not_allowed",
        "invalid_input",
        "idempotency_key_reused",
        "concurrent_modification",
    )

    @op(
        post,
        "/v1/staff/tickets/{ticket_id:str}/answer",
        tags=["staff"],
        status_code=200,
        responses=step,
        **common,
    )
    def answer(
        request: Req, ticket_id: Id, data: JSONBody[Message], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """Answer the buyer; the answer reaches them through the outbox."""
        actor = svc.staff_member(request)
        ticket = flow.feedback.answer(
            actor, ticket_id, body=data.body, idempotency_key=scoped(actor, idempotency_key)
        )
        return TicketOut.of(ticket)

    @op(
        post,
        "/v1/staff/tickets/{ticket_id:str}/resolve",
        tags=["staff"],
        status_code=200,
        responses=step,
        **common,
    )
    def staff_resolve(
        request: Req, ticket_id: Id, data: JSONBody[Resolve], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """Close a ticket for the buyer."""
        actor = svc.staff_member(request)
        ticket = flow.feedback.resolve(
            actor, ticket_id, note=data.note, idempotency_key=scoped(actor, idempotency_key)
        )
        return TicketOut.of(ticket)

    @op(
        get,
        "/v1/staff/orders/{order_id:str}",
        tags=["staff"],
        responses=errors("forbidden", "not_found", "permission_denied"),
        **common,
    )
    def staff_order(request: Req, order_id: Id) -> OrderOut:
        """Any order, by id."""
        return OrderOut.of(flow.orders.get(svc.staff_member(request), order_id))

    @op(
        get,
        "/v1/staff/history/{subject_id:str}",
        tags=["staff"],
        responses=errors("forbidden", "not_found", "permission_denied"),
        **common,
    )
    def history(request: Req, subject_id: Id) -> list[AuditEvent]:
        """The full audit trail of an order, refund or ticket, oldest first."""
        return flow.history(svc.staff_member(request), subject_id)

    @op(
        post,
        "/v1/staff/products",
        tags=["staff"],
        responses=errors("forbidden", "permission_denied", "invalid_input", "conflict"),
        **common,
    )
    def add_product(
        request: Req, data: JSONBody[NewProduct], idempotency_key: IdempotencyKey
    ) -> ProductOut:
        """Put a product on the catalogue (product managers)."""
        actor = svc.staff_member(request)
        product = flow.catalogue.add(
            actor,
            sku=data.sku,
            title=data.title,
            description=data.description,
            price=Money(data.price, data.currency),
            kind=data.kind,
            period=data.period,
            idempotency_key=scoped(actor, idempotency_key),
        )
        return ProductOut.of(product)

    @op(
        post,
        "/v1/staff/sweep",
        tags=["staff"],
        status_code=200,
        responses=errors("forbidden", "permission_denied"),
        **common,
    )
    def sweep(request: Req) -> SweepOut:
        """Act on every due deadline now (expire, remind, escalate, retry)."""
        r = flow.sweep(svc.staff_member(request))
        return SweepOut(r.expired, r.reminded, r.escalated, r.retried, r.delivered)

    return [
        refund_queue,
        approve,
        reject,
        ticket_queue,
        answer,
        staff_resolve,
        staff_order,
        history,
        add_product,
        sweep,
    ]
