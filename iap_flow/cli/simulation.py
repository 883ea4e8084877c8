"""A seeded, reproducible simulation of buyers, staff and the sweep, for ``iap-flow demo``.

Buyers browse a small catalogue (consumables, non-consumables and subscriptions, in USD and
CNY), pay (some cards decline, some payments time out), get their goods, ask for refunds and
leave feedback; support staff decide and answer (some too late, so the sweep escalates); the
sweep runs every simulated hour. Subscriptions renew, fail into grace, recover, are cancelled
and expire (:mod:`iap_flow.cli.simulation_subscriptions`). Everything goes through the public API with a
:class:`~iap_flow.domain.clock.ManualClock`, and every choice comes from ``random.Random(seed)``:
the same seed gives the same records and the same report.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from iap_flow.cli.simulation_data import (
    AGENTS,
    CATALOGUE,
    DEMO_START,
    HOUR,
    LEAD,
    PM,
    TEXTS,
    Deck,
    Item,
    Progress,
    SimulationStats,
)
from iap_flow.cli.simulation_subscriptions import SubscriptionLife
from iap_flow.domain.clock import ManualClock
from iap_flow.domain.errors import InvalidInput, PlatformUnavailable
from iap_flow.domain.models import Order, OrderStatus, ProductKind, RefundRequest, Ticket
from iap_flow.domain.money import Money
from iap_flow.domain.policy import ApprovalLimitExceeded
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.flow import Flow, open_flow
from iap_flow.ports import Notifier

__all__ = ["CATALOGUE", "DEMO_START", "PM", "SimulationStats", "open_demo_flow", "simulate"]


@attrs.define
class _Buyer:
    actor: Actor
    currency: str
    lang: str
    sessions_per_day: float
    owned: set[str] = attrs.Factory(set)


class _Simulation:
    def __init__(
        self, flow: Flow, clock: ManualClock, seed: int, rng: random.Random, end: datetime
    ) -> None:
        self.flow, self.clock, self.rng, self.end = flow, clock, rng, end
        self.counts: Counter[str] = Counter()
        self._queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = 0
        self.refund_failure_planned = False
        r = rng
        self.payment = Deck(r, approve=26, decline=2, timeout=1, abandon=1)
        self.fulfil = Deck(r, deliver=8, hold=1)
        self.completion = Deck(r, complete=9, keep=1)
        self.ask_refund = Deck(r, ask=1, keep=5)
        self.refund_outcome = Deck(r, approve=3, reject=2, withdraw=1, late=2)
        self.give_feedback = Deck(r, give=1, skip=3)
        self.ticket_path = Deck(r, prompt=5, late=2, reopen=1, quick=1, buyer=1, slow=1)
        # Its own seeded stream: the subscriptions' draws leave the rest of the run as it was.
        self.subscriptions = SubscriptionLife(self, random.Random(f"{seed}:subscriptions"))

    # -- the event loop ---------------------------------------------------------------------
    def at(self, when: datetime, action: Callable[[], None]) -> None:
        """Schedule ``action`` at ``when``; what falls after the end never happens."""
        if when < self.end:
            self._seq += 1
            heapq.heappush(self._queue, (when, self._seq, action))

    def after(self, low_hours: float, high_hours: float, action: Callable[[], None]) -> None:
        delay = timedelta(seconds=round(self.rng.uniform(low_hours, high_hours) * 3600))
        self.at(self.clock.now() + delay, action)

    def run(self, progress: Progress | None) -> None:
        start = self.clock.now()
        total = round((self.end - start) / HOUR)
        hour, done = start + HOUR, 0
        while True:
            when = self._queue[0][0] if self._queue else self.end
            while hour <= min(when, self.end):  # the sweep runs on the hour, before the rest
                self.clock.set(hour)
                self.sweep()
                done += 1
                if progress is not None:
                    progress(done, total)
                hour += HOUR
            if not self._queue:
                return
            when, _, action = heapq.heappop(self._queue)
            self.clock.set(when)
            action()

    def sweep(self) -> None:
        result = self.flow.sweep(SYSTEM)
        self.counts["sweep.runs"] += 1
        for name in ("expired", "reminded", "escalated", "retried"):
            self.counts[f"sweep.{name}"] += getattr(result, name)

    # -- catalogue and buyers ---------------------------------------------------------------
    def open_shop(self) -> None:
        for item in CATALOGUE:
            self.flow.catalogue.add(
                PM,
                sku=item.sku,
                title=item.title,
                description=f"{item.title}: {item.kind.value.replace('_', '-')}",
                price=item.price,
                kind=item.kind,
                period=item.period,
            )
        self.counts["product.create"] += len(CATALOGUE)
        sale = CATALOGUE[1]  # a price change on day 2: orders keep the price they were placed at
        self.at(self.clock.now() + timedelta(days=1, hours=9), lambda: self.discount(sale))

    def discount(self, item: Item) -> None:
        price = Money(item.price.amount * 3 // 4, item.price.currency)
        self.flow.catalogue.update(PM, item.sku, price=price)
        self.counts["product.update"] += 1

    def add_buyers(self, count: int, days: int) -> None:
        hours = list(range(24))
        weights = [1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 5, 4, 4, 5, 6, 8, 9, 9, 8, 5, 2]
        start = self.clock.now()
        for n in range(1, count + 1):
            cn = self.rng.random() < 0.35
            buyer = _Buyer(
                Actor.buyer(f"u_{n:05d}"),
                "CNY" if cn else "USD",
                "zh" if cn else "en",
                self.rng.choice((0.5, 1.0, 1.0, 2.0)),
            )
            for day in range(days):
                rate = buyer.sessions_per_day
                sessions = int(rate) + (1 if self.rng.random() < rate - int(rate) else 0)
                for _ in range(sessions):
                    hour = self.rng.choices(hours, weights)[0]
                    when = start + timedelta(days=day, hours=hour, seconds=self.rng.randrange(3600))
                    self.at(when, functools.partial(self.session, buyer))

    def session(self, buyer: _Buyer) -> None:
        """The buyer opens the shop and, more often than not, taps "buy" on something."""
        self.counts["sessions"] += 1
        shelf = [
            item
            for product in self.flow.catalogue.products()
            for item in CATALOGUE
            if item.sku == product.sku
            and item.price.currency == buyer.currency
            and item.sku not in buyer.owned
        ]
        if not shelf or self.rng.random() > 0.6:
            return
        item = self.rng.choices(shelf, [i.weight for i in shelf])[0]
        order = self.flow.orders.place(buyer.actor, item.sku)
        self.counts["order.place"] += 1
        self.after(0.005, 0.07, lambda: self.pay(buyer, order, item))

    # -- orders -----------------------------------------------------------------------------
    def pay(self, buyer: _Buyer, order: Order, item: Item) -> None:
        outcome = self.payment.draw()
        if outcome == "abandon":
            self.flow.orders.cancel(buyer.actor, order.id)
            self.counts["order.cancel"] += 1
            return
        token = {"decline": "tok_decline", "timeout": "tok_timeout"}.get(outcome, "tok_approve")
        planned_failure = (
            outcome == "approve"
            and not self.refund_failure_planned
            and item.kind is ProductKind.CONSUMABLE
        )
        if planned_failure:  # one refund in every run is refused by the platform
            token, self.refund_failure_planned = "tok_refund_fails", True
        try:
            paid = self.flow.orders.pay(buyer.actor, order.id, token=token)
        except PlatformUnavailable:
            self.counts["payment.timeout"] += 1  # left pending: the sweep expires it
            return
        if paid.status is OrderStatus.PAYMENT_FAILED:
            self.counts["payment.declined"] += 1
            self.maybe_feedback(buyer, paid, "unhappy")
            return
        self.counts["order.pay"] += 1
        if item.kind is not ProductKind.CONSUMABLE:
            buyer.owned.add(item.sku)
        if item.period is not None:
            self.subscriptions.started(paid)
        if planned_failure:
            self.after(0.5, 2, lambda: self.request_refund(buyer, paid, "approve"))
        elif self.fulfil.draw() == "hold":
            self.flow.orders.hold_delivery(SYSTEM, paid.id)
            self.counts["order.hold_delivery"] += 1
            self.after(1, 6, lambda: self.deliver(buyer, paid))
        else:
            self.deliver(buyer, paid)

    def deliver(self, buyer: _Buyer, order: Order) -> None:
        self.flow.orders.deliver(SYSTEM, order.id)
        self.counts["order.deliver"] += 1
        if self.completion.draw() == "complete":
            self.after(0.01, 0.5, lambda: self.complete(buyer, order))
        else:
            self.after(1, 24, lambda: self.after_purchase(buyer, order))

    def complete(self, buyer: _Buyer, order: Order) -> None:
        self.flow.orders.complete(buyer.actor, order.id)
        self.counts["order.complete"] += 1
        self.after(1, 24, lambda: self.after_purchase(buyer, order))

    def after_purchase(self, buyer: _Buyer, order: Order) -> None:
        if self.ask_refund.draw() == "ask":
            self.request_refund(buyer, order, self.refund_outcome.draw())
        else:
            self.maybe_feedback(buyer, order, "happy")

    # -- refunds ----------------------------------------------------------------------------
    def request_refund(self, buyer: _Buyer, order: Order, outcome: str) -> None:
        reason = self.rng.choice(TEXTS[buyer.lang]["refund"])
        refund = self.flow.refunds.request(buyer.actor, order.id, reason=reason)
        self.counts["refund.request"] += 1
        if outcome == "withdraw":
            self.after(0.2, 6, lambda: self.withdraw(buyer, refund))
        elif outcome == "late":  # nobody looks before the 24 h deadline: the sweep escalates
            self.after(26, 40, lambda: self.decide(buyer, refund, LEAD, self.rng.random() < 0.6))
        else:
            agent = self.rng.choice(AGENTS)
            approve = outcome == "approve"
            self.after(0.5, 12, lambda: self.decide(buyer, refund, agent, approve))

    def withdraw(self, buyer: _Buyer, refund: RefundRequest) -> None:
        self.flow.refunds.withdraw(buyer.actor, refund.id)
        self.counts["refund.withdraw"] += 1

    def decide(self, buyer: _Buyer, refund: RefundRequest, staff: Actor, approve: bool) -> None:
        if not approve:
            reason = self.rng.choice(TEXTS[buyer.lang]["reject"])
            self.flow.refunds.reject(staff, refund.id, reason=reason)
            self.counts["refund.reject"] += 1
            self.maybe_feedback(buyer, None, "unhappy")
            return
        try:
            done = self.flow.refunds.approve(staff, refund.id)
        except ApprovalLimitExceeded:  # above the agent's limit: a lead decides it later
            self.counts["refund.over_agent_limit"] += 1
            self.after(0.5, 6, lambda: self.decide(buyer, refund, LEAD, True))
            return
        self.counts["refund.approve"] += 1
        self.counts[f"refund.{done.status.value}"] += 1

    # -- feedback ---------------------------------------------------------------------------
    def maybe_feedback(self, buyer: _Buyer, order: Order | None, mood: str) -> None:
        if self.give_feedback.draw() != "give":
            return
        if mood == "happy":
            rating = self.rng.choices((1, 2, 3, 4, 5), (1, 1, 2, 5, 8))[0]
        else:
            rating = self.rng.choices((1, 2, 3), (4, 3, 1))[0]
        texts = TEXTS[buyer.lang]["happy" if rating >= 4 else "unhappy"]
        ticket = self.flow.feedback.submit(
            buyer.actor,
            rating=rating,
            body=self.rng.choice(texts),
            order_id=None if order is None else order.id,
        )
        self.counts["ticket.submit"] += 1
        path = self.ticket_path.draw()
        agent = self.rng.choice(AGENTS)
        if path == "quick":
            self.after(0.5, 3, lambda: self.resolve(ticket, agent))
        elif path == "late":  # past the 4 h first-response deadline: escalated
            self.after(4.5, 10, lambda: self.answer(buyer, ticket, agent, "resolve"))
        else:
            self.after(0.2, 3.5, lambda: self.answer(buyer, ticket, agent, path))

    def answer(self, buyer: _Buyer, ticket: Ticket, agent: Actor, path: str) -> None:
        body = self.rng.choice(TEXTS[buyer.lang]["answer"])
        self.flow.feedback.answer(agent, ticket.id, body=body)
        self.counts["ticket.answer"] += 1
        if path == "reopen":
            self.after(2, 12, lambda: self.reopen(buyer, ticket, agent))
        elif path == "buyer":
            self.after(1, 24, lambda: self.resolve(ticket, buyer.actor))
        elif path == "slow":  # resolved after the 72 h resolution deadline
            self.after(73, 90, lambda: self.resolve(ticket, agent))
        else:
            self.after(1, 24, lambda: self.resolve(ticket, agent))

    def reopen(self, buyer: _Buyer, ticket: Ticket, agent: Actor) -> None:
        body = self.rng.choice(TEXTS[buyer.lang]["reopen"])
        self.flow.feedback.reopen(buyer.actor, ticket.id, body=body)
        self.counts["ticket.reopen"] += 1
        self.after(0.5, 3, lambda: self.answer(buyer, ticket, agent, "resolve"))

    def resolve(self, ticket: Ticket, actor: Actor) -> None:
        note = None if actor.role is Role.BUYER else "Resolved, thanks for your patience."
        self.flow.feedback.resolve(actor, ticket.id, note=note)
        self.counts["ticket.resolve"] += 1


def open_demo_flow(
    url: str = "sqlite://",
    *,
    seed: int = 42,
    notifier: Notifier | None = None,
    start: datetime = DEMO_START,
) -> Flow:
    """Open a flow ready for :func:`simulate`: a manual clock at ``start`` and seeded ids."""
    return open_flow(url, clock=ManualClock(start), notifier=notifier, seed=seed)


def simulate(
    flow: Flow, *, buyers: int, days: int, seed: int, progress: Progress | None = None
) -> SimulationStats:
    """Run ``buyers`` buyers and the support team for ``days`` simulated days on ``flow``.

    ``flow`` must run on a :class:`~iap_flow.domain.clock.ManualClock` (see :func:`open_demo_flow`)
    and have none of the demo products yet. Same seed and sizes, same records and report.
    """
    clock = flow.clock
    if not isinstance(clock, ManualClock):
        raise InvalidInput("simulate needs a flow opened with a ManualClock (open_demo_flow)")
    for name, value, most in (("buyers", buyers, 100_000), ("days", days, 366)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise InvalidInput(f"{name} must be a whole number from 1 to {most}", field=name)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInput(f"seed must be a whole number, got {seed!r}", field="seed")
    started = clock.now()
    sim = _Simulation(flow, clock, seed, random.Random(seed), started + timedelta(days=days))
    sim.open_shop()
    sim.add_buyers(buyers, days)
    sim.run(progress)
    return SimulationStats(seed, buyers, days, started, sim.end, dict(sorted(sim.counts.items())))
