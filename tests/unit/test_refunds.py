"""Refunds: requested within the window, reviewed before a deadline, paid out through the
platform at most once per order, retried and escalated when the platform refuses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    AlreadyDecided,
    DeadlineKind,
    InvalidInput,
    Money,
    OrderStatus,
    PaymentKind,
    PaymentResult,
    Policy,
    RefundNotAllowed,
    RefundStatus,
    TransitionNotAllowed,
)
from iap_flow.adapters.sandbox import SandboxPlatform


class RecordingSandbox(SandboxPlatform):
    """The sandbox, also keeping the idempotency key of every refund call it got."""

    def __init__(self, *, fail_first: int = 0) -> None:
        super().__init__()
        self.refund_keys: list[str] = []
        self._fail_first = fail_first

    def refund(self, refund: Any, order: Any, idempotency_key: str) -> Any:
        self.refund_keys.append(idempotency_key)
        if len(self.refund_keys) <= self._fail_first:
            return PaymentResult(
                False, PaymentKind.REFUND, refund.amount, error="try later", retryable=True
            )
        return super().refund(refund, order, idempotency_key)


def test_a_request_opens_a_review_with_a_deadline(world: Any) -> None:
    order = world.order(upto="completed")
    world.advance(hours=3)
    refund = world.flow.refunds.request(world.buyer, order.id, reason="bought by mistake")
    assert refund.id.startswith("rfd_")
    assert (refund.status, refund.amount, refund.order_id) == (
        RefundStatus.IN_REVIEW,
        Money(199, "USD"),
        order.id,
    )
    assert refund.review_due_at == world.clock.now() + timedelta(hours=24)
    [deadline] = world.flow.store.pending_deadlines(refund.id)
    assert (deadline.kind, deadline.due_at) == (DeadlineKind.REFUND_REVIEW, refund.review_due_at)
    trail = world.flow.history(SYSTEM, refund.id)
    assert [(e.event, e.from_state, e.to_state, e.role) for e in trail] == [
        ("request", None, "requested", "buyer"),
        ("open_review", "requested", "in_review", "system"),
    ]
    assert world.notifier.sent[-1].topic == "refund.review_requested"
    assert world.notifier.sent[-1].recipient == "support_agent"
    assert world.flow.refunds.queue(world.agent) == [refund]


def test_approved_refund_is_paid_out_once_and_refunds_the_order(world: Any) -> None:
    refund = world.refund()
    world.advance(hours=2)
    done = world.flow.refunds.approve(world.agent, refund.id, note="fair enough")
    assert done.status is RefundStatus.REFUNDED
    assert (done.decided_by, done.decided_at, done.decision_note) == (
        "agent_1",
        world.clock.now(),
        "fair enough",
    )
    assert done.platform_refund_id and done.attempts == 1
    assert world.flow.orders.get(SYSTEM, refund.order_id).status is OrderStatus.REFUNDED
    [paid_out] = world.platform.refunded(refund.order_id)
    assert (paid_out.amount, paid_out.key) == (Money(199, "USD"), refund.id)
    events = [e.event for e in world.flow.history(SYSTEM, refund.id)]
    assert events == ["request", "open_review", "approve", "submit", "confirm"]
    assert world.flow.history(SYSTEM, refund.order_id)[-1].event == "refund"
    assert world.topics()[-1] == "refund.succeeded"
    assert world.flow.store.pending_deadlines(refund.id) == []
    with pytest.raises(TransitionNotAllowed):
        world.flow.refunds.execute(SYSTEM, refund.id)
    assert len(world.platform.refunded(refund.order_id)) == 1


def test_a_partial_refund_pays_out_only_its_amount(world: Any) -> None:
    refund = world.refund(amount=Money(100, "USD"))
    assert refund.amount == Money(100, "USD")
    world.flow.refunds.approve(world.agent, refund.id)
    [paid_out] = world.platform.refunded(refund.order_id)
    assert paid_out.amount == Money(100, "USD")


@pytest.mark.parametrize(
    ("after", "allowed"), [(timedelta(days=14), True), (timedelta(days=14, seconds=1), False)]
)
def test_the_refund_window_counts_from_payment(world: Any, after: timedelta, allowed: bool) -> None:
    order = world.order(upto="completed")
    world.clock.advance(after)
    if allowed:
        world.flow.refunds.request(world.buyer, order.id, reason="late but in time")
        return
    before = world.snapshot()
    with pytest.raises(RefundNotAllowed, match="window of 14 days") as refused:
        world.flow.refunds.request(world.buyer, order.id, reason="too late")
    assert refused.value.order_id == order.id
    assert world.snapshot() == before


def test_the_window_is_a_policy(make_world: Any) -> None:
    w = make_world(policy=Policy(refund_window=timedelta(days=2)))
    order = w.order()
    w.advance(days=3)
    with pytest.raises(RefundNotAllowed, match="window of 2 days"):
        w.flow.refunds.request(w.buyer, order.id, reason="changed my mind")


def test_one_active_refund_per_order(world: Any) -> None:
    refund = world.refund()
    before = world.snapshot()
    with pytest.raises(RefundNotAllowed, match=refund.id):
        world.flow.refunds.request(world.buyer, refund.order_id, reason="again")
    assert world.snapshot() == before
    world.flow.refunds.withdraw(world.buyer, refund.id)
    again = world.flow.refunds.request(world.buyer, refund.order_id, reason="on second thought")
    world.flow.refunds.reject(world.agent, again.id, reason="gems were spent")
    with pytest.raises(RefundNotAllowed, match=again.id):
        world.flow.refunds.request(world.buyer, refund.order_id, reason="please")


def test_a_refunded_order_cannot_be_refunded_again(world: Any) -> None:
    refund = world.refund()
    world.flow.refunds.approve(world.agent, refund.id)
    with pytest.raises(RefundNotAllowed, match="refunded"):
        world.flow.refunds.request(world.buyer, refund.order_id, reason="double dip")


def test_withdrawing_ends_the_review_and_its_deadline(world: Any) -> None:
    refund = world.refund()
    withdrawn = world.flow.refunds.withdraw(world.buyer, refund.id)
    assert withdrawn.status is RefundStatus.WITHDRAWN
    assert world.flow.store.pending_deadlines(refund.id) == []
    world.advance(days=3)
    assert world.flow.sweep().escalated == 0
    with pytest.raises(TransitionNotAllowed):
        world.flow.refunds.approve(world.agent, refund.id)


def test_a_rejection_needs_a_reason_the_buyer_reads(world: Any) -> None:
    refund = world.refund()
    before = world.snapshot()
    with pytest.raises(InvalidInput, match="at least 5 characters") as bad:
        world.flow.refunds.reject(world.agent, refund.id, reason=" no  ")
    assert bad.value.field == "reason"
    assert world.snapshot() == before
    rejected = world.flow.refunds.reject(world.agent, refund.id, reason="outside policy")
    assert (rejected.status, rejected.decision_note) == (RefundStatus.REJECTED, "outside policy")
    note = world.notifier.sent[-1]
    assert (note.topic, note.recipient, note.payload["reason"]) == (
        "refund.rejected",
        "u1",
        "outside policy",
    )
    assert world.platform.refunded(refund.order_id) == []
    assert world.flow.orders.get(SYSTEM, refund.order_id).status is OrderStatus.COMPLETED


@pytest.mark.parametrize("first", ["approve", "reject"])
def test_deciding_twice_is_already_decided_naming_who(world: Any, first: str) -> None:
    refund = world.refund()
    decide = {
        "approve": lambda a: world.flow.refunds.approve(a, refund.id),
        "reject": lambda a: world.flow.refunds.reject(a, refund.id, reason="not eligible"),
    }
    decide[first](world.agent)
    before, ledger = world.snapshot(), list(world.platform.ledger)
    for second in ("approve", "reject"):
        with pytest.raises(AlreadyDecided, match="already decided by agent_1") as late:
            decide[second](world.lead)
        assert late.value.decided_by == "agent_1"
        assert late.value.refund_id == refund.id
    assert world.snapshot() == before
    assert world.platform.ledger == ledger


# -- the platform refuses or does not answer --------------------------------------------------


@pytest.mark.parametrize(
    ("token", "error"),
    [("tok_refund_fails", "refused by the platform"), ("tok_refund_timeout", "did not answer")],
)
def test_a_failed_payout_is_retried_with_the_same_key_then_escalated(
    make_world: Any, token: str, error: str
) -> None:
    platform = RecordingSandbox()
    w = make_world(platform=platform)
    refund = w.refund(token=token)
    failed = w.flow.refunds.approve(w.lead, refund.id)
    assert (failed.status, failed.attempts, failed.escalated) == (RefundStatus.FAILED, 1, False)
    assert error in (failed.last_error or "")
    [retry] = w.flow.store.pending_deadlines(refund.id)
    delay = w.flow.policy.refund_retry_delay
    assert (retry.kind, retry.due_at) == (DeadlineKind.REFUND_RETRY, w.clock.now() + delay)

    w.clock.advance(delay - timedelta(seconds=1))
    assert w.flow.sweep().retried == 0  # not yet
    for attempt in range(2, w.flow.policy.refund_max_attempts + 1):
        w.clock.advance(delay)
        assert w.flow.sweep().retried == 1
        current = w.flow.refunds.get(SYSTEM, refund.id)
        assert (current.status, current.attempts) == (RefundStatus.FAILED, attempt)
    assert current.escalated
    assert w.flow.store.pending_deadlines(refund.id) == []
    assert platform.refund_keys == [refund.id] * w.flow.policy.refund_max_attempts
    escalation = [n for n in w.notifier.sent if n.topic == "refund.escalated"]
    assert [n.recipient for n in escalation] == ["support_lead"]
    w.advance(days=1)
    assert w.flow.sweep().retried == 0  # given up: a lead decides what happens next
    assert platform.refunded(refund.order_id) == []
    assert w.flow.orders.get(SYSTEM, refund.order_id).status is OrderStatus.COMPLETED
    events = [e.event for e in w.flow.history(SYSTEM, refund.id)]
    assert events.count("submit") == events.count("fail") == w.flow.policy.refund_max_attempts
    assert events[-1] == "escalate"


def test_a_payout_that_fails_once_succeeds_on_the_retry(make_world: Any) -> None:
    platform = RecordingSandbox(fail_first=1)
    w = make_world(platform=platform)
    refund = w.refund()
    assert w.flow.refunds.approve(w.agent, refund.id).status is RefundStatus.FAILED
    w.clock.advance(w.flow.policy.refund_retry_delay)
    assert w.flow.sweep().retried == 1
    done = w.flow.refunds.get(SYSTEM, refund.id)
    assert (done.status, done.attempts, done.last_error) == (RefundStatus.REFUNDED, 2, None)
    assert platform.refund_keys == [refund.id, refund.id]
    assert len(platform.refunded(refund.order_id)) == 1
    w.advance(days=1)
    assert w.flow.sweep().retried == 0


def test_a_lead_may_retry_a_failed_payout_by_hand(make_world: Any) -> None:
    platform = RecordingSandbox(fail_first=1)
    w = make_world(platform=platform)
    refund = w.refund()
    w.flow.refunds.approve(w.agent, refund.id)
    assert w.flow.refunds.execute(w.lead, refund.id).status is RefundStatus.REFUNDED
    w.advance(hours=1)
    assert w.flow.sweep().retried == 0  # the retry deadline closed with the payout
    assert len(platform.refunded(refund.order_id)) == 1


def test_the_review_queue_is_soonest_deadline_first(world: Any) -> None:
    first = world.refund()
    world.advance(hours=1)
    second = world.refund()
    assert [r.id for r in world.flow.refunds.queue(world.agent)] == [first.id, second.id]
    world.flow.refunds.approve(world.agent, first.id)
    assert [r.id for r in world.flow.refunds.queue(world.agent)] == [second.id]
    assert [r.id for r in world.flow.refunds.queue(world.agent, status="refunded")] == [first.id]


class Died(BaseException):
    """Stands for the process dying between two steps."""


def _die(*args: Any, **kwargs: Any) -> Any:
    raise Died


def approve_then_die(world: Any, monkeypatch: pytest.MonkeyPatch, key: str | None = None) -> Any:
    """A refund approved by a process that dies after the decision, before the payout."""
    refund = world.refund()
    with monkeypatch.context() as m:
        m.setattr(type(world.flow.refunds), "execute", _die)
        with pytest.raises(Died):
            world.flow.refunds.approve(world.agent, refund.id, idempotency_key=key)
    assert world.flow.refunds.get(SYSTEM, refund.id).status is RefundStatus.APPROVED
    return refund


def test_an_approval_whose_payout_never_started_is_paid_by_the_sweep(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = approve_then_die(world, monkeypatch)
    world.clock.advance(world.flow.policy.refund_retry_delay)
    assert world.flow.sweep().retried == 1
    assert world.flow.refunds.get(SYSTEM, refund.id).status is RefundStatus.REFUNDED
    assert len(world.platform.refunded(refund.order_id)) == 1
    world.advance(days=1)
    assert world.flow.sweep().retried == 0


def test_repeating_an_interrupted_approval_with_its_key_carries_on(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = approve_then_die(world, monkeypatch, key="a-1")
    done = world.flow.refunds.approve(world.agent, refund.id, idempotency_key="a-1")
    assert done.status is RefundStatus.REFUNDED
    assert world.flow.refunds.approve(world.agent, refund.id, idempotency_key="a-1") == done
    assert len(world.platform.refunded(refund.order_id)) == 1
    events = [e.event for e in world.flow.history(SYSTEM, refund.id)]
    assert events.count("approve") == events.count("submit") == 1


def test_a_withdrawn_refund_above_the_limit_is_withdrawn_not_a_leads_job(world: Any) -> None:
    refund = world.refund("gems_big")
    world.flow.refunds.withdraw(world.buyer, refund.id)
    with pytest.raises(TransitionNotAllowed, match="it is withdrawn"):
        world.flow.refunds.approve(world.agent, refund.id)


def test_the_write_path_refuses_an_order_refunded_past_what_it_paid(world: Any) -> None:
    """``Context.change`` is the guard every service goes through: a refunded total over the
    amount is refused (typed) before the store sees it, and nothing of the change is kept."""
    from iap_flow import RefundNotAllowed

    order = world.order(upto="delivered")
    ctx = world.flow._ctx
    before = world.count("audit_events")
    order.refunded_amount = order.amount.amount + 1
    with pytest.raises(RefundNotAllowed):
        ctx.run(
            world.system,
            "test.overrefund",
            {},
            None,
            lambda tx, now: ctx.change(tx, order, "partial_refund", world.system, now),
        )
    assert world.count("audit_events") == before
    stored = world.flow.orders.get(world.system, order.id)
    assert (stored.status, stored.refunded_amount) == ("delivered", 0)
