"""Hypothesis drives orders, refunds and tickets through the public API against a simple
model of what a user expects, moving the clock and sweeping in between.

The model is written by hand from the process (not derived from the machine tables), so a
disagreement is a real finding. After every step: the store's statuses equal the model's,
the audit trail has exactly as many events as the model counted, and the sandbox never paid
an order's refund out twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from iap_flow import (
    SYSTEM,
    AlreadyDecided,
    ApprovalLimitExceeded,
    InvalidInput,
    PlatformUnavailable,
    RefundNotAllowed,
    TransitionNotAllowed,
)

PAYMENT = timedelta(minutes=30)
REVIEW = timedelta(hours=24)
RETRY = timedelta(minutes=15)
FIRST_RESPONSE = timedelta(hours=4)
RESOLUTION = timedelta(hours=72)
DELIVERY = timedelta(hours=1)
LEAD_WINDOW = timedelta(hours=8)  # an escalated ticket's time before the manager is told
LEVELS = 2  # a lead, then a manager
WINDOW = timedelta(days=14)
MAX_ATTEMPTS = 5
AGENT_LIMIT = 5_000
PRICES = {"gems": 199, "gems_big": 9_999}
REFUNDABLE = {"paid", "awaiting_delivery", "delivered", "completed", "partially_refunded"}
OPEN_REVIEW = "in_review"


@dataclass
class Order_:
    status: str
    created: datetime
    amount: int
    paid_at: datetime | None = None
    token: str | None = None
    declined: bool = False  # the platform remembers a declined charge for this order
    delivery_due: datetime | None = None
    refund_ids: list[str] = field(default_factory=list)
    refunded: int = 0  # what went back so far (partial refunds add up to the amount)


@dataclass
class Refund_:
    order_id: str
    amount: int
    review_due: datetime | None
    status: str = OPEN_REVIEW
    attempts: int = 0
    retry_due: datetime | None = None


@dataclass
class Ticket_:
    status: str
    first_due: datetime | None
    resolution_due: datetime | None
    level: int = 0
    escalation_due: datetime | None = None


class FlowModel(RuleBasedStateMachine):
    """One buyer's orders, refunds and tickets, and the staff and sweep acting on them."""

    make_world: Any = None  # set by the test: the conftest's world factory

    orders = Bundle("orders")
    refunds = Bundle("refunds")
    tickets = Bundle("tickets")

    def __init__(self) -> None:
        super().__init__()
        self.w = type(self).make_world()
        self.o: dict[str, Order_] = {}
        self.r: dict[str, Refund_] = {}
        self.t: dict[str, Ticket_] = {}
        self.audit = self.w.count("audit_events")  # the catalogue the world starts with

    @property
    def now(self) -> datetime:
        return self.w.clock.now()

    # -- orders ----------------------------------------------------------------------------
    @rule(target=orders, sku=st.sampled_from(sorted(PRICES)))
    def place(self, sku: str) -> str:
        order = self.w.flow.orders.place(self.w.buyer, sku)
        self.o[order.id] = Order_("pending_payment", self.now, PRICES[sku])
        self.audit += 1
        return str(order.id)

    @rule(
        target=orders,
        sku=st.sampled_from(sorted(PRICES)),
        token=st.sampled_from(["tok_approve", "tok_refund_fails"]),
        complete=st.booleans(),
    )
    def buy(self, sku: str, token: str, complete: bool) -> str:
        """Place and pay in one step (and maybe deliver and complete): refunds need paid orders."""
        order_id = self.place(sku)
        self.pay(order_id, token)
        if complete:
            self.deliver(order_id)
            self.complete(order_id)
        return order_id

    @rule(
        order_id=orders,
        token=st.sampled_from(["tok_approve", "tok_decline", "tok_timeout", "tok_refund_fails"]),
    )
    def pay(self, order_id: str, token: str) -> None:
        o = self.o[order_id]
        pay = lambda: self.w.flow.orders.pay(self.w.buyer, order_id, token=token)  # noqa: E731
        if o.status != "pending_payment":
            # Only a pending order is charged: expired, cancelled, failed or paid, the buyer
            # is refused before the platform is asked.
            with pytest.raises(TransitionNotAllowed):
                pay()
        elif token == "tok_timeout":
            with pytest.raises(PlatformUnavailable):
                pay()
        elif token == "tok_decline":
            o.declined = True
            assert pay().status == "payment_failed"
            o.status = "payment_failed"
            self.audit += 1
        else:
            assert pay().status == "paid"
            o.status, o.paid_at, o.token = "paid", self.now, token
            o.delivery_due = self.now + DELIVERY
            self.audit += 1

    def _step(self, order_id: str, command: str, allowed: set[str], target: str) -> None:
        o = self.o[order_id]
        actor = self.w.buyer if command in ("complete", "cancel") else SYSTEM
        call = getattr(self.w.flow.orders, command)
        if o.status in allowed:
            assert call(actor, order_id).status == target
            o.status = target
            self.audit += 1
        else:
            with pytest.raises(TransitionNotAllowed):
                call(actor, order_id)

    @rule(order_id=orders)
    def hold(self, order_id: str) -> None:
        self._step(order_id, "hold_delivery", {"paid"}, "awaiting_delivery")

    @rule(order_id=orders)
    def deliver(self, order_id: str) -> None:
        self._step(order_id, "deliver", {"paid", "awaiting_delivery"}, "delivered")

    @rule(order_id=orders)
    def complete(self, order_id: str) -> None:
        self._step(order_id, "complete", {"delivered"}, "completed")

    @rule(order_id=orders)
    def cancel(self, order_id: str) -> None:
        self._step(order_id, "cancel", {"pending_payment"}, "cancelled")

    # -- refunds ---------------------------------------------------------------------------
    @rule(target=refunds, order_id=orders, half=st.booleans())
    def request(self, order_id: str, half: bool) -> Any:
        from iap_flow import Money

        o = self.o[order_id]
        remaining = o.amount - o.refunded
        amount = remaining // 2 if half else remaining
        ask = lambda: self.w.flow.refunds.request(  # noqa: E731
            self.w.buyer, order_id, reason="not as described", amount=Money(amount, "USD")
        )
        active = [i for i in o.refund_ids if self.r[i].status not in ("withdrawn", "refunded")]
        assert o.paid_at is not None or o.status not in REFUNDABLE
        if o.status not in REFUNDABLE or active or self.now - o.paid_at > WINDOW:  # type: ignore[operator]
            with pytest.raises(RefundNotAllowed):
                ask()
            return multiple()
        if amount == 0:  # half of one cent
            with pytest.raises(InvalidInput):
                ask()
            return multiple()
        refund = ask()
        assert refund.status == OPEN_REVIEW
        self.r[refund.id] = Refund_(order_id, amount, self.now + REVIEW)
        o.refund_ids.append(refund.id)
        self.audit += 2  # request, open_review
        return str(refund.id)

    def _decided(self, refund_id: str, call: Any) -> bool:
        """Check the refusals a decision can meet; True if it may go ahead."""
        r = self.r[refund_id]
        if r.status == "withdrawn":
            with pytest.raises(TransitionNotAllowed):
                call()
            return False
        if r.status != OPEN_REVIEW:
            with pytest.raises(AlreadyDecided):
                call()
            return False
        return True

    @rule(refund_id=refunds, lead=st.booleans())
    def approve(self, refund_id: str, lead: bool) -> None:
        actor = self.w.lead if lead else self.w.agent
        call = lambda: self.w.flow.refunds.approve(actor, refund_id)  # noqa: E731
        if not self._decided(refund_id, call):
            return
        r, o = self.r[refund_id], self.o[self.r[refund_id].order_id]
        if not lead and r.amount > AGENT_LIMIT:
            with pytest.raises(ApprovalLimitExceeded):
                call()
            return
        result = call()
        r.review_due = None
        r.attempts = 1
        if o.token == "tok_refund_fails":
            assert result.status == "failed"
            r.status, r.retry_due = "failed", self.now + RETRY
            self.audit += 3  # approve, submit, fail
        else:
            assert result.status == "refunded"
            o.refunded += r.amount
            r.status = "refunded"
            o.status = "refunded" if o.refunded == o.amount else "partially_refunded"
            self.audit += 4  # approve, submit, confirm, and the order's (partial) refund

    @rule(refund_id=refunds)
    def reject(self, refund_id: str) -> None:
        call = lambda: self.w.flow.refunds.reject(self.w.agent, refund_id, reason="not eligible")  # noqa: E731
        if self._decided(refund_id, call):
            assert call().status == "rejected"
            self.r[refund_id].status, self.r[refund_id].review_due = "rejected", None
            self.audit += 1

    @rule(refund_id=refunds)
    def withdraw(self, refund_id: str) -> None:
        r = self.r[refund_id]
        call = lambda: self.w.flow.refunds.withdraw(self.w.buyer, refund_id)  # noqa: E731
        if r.status == OPEN_REVIEW:
            assert call().status == "withdrawn"
            r.status, r.review_due = "withdrawn", None
            self.audit += 1
        else:
            with pytest.raises(TransitionNotAllowed):
                call()

    # -- tickets ---------------------------------------------------------------------------
    @rule(target=tickets, rating=st.integers(1, 5))
    def submit(self, rating: int) -> str:
        ticket = self.w.flow.feedback.submit(self.w.buyer, rating=rating, body="feedback")
        self.t[ticket.id] = Ticket_("open", self.now + FIRST_RESPONSE, self.now + RESOLUTION)
        self.audit += 1
        return str(ticket.id)

    @rule(ticket_id=tickets, event=st.sampled_from(["answer", "resolve", "reopen"]))
    def ticket_step(self, ticket_id: str, event: str) -> None:
        t, fb = self.t[ticket_id], self.w.flow.feedback
        call = {
            "answer": lambda: fb.answer(self.w.agent, ticket_id, body="answer"),
            "resolve": lambda: fb.resolve(self.w.buyer, ticket_id),
            "reopen": lambda: fb.reopen(self.w.buyer, ticket_id, body="again"),
        }[event]
        allowed = {
            "answer": {"open", "reopened", "answered"},
            "resolve": {"open", "answered", "reopened"},
            "reopen": {"answered", "resolved"},
        }[event]
        if t.status not in allowed:
            with pytest.raises(TransitionNotAllowed):
                call()
            return
        target = {"answer": "answered", "resolve": "resolved", "reopen": "reopened"}[event]
        assert call().status == target
        self.audit += 1
        if event == "answer":
            t.first_due = None
        elif event == "resolve":
            t.first_due = t.resolution_due = t.escalation_due = None
        else:
            t.first_due, t.resolution_due = self.now + FIRST_RESPONSE, self.now + RESOLUTION
        t.status = target

    # -- time ------------------------------------------------------------------------------
    @rule(minutes=st.sampled_from([1, 14, 15, 29, 30, 60, 240, 1440]))
    def advance_and_sweep(self, minutes: int) -> None:
        self.w.advance(minutes=minutes)
        now = self.now
        for o in self.o.values():
            if o.status == "pending_payment" and o.created + PAYMENT <= now:
                o.status = "expired"
                self.audit += 1
            # paid and not delivered in time: a lead is told once (delivered or refunded: moot)
            if o.delivery_due is not None and o.delivery_due <= now:
                if o.status in ("paid", "awaiting_delivery"):
                    self.audit += 1
                o.delivery_due = None
        for r in self.r.values():
            if r.status == OPEN_REVIEW and r.review_due is not None and r.review_due <= now:
                r.review_due = None  # escalated once; still in review
                self.audit += 1
            if r.status == "failed" and r.retry_due is not None and r.retry_due <= now:
                r.attempts += 1
                self.audit += 2  # submit, fail
                r.retry_due = now + RETRY
                if r.attempts >= MAX_ATTEMPTS:
                    r.retry_due = None
                    self.audit += 1  # escalate
        for t in self.t.values():
            if t.escalation_due is not None and t.escalation_due <= now:
                t.escalation_due, t.level = None, LEVELS  # the lead's time ran out: a manager
                self.audit += 1
            for due in ("first_due", "resolution_due"):
                when = getattr(t, due)
                if when is not None and when <= now:
                    setattr(t, due, None)
                    self.audit += 1
                    if t.level == 0:  # the first breach: a lead, with a window of their own
                        t.level, t.escalation_due = 1, now + LEAD_WINDOW
        self.w.flow.sweep()

    # -- what must always hold -------------------------------------------------------------
    @invariant()
    def store_matches_model(self) -> None:
        rows = dict(self.w.rows("SELECT id, status FROM orders"))
        assert rows == {i: o.status for i, o in self.o.items()}
        rows = dict(self.w.rows("SELECT id, status FROM refunds"))
        assert rows == {i: r.status for i, r in self.r.items()}
        rows = dict(self.w.rows("SELECT id, attempts FROM refunds"))
        assert rows == {i: r.attempts for i, r in self.r.items()}
        rows = dict(self.w.rows("SELECT id, status FROM tickets"))
        assert rows == {i: t.status for i, t in self.t.items()}

    @invariant()
    def one_audit_event_per_transition(self) -> None:
        assert self.w.count("audit_events") == self.audit

    @invariant()
    def money_moves_at_most_once_per_order(self) -> None:
        for order_id, o in self.o.items():
            paid_out = self.w.platform.refunded(order_id)
            refunded = [self.r[i] for i in o.refund_ids if self.r[i].status == "refunded"]
            assert [e.amount.amount for e in paid_out] == [r.amount for r in refunded]
            assert sum(e.amount.amount for e in paid_out) == o.refunded <= o.amount
            stored = self.w.rows("SELECT refunded_amount FROM orders WHERE id = ?", (order_id,))
            assert stored == [(o.refunded,)]

    def teardown(self) -> None:
        self.w.close()


def test_the_flow_behaves_like_the_model(make_world: Any) -> None:
    machine = type("Model", (FlowModel,), {"make_world": staticmethod(make_world)})
    run_state_machine_as_test(
        machine, settings=settings(max_examples=100, stateful_step_count=50, deadline=None)
    )
