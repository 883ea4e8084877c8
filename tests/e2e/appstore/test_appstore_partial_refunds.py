"""App Store partial refunds end to end, on both stores: Apple's prorated refunds
(``revocationType`` ``REFUND_PRORATED`` with ``revocationPercentage`` in thousandths of a
percent) posted over real HTTP to the notification endpoint, signed by the test chain, and a
smaller amount asked by a buyer or granted by staff (Apple decides what it refunds)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from apple_env import AGENT, BUYER, START, Env, bought
from apple_fakes import FakeAppStoreAPI, ms
from platform_env import post_json, served

from iap_flow import SYSTEM, InvalidInput, Money, OrderStatus, RefundStatus


@pytest.fixture
def stored(chain: Any, api: FakeAppStoreAPI, key_pem: bytes, store_url: str) -> Iterator[Env]:
    e = Env(chain, api, key_pem, url=store_url)
    yield e
    e.flow.close()


def revoked_like_apples_resource(
    env: Env, tid: str, at: datetime, *, kind: str = "REFUND_PRORATED", percentage: int = 50_000
) -> str:
    """A revoked transaction shaped like Apple's own test resource
    ``signedTransactionWithRevocation.json`` (an auto-renewable subscription at 10.99 USD,
    revocation reason 1, ``REFUND_PRORATED`` at 50000: half of it), signed by the test chain."""
    extra: dict[str, Any] = {
        "type": "Auto-Renewable Subscription",
        "subscriptionGroupIdentifier": "55555",
        "expiresDate": ms(START + timedelta(days=30)),
        "revocationReason": 1,
        "revocationType": kind,
        "revocationPercentage": percentage,
    }
    if kind != "REFUND_PRORATED":
        del extra["revocationPercentage"]
    return env.apple.transaction(
        "pro", START, transaction_id=tid, account="u1", price=10990, revoked_at=at, extra=extra
    )


def post(url: str, signed: str) -> tuple[int, str | None]:
    return post_json(url, {"signedPayload": signed})


def test_a_prorated_refund_refunds_its_share_and_the_rest_follows(stored: Env) -> None:
    env, apple = stored, stored.apple
    tid = apple.next_id()
    paid = apple.transaction("pro", START, transaction_id=tid, account="u1", price=10990)
    with served(env.notes.wsgi_app()) as url:
        assert post(url, apple.notification("SUBSCRIBED", paid, START, subtype="INITIAL_BUY")) == (
            200,
            "paid",
        )
        [order] = env.flow.orders.query(BUYER).items
        assert order.amount == Money(1099, "USD")

        env.clock.advance(timedelta(days=3))
        half = revoked_like_apples_resource(env, tid, env.clock.now())
        note = apple.notification("REFUND", half, env.clock.now())
        assert post(url, note) == (200, "partially_refunded")
        partly = env.order(order.id)
        # 50 % of 10.99 is 5.495: rounded half up to the cent
        assert (partly.status, partly.refunded) == (
            OrderStatus.PARTIALLY_REFUNDED,
            Money(550, "USD"),
        )
        [first] = env.flow.refunds.of_order(SYSTEM, order.id)
        assert (first.status, first.amount) == (RefundStatus.REFUNDED, Money(550, "USD"))
        assert [e.sku for e in env.flow.entitlements.active(BUYER, "u1")] == ["pro"]  # kept
        [told] = [n for n in env.notifier.to("u1") if n.topic == "refund.succeeded"]
        assert (told.payload["amount"], told.payload["currency"]) == (550, "USD")

        # Apple's retry, and another notification about the same revocation: nothing more
        assert post(url, note)[0] == 200
        assert post(url, apple.notification("REFUND", half, env.clock.now()))[0] == 200
        assert env.order(order.id).version == partly.version
        assert len(env.flow.refunds.of_order(SYSTEM, order.id)) == 1

        env.clock.advance(timedelta(days=1))
        full = revoked_like_apples_resource(env, tid, env.clock.now(), kind="REFUND_FULL")
        assert post(url, apple.notification("REFUND", full, env.clock.now())) == (200, "refunded")
    done = env.order(order.id)
    assert (done.status, done.refunded) == (OrderStatus.REFUNDED, done.amount)
    amounts = [r.amount.amount for r in env.flow.refunds.of_order(SYSTEM, order.id)]
    assert amounts == [550, 549] and sum(amounts) == 1099  # to the cent
    assert env.flow.entitlements.active(BUYER, "u1") == []  # all of it: access ends
    assert env.events(order.id)[-2:] == ["partial_refund", "refund"]


@pytest.mark.parametrize(
    ("price", "currency", "percentage", "refunded", "outcome"),
    [
        (1990, "USD", 33_333, 66, "partially_refunded"),  # 1.99 * 33.333 % = 0.6633
        (1990, "USD", 25_000, 50, "partially_refunded"),  # 0.4975 rounds half up
        (160_000, "JPY", 50_000, 80, "partially_refunded"),  # no minor unit
        (1990, "USD", 100_000, 199, "refunded"),  # 100 %: all of it
        (1990, "USD", 99_999, 199, "refunded"),  # rounds to all of it: refunded
    ],
)
def test_the_share_is_rounded_half_up_to_the_minor_unit(
    env: Env, price: int, currency: str, percentage: int, refunded: int, outcome: str
) -> None:
    tid = env.apple.next_id()
    signed = env.apple.transaction(
        "gems", START, transaction_id=tid, account="u1", price=price, currency=currency
    )
    env.notes.ingest(env.apple.notification("ONE_TIME_CHARGE", signed, START))
    revoked = env.apple.transaction(
        "gems",
        START,
        transaction_id=tid,
        account="u1",
        price=price,
        currency=currency,
        revoked_at=START,
        extra={"revocationType": "REFUND_PRORATED", "revocationPercentage": percentage},
    )
    with served(env.notes.wsgi_app()) as url:
        assert post(url, env.apple.notification("REFUND", revoked, START)) == (200, outcome)
    [order] = env.flow.orders.query(BUYER).items
    assert order.refunded == Money(refunded, currency)


def test_a_buyer_asks_for_part_staff_grant_less_and_apple_decides(stored: Env) -> None:
    env = stored
    tid, _, order = bought(env)  # 1.99 USD
    asked = env.flow.refunds.request(
        BUYER, order.id, reason="half the gems never came", amount=Money(150, "USD")
    )
    assert asked.amount == Money(150, "USD")
    with pytest.raises(InvalidInput, match=r"at most 1\.50 USD"):  # no more than was asked
        env.flow.refunds.approve(AGENT, asked.id, amount=Money(200, "USD"))
    granted = env.flow.refunds.approve(AGENT, asked.id, amount=Money(100, "USD"))
    # Apple decides App Store refunds: staff's decision is answered, nothing is paid out
    assert (granted.status, granted.amount) == (RefundStatus.APPROVED, Money(100, "USD"))
    (answer,) = env.api.consumption_answers()
    assert answer.body["refundPreference"] == "GRANT_PRORATED"  # part of what was paid
    approval = [e for e in env.flow.history(SYSTEM, asked.id) if e.event == "approve"]
    assert (approval[0].data["asked"], approval[0].data["granted"]) == (150, 100)

    env.clock.advance(timedelta(hours=5))
    revoked = env.apple.transaction(
        "gems",
        START,
        transaction_id=tid,
        account="u1",
        revoked_at=env.clock.now(),
        extra={"revocationType": "REFUND_PRORATED", "revocationPercentage": 40_000},
    )
    with served(env.notes.wsgi_app()) as url:
        refund_note = env.apple.notification("REFUND", revoked, env.clock.now())
        assert post(url, refund_note) == (200, "partially_refunded")
    # What Apple gave back (40 % of 1.99 = 0.796), not what was asked or granted
    done = env.flow.refunds.get(SYSTEM, asked.id)
    assert (done.status, done.amount) == (RefundStatus.REFUNDED, Money(80, "USD"))
    after = env.order(order.id)
    assert (after.status, after.refunded) == (OrderStatus.PARTIALLY_REFUNDED, Money(80, "USD"))
    assert env.flow.refunds.of_order(SYSTEM, order.id) == [done]

    # the buyer may ask for the rest, and no more
    with pytest.raises(InvalidInput, match=r"at most 1\.19 USD"):
        env.flow.refunds.request(BUYER, order.id, reason="x", amount=Money(120, "USD"))
    rest = env.flow.refunds.request(BUYER, order.id, reason="the rest")
    assert rest.amount == Money(119, "USD")
