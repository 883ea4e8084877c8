"""What your integration's tests need: a clock you move, a notifier that keeps what it was
sent, and a payment platform whose token chooses the outcome. Fakes, not mocks: each does the
real job in memory, so a test asserts the state it ends in.

- :class:`ManualClock`: time moves only when the test says (deadlines, expiry, the sweep).
- :class:`MemoryNotifier`: ``sent`` in order, ``to(recipient)`` for one person's.
- :class:`SandboxPlatform`: deterministic; the payment token chooses the outcome
  (:data:`APPROVE`, :data:`DECLINE`, :data:`TIMEOUT`, :data:`REFUND_FAILS`,
  :data:`REFUND_TIMEOUT`) and its ``ledger`` records the money that moved, once per key.

A purchase, a refund, and the sweep expiring an order nobody paid:

>>> from datetime import UTC, datetime, timedelta
>>> from iap_flow import Actor, Money, open_flow
>>> from iap_flow.testing import APPROVE, ManualClock, MemoryNotifier, SandboxPlatform
>>> clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
>>> inbox, sandbox = MemoryNotifier(), SandboxPlatform(instance="t1")
>>> flow = open_flow("sqlite://", clock=clock, notifier=inbox, platforms=[sandbox], seed=1)
>>> _ = flow.catalogue.add(Actor("pm", "product_manager"), sku="gems", title="Gems",
...                        description="100 gems", price=Money(199, "USD"), kind="consumable")
>>> buyer, agent = Actor.buyer("u1"), Actor.agent("agent_1")
>>> order = flow.orders.pay(buyer, flow.orders.place(buyer, "gems").id, token=APPROVE)
>>> refund = flow.refunds.request(buyer, order.id, reason="Bought by mistake")
>>> print(flow.refunds.approve(agent, refund.id).status)
refunded
>>> [(e.kind.value, str(e.amount)) for e in sandbox.ledger]
[('charge', '1.99 USD'), ('refund', '1.99 USD')]
>>> [n.topic for n in inbox.to("u1")]
['order.paid', 'refund.succeeded']
>>> unpaid = flow.orders.place(buyer, "gems")
>>> _ = clock.advance(timedelta(minutes=31))
>>> flow.sweep().expired
1
>>> print(flow.orders.get(buyer, unpaid.id).status)
expired
>>> flow.close()

The sandbox's token chooses what the platform does:

>>> from iap_flow import PlatformUnavailable
>>> from iap_flow.testing import DECLINE, TIMEOUT
>>> flow = open_flow("sqlite://", clock=clock, notifier=inbox, platforms=[SandboxPlatform()])
>>> _ = flow.catalogue.add(Actor("pm", "product_manager"), sku="gems", title="Gems",
...                        description="100 gems", price=Money(199, "USD"), kind="consumable")
>>> print(flow.orders.pay(buyer, flow.orders.place(buyer, "gems").id, token=DECLINE).status)
payment_failed
>>> late = flow.orders.place(buyer, "gems")
>>> try:
...     flow.orders.pay(buyer, late.id, token=TIMEOUT)
... except PlatformUnavailable as exc:
...     print(type(exc).__name__, "and the order is still", flow.orders.get(buyer, late.id).status)
PlatformUnavailable and the order is still pending_payment
>>> flow.close()

These are the objects the project's own tests use; importing this module needs no extra.
Nothing in the core imports it.
"""

from __future__ import annotations

from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import (
    APPROVE,
    DECLINE,
    REFUND_FAILS,
    REFUND_TIMEOUT,
    TIMEOUT,
    LedgerEntry,
    SandboxPlatform,
)
from iap_flow.domain.clock import ManualClock

__all__ = [
    "APPROVE",
    "DECLINE",
    "REFUND_FAILS",
    "REFUND_TIMEOUT",
    "TIMEOUT",
    "LedgerEntry",
    "ManualClock",
    "MemoryNotifier",
    "SandboxPlatform",
]
