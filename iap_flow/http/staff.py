"""Staff and system routes (API keys with a role): refund review, ticket answers, catalogue,
order look-up with its full audit trail, the sweep and outbox delivery."""

from __future__ import annotations

from typing import Annotated

from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, Parameter

from iap_flow.domain.models import AuditEvent, RefundStatus, TicketStatus
from iap_flow.domain.money import Money
from iap_flow.domain.roles import Actor
from iap_flow.http.context import IdempotencyKey, Req, Routes, Service
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
)
"""What deciding a refund may answer. A platform out of reach is not among them: the decision
is kept and the payout (or the answer to the platform) retried by the sweep."""


def staff_routes(svc: Service, *, threads: bool) -> list[HTTPRouteHandler]:
    r = Routes(svc, threads, staff=True, tag="staff")
    flow = svc.flow

    @r.get("/v1/staff/refunds", "permission_denied")
    def refund_queue(
        request: Req,
        status: Annotated[list[RefundStatus] | None, Parameter(max_items=8)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
    ) -> list[StaffRefundOut]:
        """Refunds by status, soonest review deadline first (in review by default)."""
        chosen = status or [RefundStatus.IN_REVIEW]
        return r.run(
            request,
            lambda a, k: [
                StaffRefundOut.of(x) for x in flow.refunds.queue(a, status=chosen, limit=limit)
            ],
        )

    @r.post("/v1/staff/refunds/{refund_id:str}/approve", *DECIDE)
    def approve(
        request: Req, refund_id: Id, data: JSONBody[Decision], idempotency_key: IdempotencyKey
    ) -> StaffRefundOut:
        """Approve a refund (paid out through the platform, or answered to it); ``amount``
        grants less than was asked."""

        def approve_as(a: Actor, k: str | None) -> StaffRefundOut:
            granted = None
            if data.amount is not None:
                currency = flow.refunds.get(a, refund_id).amount.currency
                granted = Money(data.amount, currency)
            refund = flow.refunds.approve(
                a, refund_id, note=data.note, amount=granted, idempotency_key=k
            )
            return StaffRefundOut.of(refund)

        return r.run(request, approve_as, key=idempotency_key)

    @r.post("/v1/staff/refunds/{refund_id:str}/reject", *DECIDE)
    def reject(
        request: Req, refund_id: Id, data: JSONBody[Rejection], idempotency_key: IdempotencyKey
    ) -> StaffRefundOut:
        """Reject a refund with a reason the buyer will read."""
        return r.run(
            request,
            lambda a, k: StaffRefundOut.of(
                flow.refunds.reject(a, refund_id, reason=data.reason, idempotency_key=k)
            ),
            key=idempotency_key,
        )

    @r.get("/v1/staff/tickets", "permission_denied")
    def ticket_queue(
        request: Req,
        status: Annotated[list[TicketStatus] | None, Parameter(max_items=4)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
    ) -> list[TicketOut]:
        """Tickets by status, oldest first (awaiting an answer by default)."""
        chosen = status or [TicketStatus.OPEN, TicketStatus.REOPENED]
        return r.run(
            request,
            lambda a, k: [
                TicketOut.of(t) for t in flow.feedback.queue(a, status=chosen, limit=limit)
            ],
        )

    step = (
        "not_found",
        "permission_denied",
        "transition_not_allowed",
        "invalid_input",
        "idempotency_key_reused",
        "concurrent_modification",
    )

    @r.post("/v1/staff/tickets/{ticket_id:str}/answer", *step)
    def answer(
        request: Req, ticket_id: Id, data: JSONBody[Message], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """Answer the buyer; the answer reaches them through the outbox."""
        return r.run(
            request,
            lambda a, k: TicketOut.of(
                flow.feedback.answer(a, ticket_id, body=data.body, idempotency_key=k)
            ),
            key=idempotency_key,
        )

    @r.post("/v1/staff/tickets/{ticket_id:str}/resolve", *step)
    def staff_resolve(
        request: Req, ticket_id: Id, data: JSONBody[Resolve], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        """Close a ticket for the buyer."""
        return r.run(
            request,
            lambda a, k: TicketOut.of(
                flow.feedback.resolve(a, ticket_id, note=data.note, idempotency_key=k)
            ),
            key=idempotency_key,
        )

    @r.get("/v1/staff/orders/{order_id:str}", "not_found", "permission_denied")
    def staff_order(request: Req, order_id: Id) -> OrderOut:
        """Any order, by id."""
        return r.run(request, lambda a, k: OrderOut.of(flow.orders.get(a, order_id)))

    @r.get("/v1/staff/history/{subject_id:str}", "not_found", "permission_denied")
    def history(request: Req, subject_id: Id) -> list[AuditEvent]:
        """The full audit trail of an order, refund or ticket, oldest first."""
        return r.run(request, lambda a, k: flow.history(a, subject_id))

    @r.post("/v1/staff/products", "permission_denied", "invalid_input", status=201)
    def add_product(
        request: Req, data: JSONBody[NewProduct], idempotency_key: IdempotencyKey
    ) -> ProductOut:
        """Put a product on the catalogue (product managers)."""
        return r.run(
            request,
            lambda a, k: ProductOut.of(
                flow.catalogue.add(
                    a,
                    sku=data.sku,
                    title=data.title,
                    description=data.description,
                    price=Money(data.price, data.currency),
                    kind=data.kind,
                    period=data.period,
                    idempotency_key=k,
                )
            ),
            key=idempotency_key,
        )

    @r.post("/v1/staff/sweep", "permission_denied")
    def sweep(request: Req) -> SweepOut:
        """Act on every due deadline now (expire, remind, escalate, retry)."""
        return r.run(request, lambda a, k: SweepOut.of(flow.sweep(a)))

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
