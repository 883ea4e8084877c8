"""Feedback: a rating and a comment, answered, reopened, answered again, resolved; and a
ticket nobody answers in time, escalated to a lead by the sweep.

Run: python examples/feedback_answered.py
"""

from datetime import UTC, datetime, timedelta

from iap_flow import SYSTEM, Actor, ManualClock, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier

clock = ManualClock(datetime(2026, 2, 10, 14, 0, tzinfo=UTC))
inbox = MemoryNotifier()
flow = open_flow("sqlite://", clock=clock, notifier=inbox, seed=2)
buyer, other = Actor.buyer("user_5"), Actor.buyer("user_6")
agent, lead = Actor.agent("agent_bo"), Actor.lead("lead_cy")
pm = Actor("pm_ana", "product_manager")
price = Money(299, "USD")
flow.catalogue.add(
    pm, sku="no_ads", title="Remove ads", description="-", price=price, kind="non_consumable"
)
order = flow.orders.place(buyer, "no_ads")
order = flow.orders.pay(buyer, order.id, token="tok_approve")
order = flow.orders.deliver(SYSTEM, order.id)


def last(recipient: str) -> str:
    """The topic of the latest notification sent to ``recipient``."""
    return inbox.to(recipient)[-1].topic


# 1. The buyer rates the purchase and says what is wrong; support is told.
text = "I still see ads on the home screen"
ticket = flow.feedback.submit(buyer, rating=2, body=text, order_id=order.id)
print(
    f"user_5 rated {ticket.rating}/5: ticket {ticket.status}; support notified: {last('support_agent')}"
)

# 2. An agent answers within the 4 h first-response deadline; the buyer gets the answer.
clock.advance(timedelta(hours=1))
ticket = flow.feedback.answer(agent, ticket.id, body="Please restart the app")
print(f"agent_bo answered after 1 h: ticket {ticket.status}; user_5 notified: {last('user_5')}")

# 3. The answer did not help: the buyer reopens, the agent answers again.
clock.advance(timedelta(hours=2))
ticket = flow.feedback.reopen(buyer, ticket.id, body="Restarted twice, ads still there")
print(f"user_5 reopened it: ticket {ticket.status}; support notified: {last('support_agent')}")
clock.advance(timedelta(minutes=30))
ticket = flow.feedback.answer(agent, ticket.id, body="Fixed on our side, please update")
print(f"agent_bo answered again: ticket {ticket.status}")

# 4. The buyer confirms: resolved. The conversation stays on the ticket.
ticket = flow.feedback.resolve(buyer, ticket.id, note="Works now, thanks")
print(f"user_5 resolved it: ticket {ticket.status}, reopened {ticket.reopen_count} time(s)")
print(f"The conversation:\n  user_5 (rating {ticket.rating}): {ticket.body}")
for m in ticket.messages:
    print(f"  {m.author_id} ({m.role}): {m.body}")

# 5. Another buyer's feedback sits unanswered past the 4 h first-response deadline.
late = flow.feedback.submit(other, rating=4, body="Nice app, but the font is too small")
clock.advance(timedelta(hours=4, minutes=5))
swept = flow.sweep()
late = flow.feedback.get(agent, late.id)
print(f"4 h later, unanswered: sweep escalated {swept.escalated}; ticket {late.status}")
print(f"  escalated: {late.escalated}; support_lead notified: {last('support_lead')}")
late = flow.feedback.answer(lead, late.id, body="Settings > Text size; sorry for the wait")
print(f"lead_cy answered it: ticket {late.status}")
for e in flow.history(lead, late.id):
    print(f"  {e.event}: {e.from_state or '-'} -> {e.to_state} by {e.role} {e.actor_id}")

report = flow.report(lead)
print(f"average rating {report.average_rating:.1f}; deadline breaches: {report.breaches}")
flow.close()
