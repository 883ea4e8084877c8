"""The design's invariants, shown end to end through the public API.

- every state change has exactly one audit event, with actor, role, from, to and time, and
  the role is one the permission table grants for that event;
- a command repeated with its idempotency key returns the first result and writes nothing;
  the same key with other arguments is refused and writes nothing;
- notifications leave through the outbox and are delivered at least once, also when the
  process dies between the commit and the send; a process dying inside a transaction leaves
  nothing half-written.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    IapFlowError,
    IdempotencyKeyReused,
    ManualClock,
    Money,
    OrderStatus,
    open_flow,
)
from iap_flow.domain.roles import PERMISSIONS

STATUS_SQL = (
    "SELECT id, status FROM orders UNION ALL SELECT id, status FROM refunds"
    " UNION ALL SELECT id, status FROM tickets UNION ALL SELECT id, status FROM subscriptions"
)


class AuditChecker:
    """Runs commands and checks, for each, that the audit events it wrote are exactly the state
    changes it made: per record, a chain from the state before to the state after."""

    def __init__(self, world: Any) -> None:
        self.w = world
        self.steps = 0

    def states(self) -> dict[str, str]:
        return dict(self.w.rows(STATUS_SQL))

    def __call__(self, command: Callable[[], object]) -> object:
        w = self.w
        before, seen = self.states(), len(w.audit())
        now = w.clock.now()
        try:
            result: object = command()
        except IapFlowError as exc:
            result = exc
        after, events = self.states(), w.audit()[seen:]
        by_record: dict[str, list[Any]] = {}
        for event in events:
            by_record.setdefault(event.aggregate_id, []).append(event)
            assert event.actor_id and event.role and event.at == now, event
            assert event.role in PERMISSIONS[f"{event.aggregate}.{event.event}"], event
        for record_id, state in after.items():
            chain = by_record.pop(record_id, [])
            if not chain:
                assert before.get(record_id) == state, f"{record_id} changed with no audit event"
                continue
            assert chain[0].from_state == before.get(record_id), chain
            for earlier, later in itertools.pairwise(chain):
                assert later.from_state == earlier.to_state, chain
            assert chain[-1].to_state == state, chain
        assert by_record == {}, f"audit events for records that do not exist: {by_record}"
        if isinstance(result, IapFlowError):
            assert (events, after) == ([], before), f"{result!r} wrote something"
        self.steps += 1
        return result


def test_every_state_change_has_exactly_one_audit_event(world: Any) -> None:
    """A day in the life touching every command, with refusals mixed in."""
    w, run = world, AuditChecker(world)
    o, r, f = w.flow.orders, w.flow.refunds, w.flow.feedback
    pe = w.flow.platform_events
    first = run(lambda: o.place(w.buyer, "gems"))
    run(lambda: o.pay(w.buyer, first.id, token="tok_approve"))  # type: ignore[attr-defined]
    run(lambda: o.pay(w.buyer, first.id, token="tok_approve"))  # type: ignore[attr-defined]  # refused
    run(lambda: o.hold_delivery(SYSTEM, first.id))  # type: ignore[attr-defined]
    run(lambda: o.deliver(w.dev, first.id))  # type: ignore[attr-defined]
    run(lambda: o.complete(w.buyer, first.id))  # type: ignore[attr-defined]
    declined = run(lambda: o.place(w.other_buyer, "no_ads"))
    run(lambda: o.pay(w.other_buyer, declined.id, token="tok_decline"))  # type: ignore[attr-defined]
    cancelled = run(lambda: o.place(w.buyer, "gems"))
    run(lambda: o.cancel(w.agent, cancelled.id))  # type: ignore[attr-defined]
    unpaid = run(lambda: o.place(w.buyer, "gems"))
    sub = run(lambda: o.place(w.buyer, "pro_month"))
    run(lambda: o.pay(SYSTEM, sub.id, token="tok_approve"))  # type: ignore[attr-defined]
    recorded = run(lambda: o.place(w.buyer, "no_ads"))
    run(
        lambda: pe.purchased(
            SYSTEM, platform="sandbox", transaction_id="t_9", sku="no_ads", user_id=w.buyer.id
        )
    )
    assert o.get(SYSTEM, recorded.id).status.value == "paid"  # type: ignore[attr-defined]
    refund = run(lambda: r.request(w.buyer, first.id, reason="wrong item"))  # type: ignore[attr-defined]
    run(lambda: r.request(w.buyer, first.id, reason="again"))  # type: ignore[attr-defined]  # refused
    run(lambda: r.approve(w.agent, refund.id))  # type: ignore[attr-defined]
    run(lambda: r.reject(w.lead, refund.id, reason="too late now"))  # type: ignore[attr-defined]
    big = run(lambda: r.request(w.buyer, sub.id, reason="never used it"))  # type: ignore[attr-defined]
    run(lambda: r.approve(w.agent, big.id))  # type: ignore[attr-defined]  # below the limit: pays
    failing = run(lambda: o.place(w.other_buyer, "gems_big"))
    run(lambda: o.pay(w.other_buyer, failing.id, token="tok_refund_fails"))  # type: ignore[attr-defined]
    doomed = run(lambda: r.request(w.other_buyer, failing.id, reason="duplicate"))  # type: ignore[attr-defined]
    run(lambda: r.approve(w.agent, doomed.id))  # type: ignore[attr-defined]  # above the limit
    run(lambda: r.approve(w.lead, doomed.id))  # type: ignore[attr-defined]  # payout fails
    withdrawn = run(lambda: r.request(w.buyer, recorded.id, reason="meh"))  # type: ignore[attr-defined]
    run(lambda: r.withdraw(w.buyer, withdrawn.id))  # type: ignore[attr-defined]
    ticket = run(lambda: f.submit(w.buyer, rating=2, body="slow", order_id=first.id))  # type: ignore[attr-defined]
    run(lambda: f.answer(w.agent, ticket.id, body="sorry"))  # type: ignore[attr-defined]
    run(lambda: f.answer(w.lead, ticket.id, body="fixed"))  # type: ignore[attr-defined]
    run(lambda: f.resolve(w.buyer, ticket.id))  # type: ignore[attr-defined]
    run(lambda: f.reopen(w.buyer, ticket.id, body="not fixed"))  # type: ignore[attr-defined]
    run(lambda: f.submit(w.other_buyer, rating=5, body="great"))
    pending_review = run(lambda: r.request(w.other_buyer, declined.id, reason="x"))  # refused
    assert isinstance(pending_review, IapFlowError)
    late = run(lambda: o.place(w.buyer, "gems"))
    for hours in (0.5, 3, 4, 20, 24, 48, 72):
        w.clock.set(w.start + timedelta(hours=hours))
        run(lambda: w.flow.sweep(w.dev))
    run(lambda: o.pay(w.buyer, late.id, token="tok_approve"))  # type: ignore[attr-defined]  # after expiry
    run(lambda: o.renew(SYSTEM, sub.id, token="tok_approve"))  # type: ignore[attr-defined]  # refunded: refused
    assert o.get(SYSTEM, unpaid.id).status is OrderStatus.EXPIRED  # type: ignore[attr-defined]
    bought = run(
        lambda: pe.purchased(
            SYSTEM, platform="sandbox", transaction_id="txn_p1", sku="gems", user_id="u1"
        )
    )
    run(lambda: pe.purchased(SYSTEM, platform="sandbox", transaction_id="txn_p1", sku="gems"))
    run(lambda: pe.refunded(SYSTEM, bought.id, reason="chargeback"))  # type: ignore[attr-defined]
    run(lambda: pe.refund_reversed(SYSTEM, bought.id, reason="reversed"))  # type: ignore[attr-defined]
    asked = run(lambda: o.place(w.other_buyer, "gems"))
    run(lambda: o.pay(w.other_buyer, asked.id, token="tok_approve"))  # type: ignore[attr-defined]
    case = run(
        lambda: pe.review_requested(
            SYSTEM,
            asked.id,  # type: ignore[attr-defined]
            reason="platform review",
            review_due=w.clock.now() + timedelta(hours=6),
            platform_refund_id="case_9",
        )
    )
    run(lambda: r.approve(w.lead, case.id))  # type: ignore[attr-defined]
    run(lambda: r.answer_platform(w.dev, case.id))  # type: ignore[attr-defined]
    run(lambda: pe.refund_declined(SYSTEM, asked.id, reason="platform said no"))  # type: ignore[attr-defined]
    assert run.steps > 50
    assert r.get(SYSTEM, doomed.id).escalated  # type: ignore[attr-defined]


# -- idempotency -------------------------------------------------------------------------------

Twin = tuple[Callable[[str], object], Callable[[str], object]]
"""(the command with a key, the same command with other arguments and the same key)."""


def _idem_cases() -> dict[str, Callable[[Any], Twin]]:
    def product(w: Any, price: int) -> Callable[[str], object]:
        return lambda k: w.flow.catalogue.add(
            w.pm,
            sku="bundle",
            title="Bundle",
            description="d",
            price=Money(price, "USD"),
            kind="consumable",
            idempotency_key=k,
        )

    def on(make: Callable[[Any], str], call: Callable[[Any, str, str, bool], object]) -> Any:
        def prepare(w: Any) -> Twin:
            subject = make(w)
            return (lambda k: call(w, subject, k, False), lambda k: call(w, subject, k, True))

        return prepare

    o = lambda w: w.flow.orders  # noqa: E731
    r = lambda w: w.flow.refunds  # noqa: E731
    f = lambda w: w.flow.feedback  # noqa: E731
    pending = lambda w: w.order(upto="pending_payment").id  # noqa: E731
    return {
        "catalogue.add": lambda w: (product(w, 100), product(w, 101)),
        "catalogue.update": on(
            lambda w: "gems",
            lambda w, s, k, x: w.flow.catalogue.update(
                w.pm, s, title="Gems x" if x else "Gems", idempotency_key=k
            ),
        ),
        "orders.place": lambda w: (
            lambda k: o(w).place(w.buyer, "gems", idempotency_key=k),
            lambda k: o(w).place(w.buyer, "no_ads", idempotency_key=k),
        ),
        "orders.renew": on(
            lambda w: w.order("pro_month").id,
            lambda w, s, k, x: o(w).renew(
                w.system, s, token="tok_other" if x else "tok_approve", idempotency_key=k
            ),
        ),
        "orders.pay": on(
            pending,
            lambda w, s, k, x: o(w).pay(
                w.buyer, s, token="tok_other" if x else "tok_approve", idempotency_key=k
            ),
        ),
        "orders.pay-declined": on(
            pending,
            lambda w, s, k, x: o(w).pay(
                w.buyer, s, token="tok_approve" if x else "tok_decline", idempotency_key=k
            ),
        ),
        "orders.hold_delivery": on(
            lambda w: w.order().id,
            lambda w, s, k, x: o(w).hold_delivery(w.dev if x else w.system, s, idempotency_key=k),
        ),
        "orders.deliver": on(
            lambda w: w.order().id,
            lambda w, s, k, x: o(w).deliver(w.dev if x else w.system, s, idempotency_key=k),
        ),
        "orders.complete": on(
            lambda w: w.order(upto="delivered").id,
            lambda w, s, k, x: o(w).complete(w.system if x else w.buyer, s, idempotency_key=k),
        ),
        "orders.cancel": on(
            pending,
            lambda w, s, k, x: o(w).cancel(w.agent if x else w.buyer, s, idempotency_key=k),
        ),
        "refunds.request": on(
            lambda w: w.order(upto="completed").id,
            lambda w, s, k, x: r(w).request(
                w.buyer, s, reason="other" if x else "wrong", idempotency_key=k
            ),
        ),
        "refunds.approve": on(
            lambda w: w.refund().id,
            lambda w, s, k, x: r(w).approve(w.lead if x else w.agent, s, idempotency_key=k),
        ),
        "refunds.approve-failing-payout": on(
            lambda w: w.refund(token="tok_refund_fails").id,
            lambda w, s, k, x: r(w).approve(w.agent, s, note="n" if x else None, idempotency_key=k),
        ),
        "refunds.reject": on(
            lambda w: w.refund().id,
            lambda w, s, k, x: r(w).reject(
                w.agent, s, reason="reason two" if x else "reason one", idempotency_key=k
            ),
        ),
        "refunds.withdraw": on(
            lambda w: w.refund().id,
            lambda w, s, k, x: r(w).withdraw(w.other_buyer if x else w.buyer, s, idempotency_key=k),
        ),
        "platform_events.purchased": lambda w: (
            lambda k: w.flow.platform_events.purchased(
                w.system,
                platform="sandbox",
                transaction_id="t1",
                sku="gems",
                user_id="u1",
                idempotency_key=k,
            ),
            lambda k: w.flow.platform_events.purchased(
                w.system,
                platform="sandbox",
                transaction_id="t1",
                sku="no_ads",
                user_id="u1",
                idempotency_key=k,
            ),
        ),
        "platform_events.refunded": on(
            lambda w: w.refund().order_id,
            lambda w, s, k, x: w.flow.platform_events.refunded(
                w.system, s, reason="b" if x else "a", idempotency_key=k
            ),
        ),
        "platform_events.review_requested": on(
            lambda w: w.order().id,
            lambda w, s, k, x: w.flow.platform_events.review_requested(
                w.system,
                s,
                reason="b" if x else "a",
                review_due=w.clock.now() + timedelta(hours=6),
                idempotency_key=k,
            ),
        ),
        "platform_events.refund_declined": on(
            lambda w: w.refund().order_id,
            lambda w, s, k, x: w.flow.platform_events.refund_declined(
                w.system, s, reason="b" if x else "a", idempotency_key=k
            ),
        ),
        "platform_events.refund_reversed": on(
            lambda w: w.flow.refunds.approve(w.lead, w.refund().id).order_id,
            lambda w, s, k, x: w.flow.platform_events.refund_reversed(
                w.system, s, reason="b" if x else "a", idempotency_key=k
            ),
        ),
        "feedback.submit": lambda w: (
            lambda k: f(w).submit(w.buyer, rating=4, body="nice", idempotency_key=k),
            lambda k: f(w).submit(w.buyer, rating=5, body="nice", idempotency_key=k),
        ),
        "feedback.answer": on(
            lambda w: w.ticket().id,
            lambda w, s, k, x: f(w).answer(w.agent, s, body="b" if x else "a", idempotency_key=k),
        ),
        "feedback.resolve": on(
            lambda w: w.ticket(upto="answered").id,
            lambda w, s, k, x: f(w).resolve(w.agent, s, note="b" if x else None, idempotency_key=k),
        ),
        "feedback.reopen": on(
            lambda w: w.ticket(upto="resolved").id,
            lambda w, s, k, x: f(w).reopen(w.buyer, s, body="b" if x else "a", idempotency_key=k),
        ),
        "feedback.ask_buyer": on(
            lambda w: w.ticket().id,
            lambda w, s, k, x: f(w).ask_buyer(
                w.agent, s, body="b" if x else "a", idempotency_key=k
            ),
        ),
        "feedback.buyer_reply": on(
            lambda w: f(w).ask_buyer(w.agent, w.ticket().id, body="which device?").id,
            lambda w, s, k, x: f(w).buyer_reply(
                w.buyer, s, body="b" if x else "a", idempotency_key=k
            ),
        ),
        "feedback.explain": on(
            lambda w: f(w).submit(w.buyer, rating=1, body="late").id,
            lambda w, s, k, x: f(w).explain(
                w.buyer, s, reason="other" if x else "slow_delivery", idempotency_key=k
            ),
        ),
    }


IDEMPOTENT = _idem_cases()


def test_every_command_with_a_key_is_covered() -> None:
    """Every public command that takes ``idempotency_key`` has a case above."""
    import inspect

    from iap_flow.services.catalogue import Catalogue
    from iap_flow.services.feedback import Feedback
    from iap_flow.services.orders import Orders
    from iap_flow.services.platform_events import PlatformEvents
    from iap_flow.services.refunds import Refunds

    keyed = {
        f"{area}.{name}"
        for area, cls in [
            ("catalogue", Catalogue),
            ("orders", Orders),
            ("refunds", Refunds),
            ("feedback", Feedback),
            ("platform_events", PlatformEvents),
        ]
        for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and "idempotency_key" in inspect.signature(fn).parameters
    }
    covered = {name.split("-")[0] for name in IDEMPOTENT}
    assert keyed <= covered, keyed - covered


@pytest.mark.parametrize("case", sorted(IDEMPOTENT))
def test_a_repeat_returns_the_first_result_and_writes_nothing(world: Any, case: str) -> None:
    call, other = IDEMPOTENT[case](world)
    first = call("key-1")
    before = world.snapshot()
    sent, ledger = len(world.notifier.sent), list(world.platform.ledger)
    again = call("key-1")
    assert again == first
    assert world.snapshot() == before
    assert (len(world.notifier.sent), world.platform.ledger) == (sent, ledger)
    with pytest.raises(IdempotencyKeyReused, match="key-1"):
        other("key-1")
    assert world.snapshot() == before
    assert (len(world.notifier.sent), world.platform.ledger) == (sent, ledger)


def test_a_platform_notification_delivered_twice_changes_nothing(world: Any) -> None:
    """Store notifications carry no key of ours: the transaction id is what makes them once."""
    pe = world.flow.platform_events
    args: dict[str, Any] = {"platform": "sandbox", "transaction_id": "t1", "sku": "gems"}
    first = pe.purchased(SYSTEM, user_id="u1", **args)
    before = world.snapshot()
    assert pe.purchased(SYSTEM, user_id="u1", **args) == first
    assert world.snapshot() == before
    refunded = pe.refunded(SYSTEM, first.id, reason="chargeback")
    before = world.snapshot()
    assert pe.refunded(SYSTEM, first.id, reason="chargeback") == refunded
    assert world.snapshot() == before


def test_a_key_is_not_shared_across_actors(world: Any) -> None:
    world.flow.orders.place(world.buyer, "gems", idempotency_key="tap-1")
    before = world.snapshot()
    with pytest.raises(IdempotencyKeyReused):
        world.flow.orders.place(world.other_buyer, "gems", idempotency_key="tap-1")
    assert world.snapshot() == before


def test_a_refused_command_does_not_use_up_its_key(world: Any) -> None:
    order = world.order(upto="pending_payment")
    with pytest.raises(IapFlowError):
        world.flow.orders.complete(world.buyer, order.id, idempotency_key="k")
    world.flow.orders.pay(world.buyer, order.id, token="tok_approve")
    world.flow.orders.deliver(SYSTEM, order.id)
    done = world.flow.orders.complete(world.buyer, order.id, idempotency_key="k")
    assert done.status is OrderStatus.COMPLETED


# -- a process killed at the worst moments ------------------------------------------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the conftest's START: the child's clock


class ExitOnSend:
    """A notifier whose process dies the moment it is asked to send."""

    def send(self, notification: Any) -> None:
        os._exit(17)


def _die(db: str, where: str, order_id: str) -> None:
    """Child process: pay ``order_id`` and die ``where`` the command is."""
    flow = open_flow(f"sqlite:///{db}", clock=ManualClock(T0), notifier=ExitOnSend(), seed=3)
    if where == "inside-transaction":  # the outbox write runs inside the payment's transaction
        from iap_flow.services.context import Context

        Context.notify = lambda *a, **k: os._exit(17)  # type: ignore[method-assign]
    flow.orders.pay(Actor.buyer("u1"), order_id, token="tok_approve")
    os._exit(0)  # not reached: the notifier (or the outbox write) ends the process


@pytest.mark.parametrize("where", ["after-commit", "inside-transaction"])
def test_a_killed_process_loses_nothing_committed_and_half_writes_nothing(
    file_world: Any, where: str
) -> None:
    w = file_world
    order = w.order(upto="pending_payment")
    child = multiprocessing.get_context("spawn").Process(
        target=_die, args=(w.flow.store.path, where, order.id)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 17
    after = w.flow.orders.get(SYSTEM, order.id)
    trail = [e.event for e in w.flow.history(SYSTEM, order.id)]
    if where == "inside-transaction":
        assert (after.status, trail) == (OrderStatus.PENDING_PAYMENT, ["place"])
        assert w.flow.deliver_notifications() == 0
        return
    assert (after.status, trail) == (OrderStatus.PAID, ["place", "pay"])
    assert w.flow.deliver_notifications() == 0  # the dead process's claim still stands
    w.advance(seconds=61)
    assert w.flow.deliver_notifications() == 1
    assert [(n.topic, n.payload["order_id"]) for n in w.notifier.sent] == [("order.paid", order.id)]
