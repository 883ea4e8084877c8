"""The demo's subscriptions, as a store would drive them under the manual clock.

Shortly before each period ends the store charges the renewal (``orders.renew``): most go
through; some cards decline and the subscription enters its grace period, where the store
retries a day or two later and either collects (a grace-period recovery), fails again, or
gives up (the store's word: expired, involuntary churn); some charges time out and are
retried within hours. Some buyers turn auto-renew off during a period (cancelled: the sweep
expires it at the period end, voluntary churn), and some of those turn it back on in time.
Every draw comes from the simulation's seeded decks.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from iap_flow.cli.simulation_data import Deck
from iap_flow.domain.errors import PlatformUnavailable
from iap_flow.domain.models import Order, OrderStatus, Subscription, SubscriptionStatus
from iap_flow.domain.roles import SYSTEM
from iap_flow.flow import Flow

BEFORE_END = timedelta(hours=2)
"""How long before a period ends the store charges its renewal."""
_RETRYING = (SubscriptionStatus.IN_GRACE_PERIOD, SubscriptionStatus.ON_HOLD)


class Simulation(Protocol):
    flow: Flow
    counts: Counter[str]

    def at(self, when: datetime, action: Callable[[], None]) -> None: ...


class SubscriptionLife:
    """Renewals, failures, grace, recoveries, cancellations and expiries of the demo's
    subscriptions."""

    def __init__(self, sim: Simulation, rng: random.Random) -> None:
        self.sim, self.rng = sim, rng
        r = rng
        self.period = Deck(r, renew=12, decline=3, timeout=1, cancel=2)
        self.retry = Deck(r, recover=3, fail=1, give_up=1)
        self.come_back = Deck(r, uncancel=1, leave=2)

    def _after(self, low_hours: float, high_hours: float, action: Callable[[], None]) -> None:
        delay = timedelta(seconds=round(self.rng.uniform(low_hours, high_hours) * 3600))
        self.sim.at(self.sim.flow.clock.now() + delay, action)

    def _sub(self, first_order_id: str) -> Subscription:
        return self.sim.flow.subscriptions.for_order(SYSTEM, first_order_id)

    def started(self, first: Order) -> None:
        """A subscription's first order was paid: plan its first period."""
        self.sim.counts["subscription.start"] += 1
        self._plan(first.id)

    def _plan(self, first_id: str) -> None:
        """Draw what happens in the coming period, and schedule it."""
        sub, sim = self._sub(first_id), self.sim
        outcome = self.period.draw()
        if outcome == "cancel":
            middle = sub.period_start + (sub.period_end - sub.period_start) * self.rng.random()
            sim.at(middle, lambda: self._cancel(first_id))
        else:
            sim.at(sub.period_end - BEFORE_END, lambda: self._charge(first_id, outcome))

    def _cancel(self, first_id: str) -> None:
        sub, sim = self._sub(first_id), self.sim
        if sub.status is not SubscriptionStatus.ACTIVE:
            return
        sim.flow.subscriptions.cancelled(SYSTEM, sub.id)
        sim.counts["subscription.cancel"] += 1
        if self.come_back.draw() == "uncancel":  # back on before the period ends
            left = (sub.period_end - BEFORE_END - sim.flow.clock.now()).total_seconds() / 3600
            if left > 0.5:
                self._after(0.25, left, lambda: self._uncancel(first_id))

    def _uncancel(self, first_id: str) -> None:
        sub, sim = self._sub(first_id), self.sim
        if sub.status is not SubscriptionStatus.CANCELLED:
            return
        sim.flow.subscriptions.uncancelled(SYSTEM, sub.id)
        sim.counts["subscription.uncancel"] += 1
        sim.at(sub.period_end - BEFORE_END, lambda: self._charge(first_id, "renew"))

    def _charge(self, first_id: str, outcome: str) -> None:
        """The store charges the renewal (``outcome``: renew, decline or timeout)."""
        sub, sim = self._sub(first_id), self.sim
        if sub.status is not SubscriptionStatus.ACTIVE and sub.status not in _RETRYING:
            return  # cancelled, paused, expired or revoked: the store charges nothing
        token = {"decline": "tok_decline", "timeout": "tok_timeout"}.get(outcome, "tok_approve")
        try:
            renewal = sim.flow.orders.renew(SYSTEM, first_id, token=token)
        except PlatformUnavailable:
            sim.counts["renewal.timeout"] += 1  # the store tries again within hours
            self._after(1, 4, lambda: self._charge(first_id, "renew"))
            return
        if renewal.status is OrderStatus.PAYMENT_FAILED:
            sim.counts["renewal.declined"] += 1  # into the grace period: retried later
            self._after(20, 60, lambda: self._retry(first_id))
            return
        recovered = sub.status in _RETRYING
        sim.counts["subscription.recovered" if recovered else "order.renew"] += 1
        sim.flow.orders.deliver(SYSTEM, renewal.id)
        sim.flow.orders.complete(SYSTEM, renewal.id)
        self._plan(first_id)

    def _retry(self, first_id: str) -> None:
        """The store retries a declined renewal in grace (or on hold)."""
        sub, sim = self._sub(first_id), self.sim
        if sub.status not in _RETRYING:
            return
        outcome = self.retry.draw()
        if outcome == "give_up":  # the store stops retrying: it says the subscription ended
            sim.flow.subscriptions.expired(SYSTEM, sub.id)
            sim.counts["subscription.billing_expired"] += 1
            return
        self._charge(first_id, "renew" if outcome == "recover" else "decline")
