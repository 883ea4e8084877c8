"""Three refund requests: one approved and paid out, one rejected, one above an agent's limit.

Run: python examples/refund_approved_and_rejected.py
"""

from datetime import UTC, datetime, timedelta

import iap_flow
from iap_flow import SYSTEM, Actor, Money
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform

clock = iap_flow.ManualClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))
inbox = MemoryNotifier()
sandbox = SandboxPlatform()  # the token chooses the outcome; keeps a ledger of money moved
flow = iap_flow.open_flow("sqlite://", platforms=[sandbox], clock=clock, notifier=inbox, seed=11)

pm = Actor("pm_ana", "product_manager")
buyer = Actor.buyer("user_9")
agent, lead = Actor.agent("agent_bo"), Actor.lead("lead_cy")
for sku, kind, cents in [("gems_100", "consumable", 199), ("lifetime_pro", "non_consumable", 7999)]:
    flow.catalogue.add(
        pm, sku=sku, title=sku, description="-", price=Money(cents, "USD"), kind=kind
    )


def bought(sku: str) -> str:
    """A paid and delivered order of ``sku`` for user_9; returns its id."""
    order = flow.orders.place(buyer, sku)
    order = flow.orders.pay(buyer, order.id, token="tok_approve")
    return flow.orders.deliver(SYSTEM, order.id).id


def status(order_id: str) -> str:
    return flow.orders.get(agent, order_id).status


# 1. Approved by an agent: the sandbox platform pays the buyer back, the buyer is told.
order_id = bought("gems_100")
clock.advance(timedelta(hours=2))
refund = flow.refunds.request(buyer, order_id, reason="Bought twice by mistake")
due = f"{refund.review_due_at:%d %b %H:%M}"
print(f"user_9 asked for {refund.amount} back: refund {refund.status}, review due {due}")
refund = flow.refunds.approve(agent, refund.id, note="Duplicate purchase")
print(f"agent_bo approved it: refund {refund.status}, order {status(order_id)}")
paid_back = sandbox.refunded(order_id)
print(f"  sandbox ledger: {len(paid_back)} refund of {paid_back[0].amount} for this order")
print(f"  user_9 notified: {inbox.to('user_9')[-1].topic}")
try:  # a second agent clicks "reject" on the same request a moment later
    flow.refunds.reject(Actor.agent("agent_di"), refund.id, reason="Looks abusive")
except iap_flow.AlreadyDecided as exc:
    print(f"  agent_di was too late: AlreadyDecided, decided by {exc.decided_by}, {exc.state}")

# 2. Rejected with a reason the buyer reads.
order_id = bought("gems_100")
refund = flow.refunds.request(buyer, order_id, reason="Changed my mind")
refund = flow.refunds.reject(agent, refund.id, reason="The gems were already spent")
print(f"second request rejected: refund {refund.status}, order {status(order_id)}")
note = inbox.to("user_9")[-1]
print(f"  user_9 notified: {note.topic}: {note.payload['reason']}")

# 3. Above the agent's limit (50.00 USD by default): an agent cannot approve; a lead can.
order_id = bought("lifetime_pro")
refund = flow.refunds.request(buyer, order_id, reason="The app crashes on my phone")
try:
    flow.refunds.approve(agent, refund.id)
except iap_flow.ApprovalLimitExceeded as exc:
    print(f"agent_bo may not approve {exc.amount}: ApprovalLimitExceeded (limit {exc.limit})")
refund = flow.refunds.approve(lead, refund.id, note="Known crash on that model")
print(f"lead_cy approved it: refund {refund.status}, order {status(order_id)}")

print("Audit trail of the over-limit refund:")
for e in flow.history(lead, refund.id):
    print(f"  {e.event}: {e.from_state or '-'} -> {e.to_state} by {e.role} {e.actor_id}")
refunds = [entry for entry in sandbox.ledger if entry.kind == "refund"]
orders = {entry.order_id for entry in refunds}
print(f"money paid back by the platform: {len(refunds)} refunds for {len(orders)} orders")
flow.close()
