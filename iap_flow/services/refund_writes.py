"""Writes every refund command shares: audit without a state change, refund the order, and
the summary notifications carry."""

from __future__ import annotations

from datetime import datetime

from iap_flow.domain.models import AuditEvent, OrderStatus, RefundRequest
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.domain.transitions import ORDER, REFUND
from iap_flow.ports import UnitOfWork
from iap_flow.services.base import Context, must
from iap_flow.services.saves import save_order


def audit_only(
    tx: UnitOfWork,
    refund: RefundRequest,
    event: str,
    actor: Actor,
    now: datetime,
    data: dict[str, object],
) -> None:
    """Audit something that happened to a refund without changing its state (from = to)."""
    state = refund.status.value
    tx.add_audit(
        AuditEvent(
            REFUND.aggregate, refund.id, event, state, state, actor.id, actor.role, now, data
        )
    )


def refund_summary(refund: RefundRequest) -> dict[str, object]:
    """The refund as notifications carry it."""
    return {
        "refund_id": refund.id,
        "order_id": refund.order_id,
        "user_id": refund.user_id,
        "amount": refund.amount.amount,
        "currency": refund.amount.currency,
        "status": refund.status.value,
    }


def refund_order(ctx: Context, tx: UnitOfWork, refund: RefundRequest, now: datetime) -> None:
    """The money went back: the refund's order becomes refunded, in the same transaction."""
    order = must(tx.get_order(refund.order_id), "order", refund.order_id)
    target = ctx.fire(
        tx, ORDER, order.id, order.status, "refund", SYSTEM, now, {"refund_id": refund.id}
    )
    order.status = OrderStatus(target)
    save_order(tx, order, now)
