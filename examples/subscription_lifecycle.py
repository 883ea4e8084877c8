"""A subscription's whole life and what the buyer may use at each step: subscribe, renew,
a failed renewal with a grace period, recovery, cancel, expiry, and a refund that revokes.

The app backend asks one question on every request: ``flow.entitlements.active(...)``.
The answer is derived from the orders and the subscription when asked, never stored.

Run: python examples/subscription_lifecycle.py
"""

from datetime import UTC, datetime, timedelta

from iap_flow import SYSTEM, Actor, ManualClock, Money, TransitionNotAllowed, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform

clock = ManualClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
inbox = MemoryNotifier()
flow = open_flow("sqlite://", platforms=[SandboxPlatform()], clock=clock, notifier=inbox, seed=5)
pm, buyer, agent, lead = (
    Actor("pm_ana", "product_manager"),
    Actor.buyer("user_8"),
    Actor.agent("agent_bo"),
    Actor.lead("lead_cy"),
)
flow.catalogue.add(
    pm,
    sku="pro_monthly",
    title="Pro, monthly",
    description="Every pro feature, billed each month",
    price=Money(499, "USD"),
    kind="subscription",
    period="month",
)


def has() -> str:
    """What user_8 may use now, as the app backend would ask on a request."""
    found = flow.entitlements.active(buyer, "user_8")
    if not found:
        return "nothing"
    return ", ".join(f"{e.sku} until {e.expires_at:%d %b} ({e.subscription_status})" for e in found)


def told() -> str:
    """The entitlement notifications user_8 received since the last call."""
    topics = [n.topic for n in inbox.to("user_8") if n.topic.startswith("entitlement.")]
    inbox.sent.clear()
    return ", ".join(topics) or "-"


# Subscribe: the paid first order starts the subscription.
first = flow.orders.place(buyer, "pro_monthly")
flow.orders.pay(buyer, first.id, token="tok_approve")
sub = flow.subscriptions.for_order(buyer, first.id)
print(f"15 Jan subscribed: {sub.status}; user_8 has {has()}; told {told()}")

# Renew: the store charges the next month; the period runs on from the last one's end.
clock.advance(timedelta(days=31))
flow.orders.renew(SYSTEM, first.id, token="tok_approve")
print(f"15 Feb renewed: user_8 has {has()}")

# Fail: the March renewal is declined; a grace period keeps access while billing retries.
clock.advance(timedelta(days=28))
flow.orders.renew(SYSTEM, first.id, token="tok_decline")
sub = flow.subscriptions.get(agent, sub.id)
print(f"15 Mar renewal declined: {sub.status}; user_8 has {has()}")

# Grace: the sweep puts it on hold when the grace period ends unrecovered.
clock.advance(timedelta(days=8))
flow.sweep()
sub = flow.subscriptions.get(agent, sub.id)
print(f"23 Mar grace over: {sub.status}; user_8 has {has()}; told {told()}")

# Recover: the store collects the payment after all; access is back for a new month.
flow.subscriptions.recovered(SYSTEM, sub.id)
print(f"23 Mar recovered: user_8 has {has()}; told {told()}")

# Cancel: auto-renew off; access continues to the period end, then the sweep expires it.
sub = flow.subscriptions.cancelled(SYSTEM, sub.id)
print(f"23 Mar auto-renew off: {sub.status}; user_8 has {has()}")
clock.advance(timedelta(days=32))
flow.sweep()
sub = flow.subscriptions.get(agent, sub.id)
print(f"24 Apr past the period end: {sub.status}; user_8 has {has()}")

# Support asks about the past: what did user_8 have on 20 March, in the grace period?
then = flow.entitlements.active(agent, "user_8", at=datetime(2026, 3, 20, tzinfo=UTC))
print(f"on 20 Mar user_8 had: {[(e.sku, str(e.subscription_status)) for e in then]}")

# An ended subscription is never charged again by the flow: the buyer resubscribes at the store.
try:
    flow.orders.renew(SYSTEM, first.id, token="tok_approve")
except TransitionNotAllowed as exc:
    print(f"24 Apr renewal refused before any charge: {exc}")

# Refund revokes: user_8 resubscribes, then is refunded; access ends with the refund.
clock.advance(timedelta(days=1))
paid = flow.orders.get(agent, first.id).platform_transaction_id
flow.platform_events.purchased(
    SYSTEM,
    platform="sandbox",
    transaction_id="resubscribed_25_apr",
    sku="pro_monthly",
    original_transaction_id=paid,  # the store names the subscription's first purchase
)
sub = flow.subscriptions.get(agent, sub.id)
print(f"25 Apr resubscribed: {sub.status}; user_8 has {has()}")
told()
refund = flow.refunds.request(buyer, sub.latest_order_id, reason="charged after I cancelled")
flow.refunds.approve(lead, refund.id)
sub = flow.subscriptions.get(agent, sub.id)
print(f"25 Apr refunded: subscription {sub.status}; user_8 has {has()}; told {told()}")
events = [e.event for e in flow.history(agent, sub.id)]
print(f"the subscription's trail: {' -> '.join(events)}")
flow.close()
