"""A refund review nobody decides: reminded before its 24 h deadline, escalated to a lead after.

Deadlines are rows in the store, written with the change that starts them; ``flow.sweep()``
(run it from cron or a worker loop) acts on the ones that are due. Nothing waits in memory.

Run: python examples/refund_deadline_escalation.py
"""

from datetime import UTC, datetime, timedelta

from iap_flow import Actor, ManualClock, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier

clock = ManualClock(datetime(2026, 6, 1, 8, 0, tzinfo=UTC))
inbox = MemoryNotifier()
flow = open_flow("sqlite://", clock=clock, notifier=inbox, seed=5)
hours = flow.policy.refund_review // timedelta(hours=1)
print(f"a refund review is due {hours} h after the request (the Policy default)")

buyer, lead = Actor.buyer("user_3"), Actor.lead("lead_cy")
flow.catalogue.add(
    Actor("pm_ana", "product_manager"),
    sku="coins_1200",
    title="1,200 coins",
    description="A chest of coins",
    price=Money(1499, "USD"),
    kind="consumable",
)
order = flow.orders.place(buyer, "coins_1200")
order = flow.orders.pay(buyer, order.id, token="tok_approve")
refund = flow.refunds.request(buyer, order.id, reason="Charged but the coins never arrived")
print(f"{clock.now():%d %b %H:%M} user_3 asks for {refund.amount} back: refund {refund.status}")


def sweep_at(hours: int) -> None:
    """Move the clock to ``hours`` after the request and run the sweep, as cron would."""
    clock.set(datetime(2026, 6, 1, 8, 0, tzinfo=UTC) + timedelta(hours=hours))
    before = len(inbox.sent)
    done = flow.sweep()
    print(f"{clock.now():%d %b %H:%M} sweep: {done.reminded} reminded, {done.escalated} escalated")
    for note in inbox.sent[before:]:
        print(f"  {note.topic} -> {note.recipient} ({note.payload['kind']})")


sweep_at(12)  # nothing due yet
sweep_at(18)  # three quarters of the window gone: the agents are reminded
sweep_at(25)  # the deadline passed undecided: a lead is told
sweep_at(26)  # a sweep that runs again does nothing twice

refund = flow.refunds.get(lead, refund.id)
print(f"refund {refund.status}, escalated: {refund.escalated}")
queue = flow.refunds.queue(lead)
print(f"lead_cy's review queue: {[f'{r.amount}, escalated={r.escalated}' for r in queue]}")
refund = flow.refunds.approve(lead, refund.id, note="Coins never granted: server log confirms")
print(f"{clock.now():%d %b %H:%M} lead_cy approves it: refund {refund.status}")
print(
    f"order {flow.orders.get(lead, order.id).status}; user_3 notified: {inbox.to('user_3')[-1].topic}"
)

print("Audit trail of the refund:")
for e in flow.history(lead, refund.id):
    detail = f" ({e.data['deadline']} deadline)" if "deadline" in e.data else ""
    print(
        f"  {e.at:%d %b %H:%M} {e.event}: {e.from_state or '-'} -> {e.to_state}"
        f" by {e.role} {e.actor_id}{detail}"
    )
breaches = flow.report(lead).breaches
print(f"deadline breaches in the report: {breaches}")
flow.close()
