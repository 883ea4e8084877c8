"""Every subscription change Apple notifies, posted over HTTP to the App Store endpoint with
Apple-shaped signatures, on SQLite and on PostgreSQL: the subscription moves as Apple says,
and what the buyer may use follows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from apple_env import BUYER, START, Env
from apple_fakes import Chain, FakeAppStoreAPI
from platform_env import post_json, served

from iap_flow import SYSTEM, Actor, Money, Subscription, SubscriptionStatus, TransitionNotAllowed

PM = Actor("pm", "product_manager")
MONTH = timedelta(days=30)


class Store:
    """An App Store flow on one store kind, its endpoint served over HTTP."""

    def __init__(self, env: Env, url: str) -> None:
        self.env, self.url, self.apple = env, url, env.apple
        self.first = self.apple.next_id()

    def post(
        self,
        kind: str,
        subtype: str | None = None,
        *,
        txn: str | None = None,
        renewal: str | None = None,
        uuid: str | None = None,
    ) -> str | None:
        extra = {} if renewal is None else {"signedRenewalInfo": renewal}
        signed = self.apple.notification(
            kind,
            txn,
            self.env.clock.now(),
            subtype=subtype,
            extra=extra,
            notification_uuid=uuid,
        )
        status, outcome = post_json(self.url, {"signedPayload": signed})
        assert status == 200, (kind, subtype, status)
        return outcome

    def txn(self, *, tid: str | None = None, product: str = "pro", days: int = 30, **kw: object) -> str:  # fmt: skip
        now = self.env.clock.now()
        return self.apple.transaction(
            product,
            now,
            transaction_id=tid,
            original=self.first,
            account="u1",
            price=4990,
            expires_at=now + timedelta(days=days),
            **kw,  # type: ignore[arg-type]
        )

    def renewal(self, **kw: object) -> str:
        return self.apple.renewal_info(self.first, "pro", self.env.clock.now(), **kw)  # type: ignore[arg-type]

    def subscribe(self) -> Subscription:
        assert self.post("SUBSCRIBED", "INITIAL_BUY", txn=self.txn(tid=self.first)) == "paid"
        (sub,) = self.env.flow.subscriptions.for_user(SYSTEM, "u1")
        return sub

    def sub(self) -> Subscription:
        (sub,) = self.env.flow.subscriptions.for_user(SYSTEM, "u1")
        return sub

    def access(self, at: datetime | None = None) -> list[tuple[str, datetime | None]]:
        found = self.env.flow.entitlements.active(BUYER, "u1", at=at)
        return [(e.sku, e.expires_at) for e in found]


@pytest.fixture
def store(chain: Chain, api: FakeAppStoreAPI, key_pem: bytes, store_url: str) -> Iterator[Store]:
    env = Env(chain, api, key_pem, url=store_url)
    env.flow.catalogue.add(PM, sku="lite", title="Lite", description="d", price=Money(199, "USD"), kind="subscription", period="month")  # fmt: skip
    try:
        with served(env.notes.wsgi_app()) as url:
            yield Store(env, url)
    finally:
        env.flow.close()


def test_auto_renew_off_and_on_and_a_downgrade_called_off(store: Store) -> None:
    sub = store.subscribe()
    end = sub.period_end
    assert store.access() == [("pro", end)]
    off = store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", txn=store.txn(tid=store.first))  # fmt: skip
    assert off == "subscription_cancelled"
    assert (store.sub().status, store.sub().auto_renew) == (SubscriptionStatus.CANCELLED, False)
    assert store.access() == [("pro", end)]  # access until the period end
    on = store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", txn=store.txn(tid=store.first))  # fmt: skip
    assert on == "subscription_active" and store.sub().auto_renew
    down = store.post(
        "DID_CHANGE_RENEWAL_PREF",
        "DOWNGRADE",
        txn=store.txn(tid=store.first),
        renewal=store.renewal(auto_renew_product="lite"),
    )
    assert down == "subscription_active"
    assert (store.sub().sku, store.sub().pending_sku) == ("pro", "lite")  # at the next renewal
    back = store.post(
        "DID_CHANGE_RENEWAL_PREF", txn=store.txn(tid=store.first), renewal=store.renewal()
    )
    assert back == "subscription_active" and store.sub().pending_sku is None
    assert len(store.env.flow.orders.query(BUYER).items) == 1  # nothing was charged


def test_a_failed_renewal_with_grace_then_recovery_then_hold_then_recovery(store: Store) -> None:
    store.subscribe()
    store.env.clock.advance(MONTH)
    grace = store.env.clock.now() + timedelta(days=16)
    failed = store.post(
        "DID_FAIL_TO_RENEW",
        "GRACE_PERIOD",
        txn=store.txn(tid=store.first),
        renewal=store.renewal(grace_until=grace),
    )
    assert failed == "subscription_in_grace_period"
    assert store.sub().grace_until == grace
    assert store.access() == [("pro", grace)]  # access continues through the grace period
    renewed = store.post("DID_RENEW", "BILLING_RECOVERY", txn=store.txn())
    assert renewed == "paid"
    assert (store.sub().status, store.sub().grace_until) == (SubscriptionStatus.ACTIVE, None)
    latest = store.env.order(store.sub().latest_order_id).platform_transaction_id
    store.env.clock.advance(MONTH + timedelta(days=1))
    assert store.post("DID_FAIL_TO_RENEW", txn=store.txn(tid=latest)) == "subscription_on_hold"
    assert store.access() == []
    assert store.post("DID_RENEW", "BILLING_RECOVERY", txn=store.txn()) == "paid"
    assert store.sub().status is SubscriptionStatus.ACTIVE
    assert len(store.access()) == 1


def test_hold_grace_expiry_expiry_and_resubscribe(store: Store) -> None:
    store.subscribe()
    current = store.txn(tid=store.first)
    store.env.clock.advance(MONTH)
    assert store.post("DID_FAIL_TO_RENEW", txn=current) == "subscription_on_hold"
    assert store.access() == []  # on hold: no access while Apple retries billing
    assert store.post("DID_RENEW", txn=store.txn()) == "paid"
    assert store.sub().status is SubscriptionStatus.ACTIVE
    latest = store.txn(tid=store.env.order(store.sub().latest_order_id).platform_transaction_id)
    store.env.clock.advance(MONTH)
    grace = store.env.clock.now() + timedelta(days=6)
    renewal = store.renewal(grace_until=grace)
    assert store.post("DID_FAIL_TO_RENEW", "GRACE_PERIOD", txn=latest, renewal=renewal) == (
        "subscription_in_grace_period"
    )
    store.env.clock.advance(timedelta(days=6, minutes=1))
    assert store.post("GRACE_PERIOD_EXPIRED", txn=latest) == "subscription_on_hold"
    assert store.post("EXPIRED", "BILLING_RETRY", txn=latest) == "subscription_expired"
    assert store.access() == []
    with pytest.raises(TransitionNotAllowed):  # the flow never charges an ended subscription
        store.env.flow.orders.renew(SYSTEM, store.sub().first_order_id, token="tok")
    assert store.post("SUBSCRIBED", "RESUBSCRIBE", txn=store.txn()) == "paid"
    sub = store.sub()
    assert sub.status is SubscriptionStatus.ACTIVE
    assert store.access() == [("pro", sub.period_end)]


def test_a_voluntary_expiry_after_cancelling(store: Store) -> None:
    store.subscribe()
    current = store.txn(tid=store.first)
    store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", txn=current)
    store.env.clock.advance(MONTH + timedelta(minutes=1))
    assert store.post("EXPIRED", "VOLUNTARY", txn=current) in (
        "subscription_expired",
        "unchanged",  # the sweep may have expired it first; here no sweep ran
    )
    assert store.sub().status is SubscriptionStatus.EXPIRED
    events = [e.event for e in store.env.flow.history(SYSTEM, store.sub().id)]
    assert events[-2:] == ["cancel", "expire"]


def test_revoke_and_refund_take_access_away(store: Store) -> None:
    store.subscribe()
    revoked = store.txn(tid=store.first, revoked_at=store.env.clock.now())
    assert store.post("REVOKE", txn=revoked) == "subscription_revoked"
    assert store.access() == []
    topics = store.env.topics("u1")
    assert "entitlement.revoked" in topics and "subscription.revoked" in topics


def test_a_refund_of_the_current_period_revokes(store: Store) -> None:
    store.subscribe()
    refunded = store.txn(tid=store.first, revoked_at=store.env.clock.now())
    assert store.post("REFUND", txn=refunded) == "refunded"
    assert store.sub().status is SubscriptionStatus.REVOKED
    assert store.access() == []


def test_a_renewal_date_extension_moves_the_period_end(store: Store) -> None:
    sub = store.subscribe()
    later = store.txn(tid=store.first, days=40)
    assert store.post("RENEWAL_EXTENDED", txn=later) == "subscription_active"
    moved = store.sub()
    assert moved.period_end == START + timedelta(days=40) > sub.period_end
    assert store.access() == [("pro", moved.period_end)]
    assert store.post("RENEWAL_EXTENDED", txn=later) == "unchanged"  # a new notification, same date


def test_an_upgrade_changes_the_plan_at_once(store: Store) -> None:
    store.subscribe()
    store.env.flow.catalogue.add(PM, sku="max", title="Max", description="d", price=Money(999, "USD"), kind="subscription", period="month")  # fmt: skip
    upgraded = store.post("DID_CHANGE_RENEWAL_PREF", "UPGRADE", txn=store.txn(product="max"))
    assert upgraded == "paid"
    sub = store.sub()
    assert (sub.sku, sub.pending_sku, sub.status) == ("max", None, SubscriptionStatus.ACTIVE)
    assert [e.sku for e in store.env.flow.entitlements.active(BUYER, "u1")] == ["max"]


def test_apples_retries_and_changes_out_of_order_are_acknowledged(store: Store) -> None:
    store.subscribe()
    current = store.txn(tid=store.first)
    first = store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", txn=current, uuid="n-1")
    again = store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", txn=current, uuid="n-1")
    assert first == again == "subscription_cancelled"  # the retry returns the first result
    other = store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", txn=current)
    assert other == "unchanged"  # a second notice of the same change
    assert store.post("REVOKE", txn=current) == "subscription_revoked"
    assert store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", txn=current) == (
        "out_of_order"
    )
    assert store.sub().status is SubscriptionStatus.REVOKED
    history = [e.event for e in store.env.flow.history(SYSTEM, store.sub().id)]
    assert history.count("cancel") == 1


def test_a_change_for_a_purchase_the_flow_never_saw_records_it_first(store: Store) -> None:
    current = store.txn(tid=store.first)
    assert store.post("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", txn=current) == (
        "subscription_cancelled"
    )
    sub = store.sub()
    assert (sub.status, sub.user_id) == (SubscriptionStatus.CANCELLED, "u1")
    assert store.env.order(sub.first_order_id).platform_transaction_id == store.first
    assert sub.period_start == START
