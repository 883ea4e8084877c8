"""Delivered purchases told to their platform: Google Play refunds a purchase that is not
acknowledged (or consumed) within 3 days of the purchase.

Delivery opens a durable deadline (``purchase_acknowledge``); the sweep acknowledges, and a
failure leaves a new deadline with backoff. A purchase still not acknowledged
``Policy.acknowledge_escalate_after`` after it was paid (2 days by default) is escalated to a
lead, once, while there is still time to act. The platform is called between two
transactions, never inside one; acknowledging again is harmless.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from iap_flow.domain.deadlines import BY_KIND
from iap_flow.domain.errors import InvalidInput, PlatformUnavailable
from iap_flow.domain.models import Deadline, DeadlineKind, Order
from iap_flow.domain.roles import Actor
from iap_flow.ports import PaymentKind, PaymentResult, UnitOfWork
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, must

KIND = DeadlineKind.PURCHASE_ACKNOWLEDGE
MAX_BACKOFF = timedelta(hours=6)
_WAITING = BY_KIND[KIND].while_in


def acknowledge(ctx: Context, actor: Actor, order_id: str) -> Order:
    """Acknowledge the purchase that paid a delivered order to its platform, audited with
    the platform's reply. On failure the order keeps a deadline that tries again (doubling
    from ``Policy.acknowledge_retry_delay``, at most 6 h). An order whose platform needs no
    acknowledgement is returned as it is; one not delivered is refused (InvalidInput)."""
    actor = ctx.actor(actor)
    check(actor, "order.acknowledge")
    order_id = ident(order_id, "order_id")
    order = must(ctx.store.get_order(order_id), "order", order_id)
    if order.status not in _WAITING:
        raise InvalidInput(
            f"order {order.id} is {order.status}: only a delivered purchase is acknowledged",
            field="order_id",
        )
    platform = ctx.acknowledger(order.platform)
    if platform is None:
        return order  # this platform's purchases need no acknowledgement
    earlier = [e.data for e in ctx.store.history(order.id) if e.event == "acknowledge"]
    failures = sum(1 for d in earlier if d.get("acknowledged") is False)
    escalated = any(d.get("escalated") for d in earlier)
    try:
        result = platform.acknowledge_delivery(order)
    except PlatformUnavailable as exc:
        result = PaymentResult(
            False, PaymentKind.ACKNOWLEDGE, order.amount, error=str(exc), retryable=True
        )

    def record(tx: UnitOfWork, now: datetime) -> Order:
        current = must(tx.get_order(order_id), "order", order_id)
        tx.close_deadlines(current.id, (KIND,))
        data: dict[str, object] = {"acknowledged": result.success}
        if result.raw:
            data["detail"] = result.raw
        if not result.success:
            data["error"] = result.error
            if result.retryable and current.status in _WAITING:
                delay = min(ctx.policy.acknowledge_retry_delay * 2**failures, MAX_BACKOFF)
                tx.add_deadline(Deadline(KIND, current.id, now + delay))
                data["retry_at"] = (now + delay).isoformat()
            bought = current.paid_at or current.created_at
            late = now - bought >= ctx.policy.acknowledge_escalate_after
            if not escalated and (late or not result.retryable):
                data["escalated"] = True
                payload = {
                    "order_id": current.id,
                    "user_id": current.user_id,
                    "platform": current.platform.value,
                    "transaction_id": current.platform_transaction_id,
                    "paid_at": bought.isoformat(),
                    "error": result.error,
                }
                ctx.notify(tx, "order.acknowledge_failed", "support_lead", payload, now)
        ctx.amend(tx, current, "acknowledge", actor, now, data, save=False)
        return current

    return ctx.run(actor, "order.acknowledge", {}, None, record)
