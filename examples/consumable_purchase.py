"""A consumable purchase from the catalogue to completion, then the buyer's orders queried.

Run: python examples/consumable_purchase.py
"""

from datetime import UTC, datetime, timedelta

from iap_flow import SYSTEM, Actor, ManualClock, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier

clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # moves only when told to
inbox = MemoryNotifier()  # keeps every notification the flow sends, in order
flow = open_flow("sqlite://", clock=clock, notifier=inbox, seed=7)

pm = Actor("pm_ana", "product_manager")
buyer = Actor.buyer("user_42")

# 1. A product manager puts gems on the catalogue (prices in cents: 199 = 1.99 USD).
for sku, title, cents in [("gems_100", "100 gems", 199), ("gems_550", "550 gems", 999)]:
    flow.catalogue.add(
        pm,
        sku=sku,
        title=title,
        description="Spend them in the shop",
        price=Money(cents, "USD"),
        kind="consumable",
    )
print("Catalogue:")
for product in flow.catalogue.products():
    print(f"  {product.sku}: {product.title}, {product.price} ({product.kind})")

# 2. The buyer taps "buy". The idempotency key makes a double tap place one order, not two.
order = flow.orders.place(buyer, "gems_100", idempotency_key="tap-7f3a")
again = flow.orders.place(buyer, "gems_100", idempotency_key="tap-7f3a")
print(f"user_42 tapped buy on gems_100: order {order.status}, {order.amount} to pay")
print(f"a double tap with the same key returned the same order: {again.id == order.id}")

# 3. The payment platform charges the buyer; the buyer is told through the notifier.
clock.advance(timedelta(seconds=30))
order = flow.orders.pay(buyer, order.id, token="tok_approve")
print(f"the {order.platform} platform took the money: order {order.status}")
for note in inbox.to("user_42"):
    print(
        f"  buyer notified: {note.topic} ({note.payload['title']}, {note.payload['amount']} cents)"
    )

# 4. Your backend grants the gems, then confirms the buyer has them.
order = flow.orders.deliver(SYSTEM, order.id)
print(f"gems granted: order {order.status}")
order = flow.orders.complete(buyer, order.id)
print(f"buyer has the gems: order {order.status}")

# 5. The next day a second purchase is declined by the card issuer.
clock.advance(timedelta(days=1))
declined = flow.orders.place(buyer, "gems_550")
declined = flow.orders.pay(buyer, declined.id, token="tok_decline")
print(f"next day, gems_550 with a declined card: order {declined.status}")
print(f"  buyer notified: {inbox.sent[-1].topic} ({inbox.sent[-1].payload['reason']})")

# 6. Queries: by status, and by creation time [since, until); newest first, paginated.
done = flow.orders.query(buyer, status="completed")
print(f"user_42's completed orders: {[o.sku for o in done.items]}")
day_one = flow.orders.query(
    buyer, since=datetime(2026, 3, 2, tzinfo=UTC), until=datetime(2026, 3, 3, tzinfo=UTC)
)
print(f"user_42's orders placed on 2 March: {[f'{o.sku} {o.status}' for o in day_one.items]}")
page = flow.orders.query(buyer, limit=1)
rest = flow.orders.query(buyer, limit=1, cursor=page.next_cursor)
print(f"page 1: {page.items[0].sku} {page.items[0].status}; page 2: {rest.items[0].sku}")

# 7. The audit trail: every change, who made it, from which state to which.
print("Audit trail of the first order:")
for event in flow.history(SYSTEM, order.id):
    print(
        f"  {event.at:%H:%M:%S} {event.event}: {event.from_state or '-'} -> {event.to_state}"
        f" by {event.role} {event.actor_id}"
    )
print(f"final status: {flow.orders.get(buyer, order.id).status}")
flow.close()
