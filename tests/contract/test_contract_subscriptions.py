"""Subscriptions and entitlements through the public API, the same on every store: every
transition of the subscription machine, renewals, refunds, plan changes and the sweep."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import timedelta

import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    Flow,
    ManualClock,
    Money,
    PermissionDenied,
    ProductKind,
    Subscription,
    SubscriptionStatus,
    TransitionNotAllowed,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.domain.transitions import SUBSCRIPTION

BUYER = Actor.buyer("u1")
OTHER = Actor.buyer("u2")
AGENT = Actor.agent("a1")
LEAD = Actor.lead("l1")
PM = Actor("pm", "product_manager")


def subscribe(flow: Flow, sku: str = "club", buyer: Actor = BUYER) -> Subscription:
    order = flow.orders.place(buyer, sku)
    flow.orders.pay(buyer, order.id, token="tok_approve")
    return flow.subscriptions.for_order(SYSTEM, order.id)


def renew(flow: Flow, sub: Subscription) -> object:
    """A paid renewal: charged by the flow, or (expired: the flow never charges an ended
    subscription) the buyer resubscribing at the store on the same original purchase."""
    if sub.status is not SubscriptionStatus.EXPIRED:
        return flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_approve")
    first = flow.orders.get(SYSTEM, sub.first_order_id)
    return flow.platform_events.purchased(
        SYSTEM,
        platform=first.platform,
        transaction_id=f"resubscribe_{sub.id}",
        sku=sub.sku,
        original_transaction_id=first.platform_transaction_id,
    )


def fire(flow: Flow, clock: ManualClock, sub: Subscription, event: str) -> Subscription:
    """Drive ``event`` on ``sub`` through the public command that fires it."""
    subs = flow.subscriptions
    soon = clock.now() + timedelta(days=3)
    commands: dict[str, Callable[[], object]] = {
        "renew": lambda: renew(flow, sub),
        "recover": lambda: subs.recovered(SYSTEM, sub.id),
        "enter_grace": lambda: subs.renewal_failed(SYSTEM, sub.id, grace_until=soon),
        "hold": lambda: subs.renewal_failed(SYSTEM, sub.id),
        "pause": lambda: subs.paused(SYSTEM, sub.id),
        "resume": lambda: subs.resumed(SYSTEM, sub.id),
        "cancel": lambda: subs.cancelled(SYSTEM, sub.id),
        "uncancel": lambda: subs.uncancelled(SYSTEM, sub.id),
        "expire": lambda: subs.expired(SYSTEM, sub.id),
        "revoke": lambda: subs.revoked(SYSTEM, sub.id, reason="family sharing withdrawn"),
    }
    commands[event]()
    return flow.subscriptions.get(SYSTEM, sub.id)


def path_to(state: str) -> list[str]:
    """The shortest event sequence from the initial state to ``state`` (from the table)."""
    seen = {SUBSCRIPTION.initial.value: []}
    queue = deque([SUBSCRIPTION.initial.value])
    while queue:
        current = queue.popleft()
        for (source, event), target in SUBSCRIPTION.targets.items():
            if source == current and target.value not in seen:
                seen[target.value] = [*seen[current], event]
                queue.append(target.value)
    return seen[state]


TRANSITIONS = sorted((s, e, t.value) for (s, e), t in SUBSCRIPTION.targets.items())


@pytest.fixture
def plans(flow: Flow) -> Flow:
    flow.catalogue.add(
        PM,
        sku="club_plus",
        title="Club+",
        description="monthly, more",
        price=Money(1_999, "USD"),
        kind="subscription",
        period="month",
    )
    flow.catalogue.add(
        PM,
        sku="club_lite",
        title="Club lite",
        description="monthly, less",
        price=Money(499, "USD"),
        kind="subscription",
        period="month",
    )
    flow.catalogue.add(
        PM,
        sku="no_ads",
        title="No ads",
        description="forever",
        price=Money(299, "USD"),
        kind="non_consumable",
    )
    return flow


def test_every_subscription_transition(flow: Flow, clock: ManualClock) -> None:
    """Each (state, event) the machine allows, on a subscription of its own buyer, reached
    from a fresh subscription by the shortest path of store events."""
    for n, (state, event, target) in enumerate(TRANSITIONS):
        buyer = Actor.buyer(f"t{n}")
        sub = subscribe(flow, buyer=buyer)
        for step in path_to(state):
            sub = fire(flow, clock, sub, step)
        assert sub.status == state
        before = len(flow.history(SYSTEM, sub.id))
        after = fire(flow, clock, sub, event)
        assert after.status == target, (state, event)
        trail = flow.history(SYSTEM, sub.id)
        assert len(trail) == before + 1
        last = trail[-1]
        assert (last.event, last.from_state, last.to_state, last.actor_id) == (
            event,
            state,
            target,
            "system",
        )
        entitled = [e.sku for e in flow.entitlements.active(SYSTEM, buyer.id)]
        assert (entitled == ["club"]) == (target in ("active", "cancelled", "in_grace_period"))
    assert {(s, e) for s, e, _ in TRANSITIONS} == set(SUBSCRIPTION.targets)


def test_events_not_allowed_are_refused_and_change_nothing(flow: Flow, clock: ManualClock) -> None:
    for n, status in enumerate(SubscriptionStatus):
        state = status.value
        sub = subscribe(flow, buyer=Actor.buyer(f"r{n}"))
        for step in path_to(state):
            sub = fire(flow, clock, sub, step)
        # renew is an order (charged first), refused for a revoked one by the order rules
        refused = [
            e
            for e in SUBSCRIPTION.events
            if (state, e) not in SUBSCRIPTION.targets and e != "renew"
        ]
        trail = flow.history(SYSTEM, sub.id)
        for event in refused:
            with pytest.raises(TransitionNotAllowed):
                fire(flow, clock, sub, event)
        assert flow.history(SYSTEM, sub.id) == trail
        assert flow.subscriptions.get(SYSTEM, sub.id) == sub


def test_paid_order_starts_a_subscription_and_entitles_until_the_period_end(
    flow: Flow, clock: ManualClock, notifier: MemoryNotifier
) -> None:
    sub = subscribe(flow)
    assert sub.status is SubscriptionStatus.ACTIVE
    assert sub.period_end == sub.period_start.replace(month=sub.period_start.month + 1)
    [ent] = flow.entitlements.active(BUYER, "u1")
    assert (ent.sku, ent.kind, ent.expires_at, ent.subscription_id) == (
        "club",
        ProductKind.SUBSCRIPTION,
        sub.period_end,
        sub.id,
    )
    assert ent.source_order_id == sub.first_order_id
    assert ent.subscription_status is SubscriptionStatus.ACTIVE
    topics = [n.topic for n in notifier.sent]
    assert "subscription.active" in topics and "entitlement.granted" in topics
    assert [d.kind.value for d in flow.pending_deadlines(SYSTEM, sub.id)] == [
        "subscription_period_end"
    ]


def test_renewal_extends_from_the_period_end_and_the_sweep_expires_the_unrenewed(
    flow: Flow, clock: ManualClock
) -> None:
    sub = subscribe(flow)
    clock.advance(timedelta(days=29))
    renewal = flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_approve")
    renewed = flow.subscriptions.get(SYSTEM, sub.id)
    assert renewed.period_start == sub.period_end
    assert renewed.latest_order_id == renewal.id
    [ent] = flow.entitlements.active(SYSTEM, "u1")
    assert ent.expires_at == renewed.period_end and ent.source_order_id == renewal.id
    clock.advance(renewed.period_end - clock.now())  # access ends at the period end...
    assert flow.entitlements.active(SYSTEM, "u1") == []
    assert flow.sweep().expired == 0  # ...the record waits the leeway for the store's word
    clock.advance(flow.policy.subscription_expiry_leeway)
    assert flow.sweep().expired == 1
    assert flow.subscriptions.get(SYSTEM, sub.id).status is SubscriptionStatus.EXPIRED
    assert flow.sweep().expired == 0


def test_declined_renewal_grace_then_hold_then_recovery(
    flow: Flow, clock: ManualClock, notifier: MemoryNotifier
) -> None:
    sub = subscribe(flow)
    clock.advance(timedelta(days=30))
    flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_decline")
    grace = flow.subscriptions.get(SYSTEM, sub.id)
    assert grace.status is SubscriptionStatus.IN_GRACE_PERIOD
    assert grace.grace_until == max(sub.period_end, clock.now()) + flow.policy.subscription_grace
    [ent] = flow.entitlements.active(BUYER, "u1")
    assert ent.expires_at == grace.grace_until
    assert grace.grace_until is not None
    clock.advance(grace.grace_until - clock.now())
    assert flow.sweep().expired == 1
    held = flow.subscriptions.get(SYSTEM, sub.id)
    assert held.status is SubscriptionStatus.ON_HOLD
    assert flow.entitlements.active(BUYER, "u1") == []
    assert "entitlement.revoked" in [n.topic for n in notifier.sent]
    flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_approve")
    back = flow.subscriptions.get(SYSTEM, sub.id)
    assert back.status is SubscriptionStatus.ACTIVE and back.period_start == clock.now()
    assert [e.sku for e in flow.entitlements.active(BUYER, "u1")] == ["club"]


def test_hold_that_is_never_recovered_expires(flow: Flow, clock: ManualClock) -> None:
    sub = subscribe(flow)
    flow.subscriptions.renewal_failed(SYSTEM, sub.id)
    clock.advance(flow.policy.subscription_hold)
    assert flow.sweep().expired == 1
    assert flow.subscriptions.get(SYSTEM, sub.id).status is SubscriptionStatus.EXPIRED


def test_cancelled_keeps_access_until_the_period_end(flow: Flow, clock: ManualClock) -> None:
    sub = subscribe(flow)
    cancelled = flow.subscriptions.cancelled(SYSTEM, sub.id)
    assert cancelled.auto_renew is False
    assert [e.expires_at for e in flow.entitlements.active(BUYER, "u1")] == [sub.period_end]
    clock.advance(sub.period_end - clock.now() + flow.policy.subscription_expiry_leeway)
    flow.sweep()
    assert flow.subscriptions.get(SYSTEM, sub.id).status is SubscriptionStatus.EXPIRED


def test_refund_of_the_current_period_revokes_and_the_past_still_shows_it(
    plans: Flow, clock: ManualClock, notifier: MemoryNotifier
) -> None:
    flow = plans
    sub = subscribe(flow)
    ads = flow.orders.place(BUYER, "no_ads")
    flow.orders.pay(BUYER, ads.id, token="tok_approve")
    assert [e.sku for e in flow.entitlements.active(BUYER, "u1")] == ["club", "no_ads"]
    clock.advance(timedelta(days=2))
    before_refund = clock.now()
    clock.advance(timedelta(hours=1))
    for order_id in (sub.first_order_id, ads.id):
        refund = flow.refunds.request(BUYER, order_id, reason="did not want it")
        flow.refunds.approve(LEAD, refund.id)
    assert flow.subscriptions.get(SYSTEM, sub.id).status is SubscriptionStatus.REVOKED
    assert flow.entitlements.active(BUYER, "u1") == []
    then = flow.entitlements.active(AGENT, "u1", at=before_refund)
    assert [e.sku for e in then] == ["club", "no_ads"]
    assert then[0].subscription_status is SubscriptionStatus.ACTIVE
    revoked = [n.payload for n in notifier.sent if n.topic == "entitlement.revoked"]
    assert [p["sku"] for p in revoked] == ["club"]
    refunded = [n.payload["order_id"] for n in notifier.sent if n.topic == "refund.succeeded"]
    assert refunded == [sub.first_order_id, ads.id]


def test_consumables_are_reported_as_delivered_units(flow: Flow) -> None:
    orders = [flow.orders.place(BUYER, "gems") for _ in range(3)]
    for order in orders:
        flow.orders.pay(BUYER, order.id, token="tok_approve")
    for order in orders[:2]:
        flow.orders.deliver(SYSTEM, order.id)
    [gems] = flow.entitlements.active(BUYER, "u1")
    assert (gems.kind, gems.units, gems.source_order_id) == (
        ProductKind.CONSUMABLE,
        2,
        max(o.id for o in orders[:2]),
    )


def test_upgrade_at_once_downgrade_at_the_next_renewal(plans: Flow, clock: ManualClock) -> None:
    flow = plans
    sub = subscribe(flow)
    up = flow.subscriptions.plan_changed(SYSTEM, sub.id, sku="club_plus")
    assert (up.sku, up.pending_sku) == ("club_plus", None)
    assert [e.sku for e in flow.entitlements.active(BUYER, "u1")] == ["club_plus"]
    down = flow.subscriptions.plan_changed(SYSTEM, sub.id, sku="club_lite")
    assert (down.sku, down.pending_sku) == ("club_plus", "club_lite")
    flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_approve")
    renewed = flow.subscriptions.get(SYSTEM, sub.id)
    assert (renewed.sku, renewed.pending_sku) == ("club_lite", None)
    assert [e.event for e in flow.history(SYSTEM, sub.id)][-3:] == [
        "change_plan",
        "change_plan",
        "renew",
    ]


def test_buyers_see_their_own_staff_see_any(flow: Flow) -> None:
    subscribe(flow)
    with pytest.raises(PermissionDenied):
        flow.entitlements.active(OTHER, "u1")
    assert flow.entitlements.active(OTHER, "u2") == []
    assert len(flow.entitlements.active(AGENT, "u1")) == 1
    with pytest.raises(PermissionDenied):
        flow.subscriptions.for_user(OTHER, "u1")
    with pytest.raises(PermissionDenied):
        flow.subscriptions.cancelled(BUYER, flow.subscriptions.for_user(BUYER, "u1")[0].id)


def test_store_renewal_by_original_transaction_extends(flow: Flow, clock: ManualClock) -> None:
    first = flow.platform_events.purchased(
        SYSTEM, platform="sandbox", transaction_id="t_1", sku="club", user_id="u1"
    )
    sub = flow.subscriptions.for_order(SYSTEM, first.id)
    clock.advance(timedelta(days=30))
    again = flow.platform_events.purchased(
        SYSTEM,
        platform="sandbox",
        transaction_id="t_2",
        sku="club",
        original_transaction_id="t_1",
    )
    renewed = flow.subscriptions.get(SYSTEM, sub.id)
    assert renewed.latest_order_id == again.id
    assert renewed.period_start == sub.period_end


def test_sandbox_billing_renews_fails_into_grace_and_recovers(
    flow: Flow, clock: ManualClock
) -> None:
    from iap_flow.adapters.sandbox import APPROVE, DECLINE, SandboxBilling

    sub = subscribe(flow)
    billing = SandboxBilling(flow)
    billing.track(sub.first_order_id, [APPROVE, DECLINE, DECLINE, APPROVE])
    assert billing.run() == []  # nothing due yet
    seen = []
    for _ in range(4):
        clock.advance(timedelta(days=31))
        billing.run()
        seen.append(flow.subscriptions.get(SYSTEM, sub.id).status.value)
        flow.sweep()
    assert seen == ["active", "in_grace_period", "in_grace_period", "active"]
    events = [e.event for e in flow.history(SYSTEM, sub.id)]
    assert events[:3] == ["start", "renew", "enter_grace"]
    assert events[-1] == "renew" and "hold" in events


@pytest.mark.parametrize("end", ["expire", "revoke"])
def test_renewing_an_ended_subscription_is_refused_before_any_charge(
    store_url: str, clock: ManualClock, end: str
) -> None:
    from iap_flow import open_flow
    from iap_flow.adapters.sandbox import SandboxPlatform

    sandbox = SandboxPlatform()
    with open_flow(store_url, platforms=[sandbox], clock=clock, seed=3) as flow:
        flow.catalogue.add(PM, sku="club", title="Club", description="monthly", price=Money(999, "USD"), kind="subscription", period="month")  # fmt: skip
        sub = fire(flow, clock, subscribe(flow), end)
        charges = len(sandbox.ledger)
        with pytest.raises(TransitionNotAllowed, match=f"renew subscription {sub.id}"):
            flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_approve")
        with pytest.raises(TransitionNotAllowed):  # with a key too, and nothing remembered
            flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_approve", idempotency_key="k")
        assert len(sandbox.ledger) == charges  # the platform was never asked
        assert flow.subscriptions.get(SYSTEM, sub.id).status.value == sub.status.value
        assert len(flow.orders.query(SYSTEM, user_id="u1").items) == 1


def test_sandbox_billing_through_cancel_and_expiry(flow: Flow, clock: ManualClock) -> None:
    from iap_flow.adapters.sandbox import APPROVE, SandboxBilling

    sub = subscribe(flow)
    billing = SandboxBilling(flow)
    billing.track(sub.first_order_id, [APPROVE, APPROVE])
    clock.advance(timedelta(days=31))
    assert len(billing.run()) == 1
    flow.subscriptions.cancelled(SYSTEM, sub.id)
    clock.advance(timedelta(days=31))
    assert billing.run() == []  # auto-renew off: the store charges nothing
    flow.sweep()
    assert flow.subscriptions.get(SYSTEM, sub.id).status is SubscriptionStatus.EXPIRED
    clock.advance(timedelta(days=31))
    assert billing.run() == []  # ended: never charged again
    assert flow.entitlements.active(BUYER, "u1") == []


def test_the_analysis_report_counts_subscriptions_mrr_renewals_churn_and_recoveries(
    flow: Flow, clock: ManualClock
) -> None:
    from iap_flow.analysis import analyse

    flow.catalogue.add(PM, sku="club_year", title="Club year", description="yearly", price=Money(10_000, "USD"), kind="subscription", period="year")  # fmt: skip
    flow.catalogue.add(PM, sku="club_week", title="Club week", description="weekly", price=Money(299, "USD"), kind="subscription", period="week")  # fmt: skip
    flow.catalogue.add(PM, sku="club_cn", title="Club CN", description="monthly", price=Money(6_000, "CNY"), kind="subscription", period="month")  # fmt: skip
    monthly = subscribe(flow, "club", Actor.buyer("m1"))  # 9.99 USD a month
    subscribe(flow, "club_year", Actor.buyer("y1"))  # 100 USD a year: 8.333.. a month
    subscribe(flow, "club_week", Actor.buyer("w1"))  # 2.99 a week: 12.956.. a month
    subscribe(flow, "club_cn", Actor.buyer("c1"))
    leaving = subscribe(flow, "club", Actor.buyer("v1"))
    failing = subscribe(flow, "club", Actor.buyer("f1"))
    recovering = subscribe(flow, "club", Actor.buyer("g1"))
    flow.subscriptions.cancelled(SYSTEM, leaving.id)
    clock.advance(timedelta(days=31))
    flow.orders.renew(SYSTEM, monthly.first_order_id, token="tok_approve")
    for sub in (failing, recovering):
        flow.orders.renew(SYSTEM, sub.first_order_id, token="tok_decline")  # into grace
    flow.orders.renew(SYSTEM, recovering.first_order_id, token="tok_approve")
    flow.subscriptions.renewal_failed(SYSTEM, failing.id)  # on hold
    flow.subscriptions.expired(SYSTEM, failing.id)
    flow.subscriptions.expired(SYSTEM, leaving.id)  # the store: it reached its period end
    report = analyse(flow, Actor("dev", "developer")).subscriptions
    usd, cny = sorted(report.by_currency, key=lambda c: c.currency != "USD")
    assert (usd.currency, usd.active, usd.in_grace, usd.cancelled) == ("USD", 4, 0, 0)
    # 999 + 999 (monthly, recovered) + 10000 / 12 + 299 * 52 / 12, in cents, half up
    assert usd.mrr == Money((999 * 12 * 2 + 10_000 + 299 * 52 + 6) // 12, "USD")
    assert (cny.active, cny.mrr) == (1, Money(6_000, "CNY"))
    assert report.active == 5
    assert (report.started, report.renewals) == (7, 2)
    assert report.renewal_revenue == (Money(1998, "USD"),)
    assert (report.voluntary_churn, report.involuntary_churn, report.revoked) == (1, 1, 0)
    assert (report.entered_grace, report.grace_recoveries) == (2, 1)
    assert report.grace_recovery_rate == 0.5
    after = clock.now() + timedelta(seconds=1)
    later = analyse(flow, Actor("dev", "developer"), since=after).subscriptions
    assert (later.started, later.renewals, later.voluntary_churn) == (0, 0, 0)
