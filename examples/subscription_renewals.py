"""A monthly subscription: the first order, then renewals linked to it, one of them declined.

Run: python examples/subscription_renewals.py
"""

from datetime import UTC, datetime, timedelta

from iap_flow import SYSTEM, Actor, ManualClock, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform

clock = ManualClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
inbox = MemoryNotifier()
sandbox = SandboxPlatform()  # deterministic: the token chooses the outcome; keeps a ledger
flow = open_flow("sqlite://", platforms=[sandbox], clock=clock, notifier=inbox, seed=3)

pm = Actor("pm_ana", "product_manager")
buyer = Actor.buyer("user_7")
flow.catalogue.add(
    pm,
    sku="pro_monthly",
    title="Pro, monthly",
    description="Every pro feature, billed each month",
    price=Money(499, "USD"),
    kind="subscription",
    period="month",
)

# The first order starts the subscription; its id is the subscription's id.
first = flow.orders.place(buyer, "pro_monthly")
first = flow.orders.pay(buyer, first.id, token="tok_approve")
first = flow.orders.deliver(SYSTEM, first.id)  # pro features switched on
print(f"15 Jan: user_7 subscribed to pro_monthly for {first.amount}: first order {first.status}")

# Each month the store (here the SYSTEM actor, e.g. your billing job) charges a renewal:
# a new order linked to the first. One key per period makes a repeated job charge once.
tokens = {"Feb": "tok_approve", "Mar": "tok_decline", "Apr": "tok_approve"}
for month, token in tokens.items():
    clock.advance(timedelta(days=30))
    renewal = flow.orders.renew(
        SYSTEM, first.id, token=token, idempotency_key=f"{first.id}:{month}"
    )
    linked = renewal.subscription_id == first.id
    print(
        f"{month}: renewal {renewal.status}, {renewal.amount}, linked to the first order: {linked}"
    )
    if renewal.status == "paid":
        flow.orders.deliver(SYSTEM, renewal.id)  # the next month of pro features
    else:
        note = inbox.to("user_7")[-1]
        print(f"  user_7 notified: {note.topic} ({note.payload['reason']})")

# The billing job runs twice for April (a retry after a timeout, say): same key, same order.
repeat = flow.orders.renew(SYSTEM, first.id, token="tok_approve", idempotency_key=f"{first.id}:Apr")
print(f"Apr again with the same key: the same renewal order: {repeat.id == renewal.id}")

# Every order of the subscription, oldest first.
orders = flow.orders.query(buyer, limit=50).items
subscription = [o for o in orders if first.id in (o.id, o.subscription_id)]
print("The subscription's orders:")
for order in reversed(subscription):
    kind = "first order" if order.subscription_id is None else "renewal"
    print(f"  {order.created_at:%d %b}: {kind}, {order.status}")

charges = [entry for entry in sandbox.ledger if entry.kind == "charge"]
print(f"money moved: {len(charges)} charges of {charges[0].amount} (the declined one moved none)")
flow.close()
