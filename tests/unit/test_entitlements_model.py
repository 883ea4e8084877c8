"""Entitlements against a model: random store events and clock moves on one subscription,
and after every step the derived entitlement equals what a few lines of rules say. At the
end, every answer given along the way is asked again for its time (``at=``): the history
the store keeps answers the past exactly as the present was answered then."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iap_flow import SYSTEM, TransitionNotAllowed
from iap_flow.domain.models import Period
from iap_flow.services.subscription_writes import add_period

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(min_value=1, max_value=900)),  # hours
        st.sampled_from(
            [
                ("renew", 0),
                ("decline", 0),
                ("cancel", 0),
                ("uncancel", 0),
                ("pause", 0),
                ("resume", 0),
                ("revoke", 0),
                ("sweep", 0),
            ]
        ),
    ),
    max_size=25,
)


class Model:
    """What the buyer should have: a status, the paid period's end and the grace end."""

    def __init__(self, now: datetime, end: datetime) -> None:
        self.status, self.end, self.grace = "active", end, None
        self.hold_until: datetime | None = None

    def access(self, now: datetime) -> datetime | None:
        if self.status in ("active", "cancelled") and now < self.end:
            return self.end
        if self.status == "in_grace_period" and self.grace is not None and now < self.grace:
            return self.grace
        return None

    def renew(self, now: datetime) -> None:
        keeps = self.status in ("active", "cancelled") and self.end > now
        begin = self.end if keeps else now
        self.status, self.end, self.grace = "active", add_period(begin, Period.MONTH), None

    def allowed(self, event: str) -> bool:
        return {
            "decline": self.status in ("active", "cancelled"),
            "cancel": self.status in ("active", "in_grace_period", "on_hold"),
            "uncancel": self.status == "cancelled",
            "pause": self.status == "active",
            "resume": self.status == "paused",
            "revoke": self.status != "revoked",
        }[event]

    def sweep(self, now: datetime, policy: Any) -> None:
        if self.status in ("active", "cancelled"):
            if now >= self.end + policy.subscription_expiry_leeway:
                self.status = "expired"
        elif self.status == "in_grace_period":
            assert self.grace is not None
            if now >= self.grace:
                self.status, self.hold_until = "on_hold", now + policy.subscription_hold
        elif self.status == "on_hold":
            assert self.hold_until is not None
            if now >= self.hold_until:
                self.status = "expired"


@settings(max_examples=30)
@given(actions=ACTIONS)
def test_entitlements_match_the_model(make_world: Any, actions: list[tuple[str, int]]) -> None:
    w = make_world()
    flow, clock, policy = w.flow, w.clock, w.flow.policy
    order = w.order("pro_month")
    sub = flow.subscriptions.for_order(SYSTEM, order.id)
    model = Model(clock.now(), sub.period_end)
    subs = flow.subscriptions
    commands = {
        "cancel": lambda: subs.cancelled(SYSTEM, sub.id),
        "uncancel": lambda: subs.uncancelled(SYSTEM, sub.id),
        "pause": lambda: subs.paused(SYSTEM, sub.id),
        "resume": lambda: subs.resumed(SYSTEM, sub.id),
        "revoke": lambda: subs.revoked(SYSTEM, sub.id, reason="withdrawn"),
    }
    answers: dict[datetime, list[Any]] = {}
    for name, hours in actions:
        now = clock.now()
        if name == "advance":
            clock.advance(timedelta(hours=hours))
        elif name in ("renew", "decline") and model.status in ("revoked", "expired"):
            with pytest.raises(TransitionNotAllowed):  # an ended subscription is never charged
                flow.orders.renew(SYSTEM, order.id, token="tok_approve")
        elif name == "renew":
            flow.orders.renew(SYSTEM, order.id, token="tok_approve")
            model.renew(now)
        elif name == "decline":
            flow.orders.renew(SYSTEM, order.id, token="tok_decline")
            if model.allowed("decline"):
                model.status = "in_grace_period"
                model.grace = max(model.end, now) + policy.subscription_grace
        elif name == "sweep":
            flow.sweep()
            model.sweep(now, policy)
        else:
            if model.allowed(name):
                commands[name]()
                if name == "resume":
                    model.end = add_period(now, Period.MONTH)
                model.status = {
                    "cancel": "cancelled",
                    "uncancel": "active",
                    "pause": "paused",
                    "resume": "active",
                    "revoke": "revoked",
                }[name]
            else:
                with pytest.raises(TransitionNotAllowed):
                    commands[name]()
        now = clock.now()
        got = flow.entitlements.active(SYSTEM, "u1")
        assert flow.subscriptions.get(SYSTEM, sub.id).status == model.status, actions
        expected = model.access(now)
        assert [e.expires_at for e in got] == ([] if expected is None else [expected]), actions
        answers[now] = got
    for at, then in answers.items():
        assert flow.entitlements.active(SYSTEM, "u1", at=at) == then, (at, actions)
