"""The known history (figures computable by hand) that the analysis tests read.

- 22 orders: 20 paid (gems x 12, no_ads x 8), 1 declined, 1 left unpaid;
- 6 refund requests on paid orders, decided after 1, 2, 3, 4, 10 and 30 hours: the first five
  approved by ``agent_1`` (paid back, so 5 of 20 paid orders are refunded: exactly 25 %), the
  last one escalated by the sweep at 24 h and rejected by ``lead_1`` at 30 h;
- 4 tickets rated 5, 4, 2, 1: answered after 1, 2 and 5 hours (the 5 h one breaches the 4 h
  first-response deadline), the fourth never answered (breached too); ticket 1 resolved
  after 3 h, ticket 2 resolved after 10 h and then reopened.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from iap_flow import SYSTEM, Actor

REVIEW_HOURS = (1, 2, 3, 4, 10)
AGENT, LEAD = Actor.agent("agent_1"), Actor.lead("lead_1")
ANALYST = Actor("analyst_1", "data_analyst")
DEVELOPER = Actor("dev_1", "developer")


def build_known_history(w: Any) -> datetime:
    """Write the history described above on a ``World``; returns when it ends.

    Refunds start at the world's clock start; tickets three days later (:func:`tickets_at`).
    """
    flow = w.flow
    tickets_at = tickets_start(w.clock.now())
    # Refunds: each on a fresh completed gems order, decided after a known number of hours.
    for hours in REVIEW_HOURS:
        refund = w.refund("gems")
        w.advance(hours=hours)
        flow.refunds.approve(AGENT, refund.id)
    late = w.refund("no_ads")
    w.advance(hours=24, minutes=1)
    flow.sweep(SYSTEM)  # escalates the review: a breach
    w.advance(hours=5, minutes=59)
    flow.refunds.reject(LEAD, late.id, reason="the item was used")
    # The other 14 paid orders (7 of each), a declined and an unpaid one.
    for sku, n in (("gems", 7), ("no_ads", 7)):
        for _ in range(n):
            w.order(sku, upto="completed")
    w.order("gems", token="tok_decline", upto="paid")
    w.order("gems", upto="pending_payment")
    # Tickets, all submitted at TICKETS_AT.
    w.clock.set(tickets_at)
    fb = flow.feedback
    t1, t2, t3, _ = (
        fb.submit(w_buyer, rating=r, body=body)
        for w_buyer, r, body in (
            (_buyer("u1"), 5, "Gems arrived instantly, great"),
            (_buyer("u2"), 4, "Refund took a while but fine"),
            (_buyer("u3"), 2, "The app crashes after purchase"),
            (_buyer("u4"), 1, "Charged twice, contact me at jo@example.com"),
        )
    )
    w.advance(hours=1)
    fb.answer(AGENT, t1.id, body="Glad to hear it")
    w.advance(hours=1)
    fb.answer(AGENT, t2.id, body="Thanks")
    w.advance(hours=1)
    fb.resolve(AGENT, t1.id)
    w.advance(hours=2)
    flow.sweep(SYSTEM)  # t3 and t4 missed the 4 h first response
    fb.answer(AGENT, t3.id, body="We are on it")
    w.advance(hours=5)
    fb.resolve(AGENT, t2.id)
    fb.reopen(_buyer("u2"), t2.id, body="Actually it is not fine")
    return w.clock.now()


def tickets_start(start: datetime) -> datetime:
    """When the known history's tickets are submitted."""
    return start + timedelta(days=3)


def _buyer(user_id: str) -> Actor:
    return Actor.buyer(user_id)
