"""Every subscription notification Google sends, pushed over HTTP to the RTDN endpoint with
Pub/Sub-signed tokens, on SQLite and on PostgreSQL: the subscription moves only as
``purchases.subscriptionsv2.get`` (the local fake Google) confirms, and what the buyer may use
follows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from platform_env import post_json, served
from play_env import BUYER, START, Env, ms
from play_fakes import (
    FakePlay,
    push,
    set_subscription,
    subscription,
    subscription_purchase,
)

from iap_flow import SYSTEM, Actor, Money, Subscription, SubscriptionStatus, TransitionNotAllowed

PM = Actor("pm", "product_manager")
FIRST = "GPA.5500-0000-0000-00001"
MONTH = timedelta(days=31)


class Play:
    """A Google Play flow on one store kind, its push endpoint served over HTTP."""

    def __init__(self, env: Env, url: str) -> None:
        self.env, self.url = env, url
        self.seq = 0

    @property
    def resource(self) -> dict[str, Any]:
        return self.env.play.subscriptions["tok"]

    def push(self, kind: int, token: str = "tok", message_id: str | None = None) -> str | None:
        self.seq += 1
        note = subscription(token, ms(self.env.clock.now()), kind)
        envelope = push(note, message_id or f"m-{self.seq}")
        status, outcome = post_json(self.url, envelope, {"Authorization": self.env.play.sign()})
        assert status == 200, (kind, status)
        return outcome

    def google(self, **change: Any) -> None:
        set_subscription(self.resource, **change)

    def subscribe(self) -> Subscription:
        self.env.play.subscriptions["tok"] = subscription_purchase(
            "pro", FIRST, "u1", expiry=self.env.clock.now() + MONTH
        )
        assert self.push(4) == "paid"
        return self.sub()

    def sub(self) -> Subscription:
        (sub,) = self.env.flow.subscriptions.for_user(SYSTEM, "u1")
        return sub

    def access(self) -> list[tuple[str, datetime | None]]:
        return [(e.sku, e.expires_at) for e in self.env.flow.entitlements.active(BUYER, "u1")]


@pytest.fixture
def play_store(play: FakePlay, store_url: str) -> Iterator[Play]:
    env = Env(play, url=store_url)
    env.flow.catalogue.add(PM, sku="max", title="Max", description="d", price=Money(999, "USD"), kind="subscription", period="month")  # fmt: skip
    try:
        with served(env.notes.wsgi_app()) as url:
            yield Play(env, url)
    finally:
        env.flow.close()


def test_canceled_then_restarted(play_store: Play) -> None:
    p = play_store
    sub = p.subscribe()
    p.google(state="CANCELED")
    assert p.push(3) == "subscription_cancelled"
    assert p.access() == [("pro", sub.period_end)]  # until the period end
    p.google(state="ACTIVE")
    assert p.push(7) == "subscription_active"
    assert p.sub().auto_renew


def test_grace_period_recovered_then_on_hold_then_recovered(play_store: Play) -> None:
    p = play_store
    p.subscribe()
    p.env.clock.advance(MONTH)
    grace = p.env.clock.now() + timedelta(days=7)
    p.google(state="IN_GRACE_PERIOD", expiry=grace)
    assert p.push(6) == "subscription_in_grace_period"
    assert p.sub().grace_until == grace
    assert p.access() == [("pro", grace)]
    p.google(state="ACTIVE", expiry=p.env.clock.now() + MONTH, latest_order_id=f"{FIRST}..0")
    assert p.push(1) == "paid"  # the retried charge is the renewal order: access again
    assert (p.sub().status, p.sub().latest_order_id) == (
        SubscriptionStatus.ACTIVE,
        p.env.flow.platform_events.order_for_transaction(SYSTEM, "google_play", f"{FIRST}..0").id,  # type: ignore[union-attr]
    )
    p.env.clock.advance(MONTH)
    p.google(state="ON_HOLD")
    assert p.push(5) == "subscription_on_hold"
    assert p.access() == []
    end = p.env.clock.now() + MONTH
    p.google(state="ACTIVE", expiry=end)  # collected, no new order recorded here
    assert p.push(1) == "paid"  # the order Google names is on record: recovered
    assert p.sub().status is SubscriptionStatus.ACTIVE
    assert p.access() == [("pro", end)]


def test_paused_then_resumed_by_the_renewal(play_store: Play) -> None:
    p = play_store
    p.subscribe()
    p.env.clock.advance(MONTH)
    p.google(state="PAUSED")
    assert p.push(10) == "subscription_paused"
    assert p.access() == []
    assert p.push(11) == "noted"  # the pause schedule changed: nothing else
    p.env.clock.advance(MONTH)
    p.google(state="ACTIVE", expiry=p.env.clock.now() + MONTH, latest_order_id=f"{FIRST}..0")
    assert p.push(2) == "paid"
    assert p.sub().status is SubscriptionStatus.ACTIVE


def test_deferred_billing_extends_the_period(play_store: Play) -> None:
    p = play_store
    sub = p.subscribe()
    later = sub.period_end + timedelta(days=14)
    p.google(expiry=later)
    assert p.push(9) == "subscription_active"
    assert p.sub().period_end == later
    assert p.access() == [("pro", later)]
    assert p.push(9) == "unchanged"  # the same deferral told twice


def test_expired_and_renewing_an_ended_subscription_is_refused(play_store: Play) -> None:
    p = play_store
    p.subscribe()
    p.google(state="CANCELED")
    p.push(3)
    p.env.clock.advance(MONTH)
    p.google(state="EXPIRED")
    assert p.push(13) == "subscription_expired"
    assert p.access() == []
    with pytest.raises(TransitionNotAllowed):
        p.env.flow.orders.renew(SYSTEM, p.sub().first_order_id, token="tok")
    assert p.env.play.api_calls()[-1].path.endswith("/tok")  # no charge was asked for


def test_revoked_without_a_confirmed_refund_still_revokes_access(play_store: Play) -> None:
    p = play_store
    p.subscribe()
    p.google(state="EXPIRED")
    assert p.push(12) == "subscription_revoked"
    assert p.access() == []
    assert "entitlement.revoked" in p.env.topics("u1")


def test_revoked_with_a_refund_google_confirms(play_store: Play) -> None:
    p = play_store
    p.subscribe()
    p.google(state="EXPIRED")
    p.env.play.refunded.append(FIRST)
    assert p.push(12) == "refunded"
    assert p.sub().status is SubscriptionStatus.REVOKED


def test_price_changes_are_noted_and_change_nothing(play_store: Play) -> None:
    p = play_store
    before = p.subscribe()
    for kind in (8, 19, 20):
        assert p.push(kind) == "noted"
    after = p.sub()
    assert (after.status, after.period_end, after.version) == (
        before.status, before.period_end, before.version
    )  # fmt: skip


def test_a_push_google_does_not_confirm_changes_nothing(play_store: Play) -> None:
    p = play_store
    before = p.subscribe()
    for kind in (3, 5, 6, 10, 13):  # Google still says ACTIVE
        assert p.push(kind) == "unconfirmed"
    assert p.sub().version == before.version
    assert p.push(3, message_id="m-again") == p.push(3, message_id="m-again") == "unconfirmed"


def test_an_upgrade_with_a_new_token_continues_the_subscription(play_store: Play) -> None:
    p = play_store
    p.subscribe()
    p.env.clock.advance(timedelta(days=5))
    p.env.play.subscriptions["tok-2"] = subscription_purchase(
        "max", "GPA.5500-0000-0000-00002", "u1", linked_token="tok"
    )
    assert p.push(4, token="tok-2") == "paid"
    sub = p.sub()  # still one subscription, on the new plan
    assert (sub.sku, sub.status) == ("max", SubscriptionStatus.ACTIVE)
    assert [e.sku for e in p.env.flow.entitlements.active(BUYER, "u1")] == ["max"]
    events = [e.event for e in p.env.flow.history(SYSTEM, sub.id)]
    assert "change_plan" in events and events[-1] == "renew"


def test_a_change_for_a_purchase_never_seen_records_it_first(play_store: Play) -> None:
    p = play_store
    p.env.play.subscriptions["tok"] = subscription_purchase(
        "pro", FIRST, "u1", state="CANCELED", expiry=START + MONTH
    )
    assert p.push(3) == "subscription_cancelled"
    sub = p.sub()
    assert (sub.status, sub.user_id) == (SubscriptionStatus.CANCELLED, "u1")
