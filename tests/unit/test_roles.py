"""The whole role x action table, exercised through the real public API.

For every action in :data:`iap_flow.domain.roles.PERMISSIONS` that is a command, and for every
role, the command is called by an actor of that role on a record prepared for it: the roles
the table allows succeed, every other role gets PermissionDenied and the database is left
exactly as it was. Actions that are not commands of their own (the system fires them inside
another command or the sweep) are listed with where they happen; their audit trail is
checked against the table in ``tests/e2e/test_invariants.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    ApprovalLimitExceeded,
    InvalidInput,
    Money,
    OrderStatus,
    PermissionDenied,
    Policy,
    RefundStatus,
    Role,
)
from iap_flow.domain.roles import PERMISSIONS, check
from iap_flow.domain.transitions import TABLES

Prepare = Callable[[Any], Callable[[Actor], object]]


def _refund_failing_payout(w: Any) -> str:
    """A refund whose payout the platform refused once: it waits in ``failed`` for a retry."""
    refund = w.refund(token="tok_refund_fails")
    refund = w.flow.refunds.approve(w.lead, refund.id)
    assert refund.status is RefundStatus.FAILED
    return str(refund.id)


def _refund_the_platform_decides(w: Any) -> str:
    """A refund the platform opened for review (it decides), approved by a lead."""
    order = w.order(upto="completed")
    refund = w.flow.platform_events.review_requested(
        w.system,
        order.id,
        reason="platform review",
        review_due=w.clock.now() + timedelta(hours=12),
        platform_refund_id="case_1",
    )
    w.flow.refunds.approve(w.lead, refund.id)
    return str(refund.id)


def _subscription(*steps: str) -> Callable[[Any], str]:
    """A subscription of the buyer (a paid pro_month order), driven by the system through
    ``steps`` (subscription commands with no arguments)."""

    def make(w: Any) -> str:
        order = w.order("pro_month")
        sub = w.flow.subscriptions.for_order(w.system, order.id)
        for step in steps:
            getattr(w.flow.subscriptions, step)(w.system, sub.id)
        return str(sub.id)

    return make


def _with(make_id: Callable[[Any], str], call: Callable[[Any, Actor, str], object]) -> Prepare:
    """Prepare a record with ``make_id`` (as other actors), then call ``call`` on it."""

    def prepare(w: Any) -> Callable[[Actor], object]:
        subject = make_id(w)
        return lambda actor: call(w, actor, subject)

    return prepare


def _plain(call: Callable[[Any, Actor], object]) -> Prepare:
    return lambda w: lambda actor: call(w, actor)


COMMANDS: dict[str, Prepare] = {
    "product.create": _plain(
        lambda w, a: w.flow.catalogue.add(
            a,
            sku="brand_new",
            title="Brand new",
            description="d",
            price=Money(99, "USD"),
            kind="consumable",
        )
    ),
    "product.update": _plain(lambda w, a: w.flow.catalogue.update(a, "gems", title="Gems!")),
    "order.place": _plain(lambda w, a: w.flow.orders.place(a, "gems")),
    "order.renew": _with(
        lambda w: w.order("pro_month").id,
        lambda w, a, i: w.flow.orders.renew(a, i, token="tok_approve"),
    ),
    "order.pay": _with(
        lambda w: w.order(upto="pending_payment").id,
        lambda w, a, i: w.flow.orders.pay(a, i, token="tok_approve"),
    ),
    "order.cancel": _with(
        lambda w: w.order(upto="pending_payment").id, lambda w, a, i: w.flow.orders.cancel(a, i)
    ),
    "order.hold_delivery": _with(
        lambda w: w.order().id, lambda w, a, i: w.flow.orders.hold_delivery(a, i)
    ),
    "order.deliver": _with(lambda w: w.order().id, lambda w, a, i: w.flow.orders.deliver(a, i)),
    "order.complete": _with(
        lambda w: w.order(upto="delivered").id, lambda w, a, i: w.flow.orders.complete(a, i)
    ),
    "order.read": _with(lambda w: w.order().id, lambda w, a, i: w.flow.orders.get(a, i)),
    "refund.request": _with(
        lambda w: w.order(upto="completed").id,
        lambda w, a, i: w.flow.refunds.request(a, i, reason="wrong item"),
    ),
    "refund.approve": _with(lambda w: w.refund().id, lambda w, a, i: w.flow.refunds.approve(a, i)),
    "refund.reject": _with(
        lambda w: w.refund().id,
        lambda w, a, i: w.flow.refunds.reject(a, i, reason="the gems were used"),
    ),
    "refund.withdraw": _with(
        lambda w: w.refund().id, lambda w, a, i: w.flow.refunds.withdraw(a, i)
    ),
    "refund.submit": _with(_refund_failing_payout, lambda w, a, i: w.flow.refunds.execute(a, i)),
    "refund.platform_refund": _with(
        lambda w: w.refund().order_id,
        lambda w, a, i: w.flow.platform_events.refunded(
            a, i, reason="refunded by the store", platform_refund_id="pr_1"
        ),
    ),
    "refund.platform_decline": _with(
        lambda w: w.refund().order_id,
        lambda w, a, i: w.flow.platform_events.refund_declined(a, i, reason="not eligible"),
    ),
    "refund.answer_platform": _with(
        _refund_the_platform_decides,
        lambda w, a, i: w.flow.refunds.answer_platform(a, i),
    ),
    "refund.platform_reversal": _with(
        lambda w: w.flow.refunds.approve(w.lead, w.refund().id).order_id,
        lambda w, a, i: w.flow.platform_events.refund_reversed(a, i, reason="reversed"),
    ),
    "order.record": _plain(
        lambda w, a: w.flow.platform_events.purchased(
            a, platform="sandbox", transaction_id="txn_77", sku="gems", user_id="u1"
        )
    ),
    "refund.read": _with(lambda w: w.refund().id, lambda w, a, i: w.flow.refunds.get(a, i)),
    "ticket.submit": _plain(lambda w, a: w.flow.feedback.submit(a, rating=3, body="slow")),
    "ticket.answer": _with(
        lambda w: w.ticket().id, lambda w, a, i: w.flow.feedback.answer(a, i, body="on it")
    ),
    "ticket.resolve": _with(
        lambda w: w.ticket(upto="answered").id, lambda w, a, i: w.flow.feedback.resolve(a, i)
    ),
    "ticket.reopen": _with(
        lambda w: w.ticket(upto="resolved").id,
        lambda w, a, i: w.flow.feedback.reopen(a, i, body="not fixed"),
    ),
    "ticket.read": _with(lambda w: w.ticket().id, lambda w, a, i: w.flow.feedback.get(a, i)),
    "ticket.ask_buyer": _with(
        lambda w: w.ticket().id,
        lambda w, a, i: w.flow.feedback.ask_buyer(a, i, body="which device?"),
    ),
    "ticket.buyer_reply": _with(
        lambda w: w.flow.feedback.ask_buyer(w.agent, w.ticket().id, body="which device?").id,
        lambda w, a, i: w.flow.feedback.buyer_reply(a, i, body="an iPhone"),
    ),
    "ticket.explain": _with(
        lambda w: w.flow.feedback.submit(w.buyer, rating=1, body="late").id,
        lambda w, a, i: w.flow.feedback.explain(a, i, reason="slow_delivery"),
    ),
    "audit.read": _with(lambda w: w.order().id, lambda w, a, i: w.flow.history(a, i)),
    "report.read": _plain(lambda w, a: w.flow.report(a)),
    "sweep.run": _plain(lambda w, a: w.flow.sweep(a)),
    "outbox.deliver": _plain(lambda w, a: w.flow.deliver_notifications(a)),
    "event.remember": _plain(lambda w, a: w.flow.record_event(a, "test", f"evt-{a.role}")),
    "operations.read": _plain(lambda w, a: w.flow.outbox_backlog(a)),
    "order.acknowledge": _with(
        lambda w: w.order(upto="delivered").id, lambda w, a, i: w.flow.acknowledge(a, i)
    ),
    "reconcile.run": _plain(lambda w, a: w.flow.reconciliation.last_run(a, "sandbox")),
    "subscription.recover": _with(
        _subscription("renewal_failed"), lambda w, a, i: w.flow.subscriptions.recovered(a, i)
    ),
    "subscription.enter_grace": _with(
        _subscription(),
        lambda w, a, i: w.flow.subscriptions.renewal_failed(
            a, i, grace_until=w.clock.now() + timedelta(days=3)
        ),
    ),
    "subscription.hold": _with(
        _subscription(), lambda w, a, i: w.flow.subscriptions.renewal_failed(a, i)
    ),
    "subscription.pause": _with(_subscription(), lambda w, a, i: w.flow.subscriptions.paused(a, i)),
    "subscription.resume": _with(
        _subscription("paused"), lambda w, a, i: w.flow.subscriptions.resumed(a, i)
    ),
    "subscription.cancel": _with(
        _subscription(), lambda w, a, i: w.flow.subscriptions.cancelled(a, i)
    ),
    "subscription.uncancel": _with(
        _subscription("cancelled"), lambda w, a, i: w.flow.subscriptions.uncancelled(a, i)
    ),
    "subscription.expire": _with(
        _subscription(), lambda w, a, i: w.flow.subscriptions.expired(a, i)
    ),
    "subscription.revoke": _with(
        _subscription(), lambda w, a, i: w.flow.subscriptions.revoked(a, i, reason="family")
    ),
    "subscription.change_plan": _with(
        _subscription(),
        lambda w, a, i: w.flow.subscriptions.plan_changed(a, i, sku="pro_month", immediate=True),
    ),
    "subscription.extend": _with(
        _subscription(),
        lambda w, a, i: w.flow.subscriptions.extended(
            a, i, period_end=w.clock.now() + timedelta(days=90), reason="store"
        ),
    ),
    "subscription.read": _with(_subscription(), lambda w, a, i: w.flow.subscriptions.get(a, i)),
    "entitlement.read": _plain(lambda w, a: w.flow.entitlements.active(a, "u1")),
}
"""Action -> how to prepare a record for it and call its public command as an actor."""

INDIRECT: dict[str, str] = {
    "order.fail_payment": "pay() when the platform declines the charge",
    "order.expire": "the sweep, when an unpaid order's deadline passes",
    "order.refund": "a refund paid out (execute) or reported by the platform",
    "order.partial_refund": "a refund of part of what was paid, paid out or reported",
    "refund.open_review": "request(): every request goes straight to review",
    "refund.escalate": "the sweep (review deadline) and execute() (payout given up)",
    "refund.confirm": "execute(), when the platform pays the refund out",
    "refund.fail": "execute(), when the platform refuses or does not answer",
    "ticket.escalate": "the sweep, when a ticket's response or resolution deadline passes",
    "order.escalate": "the sweep, when a paid order is not delivered in time",
    "subscription.start": "a paid subscription order (pay, platform_events.purchased)",
    "subscription.renew": "a paid renewal order (orders.renew, purchased with an original)",
}
"""Actions with no command of their own, and where the system fires them."""

MORE_COMMANDS: dict[str, tuple[str, Prepare]] = {
    "orders.query": ("order.read", _plain(lambda w, a: w.flow.orders.query(a))),
    "platform_events.order_for_transaction": (
        "order.read",
        _with(
            lambda w: w.order().platform_transaction_id,
            lambda w, a, i: w.flow.platform_events.order_for_transaction(a, "sandbox", i),
        ),
    ),
    "refunds.queue": ("refund.read", _plain(lambda w, a: w.flow.refunds.queue(a))),
    "flow.outbox_pending": ("operations.read", _plain(lambda w, a: w.flow.outbox_pending(a))),
    "flow.deadlines_due": ("operations.read", _plain(lambda w, a: w.flow.deadlines_due(a))),
    "flow.event_result": (
        "event.remember",
        _plain(lambda w, a: w.flow.event_result(a, "test", "evt-1")),
    ),
    "flow.report_rows": (
        "report.read",
        _plain(
            lambda w, a: w.flow.report_rows(a, "orders_by_status", {"since": None, "until": None})
        ),
    ),
    "feedback.queue": ("ticket.read", _plain(lambda w, a: w.flow.feedback.queue(a))),
    "subscriptions.for_user": (
        "subscription.read",
        _plain(lambda w, a: w.flow.subscriptions.for_user(a, "u1")),
    ),
    "subscriptions.for_order": (
        "subscription.read",
        _with(
            lambda w: w.order("pro_month").id,
            lambda w, a, i: w.flow.subscriptions.for_order(a, i),
        ),
    ),
    "platform_events.refunded": (
        "refund.platform_refund",
        _with(
            lambda w: w.refund().order_id,
            lambda w, a, i: w.flow.platform_events.refunded(a, i, reason="chargeback"),
        ),
    ),
}
"""More public commands guarded by an action above: label -> (action, prepare and call)."""

ALL_COMMANDS: dict[str, tuple[str, Prepare]] = {
    **{action: (action, prepare) for action, prepare in COMMANDS.items()},
    **MORE_COMMANDS,
}
CASES = [(label, role) for label in sorted(ALL_COMMANDS) for role in Role]


def test_every_action_in_the_table_is_exercised_here() -> None:
    assert set(COMMANDS) | set(INDIRECT) == set(PERMISSIONS)
    assert not set(COMMANDS) & set(INDIRECT)


def test_every_machine_event_has_a_permission_row() -> None:
    for aggregate, table in TABLES.items():
        for event in table.events:
            assert f"{aggregate}.{event}" in PERMISSIONS, f"{aggregate}.{event}"


def test_actions_only_the_system_fires_are_system_only() -> None:
    for action in INDIRECT:
        assert PERMISSIONS[action] == {Role.SYSTEM}, action


def test_every_role_may_do_something() -> None:
    granted = {role for roles in PERMISSIONS.values() for role in roles}
    assert granted == set(Role)


@pytest.mark.parametrize(("label", "role"), CASES, ids=[f"{a}-{r}" for a, r in CASES])
def test_role_may_or_may_not_run_the_command(world: Any, label: str, role: Role) -> None:
    action, prepare = ALL_COMMANDS[label]
    call = prepare(world)
    actor = world.actor(role)
    if role in PERMISSIONS[action]:
        call(actor)
        return
    before, sent, ledger = world.snapshot(), len(world.notifier.sent), list(world.platform.ledger)
    with pytest.raises(PermissionDenied) as denied:
        call(actor)
    assert (denied.value.role, denied.value.actor_id) == (role, actor.id)
    assert action in str(denied.value)
    assert world.snapshot() == before
    assert (len(world.notifier.sent), world.platform.ledger) == (sent, ledger)


# -- buyers act on their own records only ---------------------------------------------------

OTHERS: dict[str, Prepare] = {
    "pay": _with(
        lambda w: w.order(buyer=w.other_buyer, upto="pending_payment").id,
        lambda w, a, i: w.flow.orders.pay(a, i, token="tok_approve"),
    ),
    "cancel": _with(
        lambda w: w.order(buyer=w.other_buyer, upto="pending_payment").id,
        lambda w, a, i: w.flow.orders.cancel(a, i),
    ),
    "complete": _with(
        lambda w: w.order(buyer=w.other_buyer, upto="delivered").id,
        lambda w, a, i: w.flow.orders.complete(a, i),
    ),
    "get-order": _with(
        lambda w: w.order(buyer=w.other_buyer).id, lambda w, a, i: w.flow.orders.get(a, i)
    ),
    "query-orders": _plain(lambda w, a: w.flow.orders.query(a, user_id=w.other_buyer.id)),
    "request-refund": _with(
        lambda w: w.order(buyer=w.other_buyer).id,
        lambda w, a, i: w.flow.refunds.request(a, i, reason="mine now"),
    ),
    "withdraw-refund": _with(
        lambda w: w.refund(buyer=w.other_buyer).id,
        lambda w, a, i: w.flow.refunds.withdraw(a, i),
    ),
    "get-refund": _with(
        lambda w: w.refund(buyer=w.other_buyer).id, lambda w, a, i: w.flow.refunds.get(a, i)
    ),
    "feedback-on-order": _with(
        lambda w: w.order(buyer=w.other_buyer).id,
        lambda w, a, i: w.flow.feedback.submit(a, rating=1, body="bad", order_id=i),
    ),
    "resolve-ticket": _with(
        lambda w: w.ticket(buyer=w.other_buyer, upto="answered").id,
        lambda w, a, i: w.flow.feedback.resolve(a, i),
    ),
    "reopen-ticket": _with(
        lambda w: w.ticket(buyer=w.other_buyer, upto="resolved").id,
        lambda w, a, i: w.flow.feedback.reopen(a, i, body="again"),
    ),
    "get-ticket": _with(
        lambda w: w.ticket(buyer=w.other_buyer).id, lambda w, a, i: w.flow.feedback.get(a, i)
    ),
}


@pytest.mark.parametrize("case", sorted(OTHERS))
def test_a_buyer_cannot_touch_another_buyers_records(world: Any, case: str) -> None:
    call = OTHERS[case](world)
    before, sent = world.snapshot(), len(world.notifier.sent)
    with pytest.raises(PermissionDenied, match="own"):
        call(world.buyer)
    assert world.snapshot() == before
    assert len(world.notifier.sent) == sent


def test_a_buyers_queues_show_only_their_own_records(world: Any) -> None:
    mine, theirs = world.refund(), world.refund(buyer=world.other_buyer)
    world.ticket()
    world.ticket(buyer=world.other_buyer)
    assert [r.id for r in world.flow.refunds.queue(world.buyer, user_id="u2")] == [mine.id]
    assert {r.id for r in world.flow.refunds.queue(world.agent)} == {mine.id, theirs.id}
    assert {t.user_id for t in world.flow.feedback.queue(world.buyer, user_id="u2")} == {"u1"}
    assert {o.user_id for o in world.flow.orders.query(world.buyer).items} == {"u1"}
    assert {o.user_id for o in world.flow.orders.query(world.agent).items} == {"u1", "u2"}


# -- the support agent's approval limit -----------------------------------------------------


@pytest.mark.parametrize(("sku", "limit"), [("gems_big", "50.00 USD"), ("coins_jpy", "7000 JPY")])
def test_an_agent_cannot_approve_above_their_limit_but_a_lead_can(
    world: Any, sku: str, limit: str
) -> None:
    refund = world.refund(sku)
    before = world.snapshot()
    with pytest.raises(ApprovalLimitExceeded) as refused:
        world.flow.refunds.approve(world.agent, refund.id)
    assert limit in str(refused.value)
    assert "support lead" in str(refused.value)
    assert refused.value.refund_id == refund.id
    assert world.snapshot() == before
    approved = world.flow.refunds.approve(world.lead, refund.id)
    assert approved.status is RefundStatus.REFUNDED
    assert approved.decided_by == world.lead.id
    assert world.flow.orders.get(SYSTEM, refund.order_id).status is OrderStatus.REFUNDED


def test_the_limit_is_on_the_refund_amount_inclusive(world: Any) -> None:
    at_limit = world.refund("gems_big", amount=Money(5_000, "USD"))
    assert world.flow.refunds.approve(world.agent, at_limit.id).status is RefundStatus.REFUNDED
    above = world.refund("gems_big", amount=Money(5_001, "USD"))
    with pytest.raises(ApprovalLimitExceeded):
        world.flow.refunds.approve(world.agent, above.id)


def test_an_agent_may_still_reject_above_the_limit(world: Any) -> None:
    refund = world.refund("gems_big")
    rejected = world.flow.refunds.reject(world.agent, refund.id, reason="gems already spent")
    assert rejected.status is RefundStatus.REJECTED


def test_limits_are_per_currency_and_configurable(make_world: Any) -> None:
    w = make_world(policy=Policy(agent_refund_limits={"USD": 100}))
    refund = w.refund("gems")  # 199 USD, above a 100 USD limit
    with pytest.raises(ApprovalLimitExceeded, match=r"1\.00 USD") as refused:
        w.flow.refunds.approve(w.agent, refund.id)
    assert (refused.value.amount, refused.value.limit) == (Money(199, "USD"), Money(100, "USD"))
    jpy = w.refund("coins_jpy")  # no JPY limit configured: agents may approve none
    with pytest.raises(ApprovalLimitExceeded, match="0 JPY"):
        w.flow.refunds.approve(w.agent, jpy.id)


# -- who the audit trail says acted ---------------------------------------------------------


def test_a_declined_payment_is_recorded_as_the_platforms_doing(world: Any) -> None:
    order = world.order(upto="pending_payment")
    world.flow.orders.pay(world.buyer, order.id, token="tok_decline")
    [_, failed] = world.flow.history(SYSTEM, order.id)
    assert (failed.event, failed.role) == ("fail_payment", Role.SYSTEM)


def test_a_developer_running_the_sweep_fires_deadline_events_as_the_system(world: Any) -> None:
    order = world.order(upto="pending_payment")
    refund = world.refund()
    world.advance(days=2)
    world.flow.sweep(world.dev)
    assert world.flow.orders.get(SYSTEM, order.id).status is OrderStatus.EXPIRED
    fired = [e for i in (order.id, refund.id) for e in world.flow.history(SYSTEM, i)][1:]
    deadline_events = [e for e in fired if e.event in ("expire", "escalate")]
    assert len(deadline_events) == 2
    for event in deadline_events:
        assert event.role in PERMISSIONS[f"{event.aggregate}.{event.event}"]


# -- actors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["king", "", None, 3])
def test_an_unknown_role_is_invalid_input(role: object) -> None:
    with pytest.raises(InvalidInput) as bad:
        Actor("x", role)  # type: ignore[arg-type]
    assert bad.value.field == "role"


@pytest.mark.parametrize("actor_id", ["", "   ", None, 5])
def test_an_actor_needs_an_id(actor_id: object) -> None:
    with pytest.raises(InvalidInput) as bad:
        Actor(actor_id, "buyer")  # type: ignore[arg-type]
    assert bad.value.field == "actor_id"


def test_roles_accept_their_names() -> None:
    assert Actor("a", "support_lead") == Actor.lead("a")
    assert Actor("a", Role.SUPPORT_AGENT) == Actor.agent("a")


def test_an_unknown_action_is_denied_to_everyone() -> None:
    for role in Role:
        with pytest.raises(PermissionDenied, match="unknown action"):
            check(Actor("x", role), "order.teleport")
