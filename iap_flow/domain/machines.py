"""The state machines: the single source of truth for states and events.

Diagrams, the process document, the permission table and the fast transition table used on
the write path (:mod:`iap_flow.domain.transitions`) are all derived from these classes.
"""

from __future__ import annotations

from statemachine import State, StateMachine


class OrderMachine(StateMachine):
    """An order from the tap on "buy" to completion or refund."""

    pending_payment = State("Pending payment", initial=True)
    paid = State("Paid (已支付)")
    awaiting_delivery = State("Awaiting delivery (待发货)")
    delivered = State("Delivered (已发货)")
    completed = State("Completed (已完成)")
    partially_refunded = State("Partially refunded (部分退款)")
    refunded = State("Refunded (已退款)", final=True)
    payment_failed = State("Payment failed", final=True)
    cancelled = State("Cancelled")
    expired = State("Expired")

    # A confirmation that arrives after the order expired, or after a cancel that crossed the
    # payment in flight, still means the buyer paid: the money is recorded, never lost.
    pay = pending_payment.to(paid) | expired.to(paid) | cancelled.to(paid)
    fail_payment = pending_payment.to(payment_failed)
    cancel = pending_payment.to(cancelled)
    expire = pending_payment.to(expired)
    hold_delivery = paid.to(awaiting_delivery)
    deliver = paid.to(delivered) | awaiting_delivery.to(delivered)
    complete = delivered.to(completed)
    # Part of what was paid went back (a prorated or quantity-based refund, or a smaller
    # amount asked or granted); access stays. Another part may follow while the refunded
    # total stays within what was paid; the rest makes the order refunded.
    partial_refund = (
        paid.to(partially_refunded)
        | awaiting_delivery.to(partially_refunded)
        | delivered.to(partially_refunded)
        | completed.to(partially_refunded)
        | partially_refunded.to.itself()
    )
    refund = (
        paid.to(refunded)
        | awaiting_delivery.to(refunded)
        | delivered.to(refunded)
        | completed.to(refunded)
        | partially_refunded.to(refunded)
    )
    # Paid but not delivered in time: a lead is told (the order stays where it is).
    escalate = paid.to.itself() | awaiting_delivery.to.itself()


class RefundMachine(StateMachine):
    """A refund request, its review by staff, and its execution on the payment platform."""

    requested = State("Requested", initial=True)
    in_review = State("In review")
    approved = State("Approved")
    submitted = State("Submitted to platform")
    refunded = State("Refunded (已退款)", final=True)
    rejected = State("Rejected", final=True)
    withdrawn = State("Withdrawn", final=True)
    failed = State("Failed")

    open_review = requested.to(in_review)
    escalate = in_review.to.itself() | failed.to.itself()
    approve = in_review.to(approved)
    reject = in_review.to(rejected)
    withdraw = requested.to(withdrawn) | in_review.to(withdrawn)
    submit = approved.to(submitted) | failed.to(submitted)
    confirm = submitted.to(refunded)
    fail = submitted.to(failed)
    # A platform that decides refunds itself (App Store) reports its decision.
    platform_refund = (
        requested.to(refunded)
        | in_review.to(refunded)
        | approved.to(refunded)
        | submitted.to(refunded)
        | failed.to(refunded)
    )
    # It may decline after staff approved (and answered that the refund should be granted).
    platform_decline = requested.to(rejected) | in_review.to(rejected) | approved.to(rejected)


class TicketMachine(StateMachine):
    """A buyer's feedback ticket: answered by staff within a deadline, then resolved."""

    open = State("Open", initial=True)
    answered = State("Answered")
    waiting_on_buyer = State("Waiting on buyer")
    resolved = State("Resolved")
    reopened = State("Reopened")

    answer = open.to(answered) | reopened.to(answered) | answered.to.itself()
    # Staff ask the buyer for something: the targets' clock stops until the buyer replies.
    ask_buyer = (
        open.to(waiting_on_buyer) | answered.to(waiting_on_buyer) | reopened.to(waiting_on_buyer)
    )
    buyer_reply = waiting_on_buyer.to(reopened)
    resolve = (
        open.to(resolved)
        | answered.to(resolved)
        | reopened.to(resolved)
        | waiting_on_buyer.to(resolved)
    )
    reopen = answered.to(reopened) | resolved.to(reopened)
    escalate = open.to.itself() | answered.to.itself() | reopened.to.itself()


class SubscriptionMachine(StateMachine):
    """A subscription from its first paid period to expiry or revocation.

    Access is derived from the state and the period (see ``iap_flow.services.entitlements``):
    active and cancelled until the period end, in grace period until the grace end, none on
    hold, paused, expired or revoked.
    """

    active = State("Active", initial=True)
    in_grace_period = State("In grace period")
    on_hold = State("On hold (billing retry)")
    paused = State("Paused")
    cancelled = State("Cancelled (auto-renew off)")
    expired = State("Expired")
    revoked = State("Revoked", final=True)

    # A paid renewal (or a resubscription on the same original purchase) starts a period.
    renew = (
        active.to.itself()
        | in_grace_period.to(active)
        | on_hold.to(active)
        | cancelled.to(active)
        | expired.to(active)
        | paused.to(active)
    )
    # The store collected a failed renewal without a new period of its own.
    recover = in_grace_period.to(active) | on_hold.to(active)
    enter_grace = active.to(in_grace_period) | cancelled.to(in_grace_period)
    hold = active.to(on_hold) | in_grace_period.to(on_hold) | cancelled.to(on_hold)
    pause = active.to(paused)
    resume = paused.to(active)
    cancel = active.to(cancelled) | in_grace_period.to(cancelled) | on_hold.to(cancelled)
    uncancel = cancelled.to(active)
    expire = (
        active.to(expired)
        | in_grace_period.to(expired)
        | on_hold.to(expired)
        | paused.to(expired)
        | cancelled.to(expired)
    )
    revoke = (
        active.to(revoked)
        | in_grace_period.to(revoked)
        | on_hold.to(revoked)
        | paused.to(revoked)
        | cancelled.to(revoked)
        | expired.to(revoked)
    )


MACHINES: dict[str, type[StateMachine]] = {
    "order": OrderMachine,
    "refund": RefundMachine,
    "ticket": TicketMachine,
    "subscription": SubscriptionMachine,
}
"""Machine class per aggregate name, as used in audit events and the permission table."""
