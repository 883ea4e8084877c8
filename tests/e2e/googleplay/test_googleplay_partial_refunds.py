"""Google Play partial refunds end to end, on both stores: quantity-based partial refunds
pushed over real HTTP with Pub/Sub's signed OIDC token, confirmed with the fake Google
(``orders.get``, ``voidedpurchases.list``) before they are recorded; payouts of what remains;
and an adapter that raises during a payout."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from platform_env import post_json, served
from play_env import AGENT, BUYER, START, Env, ms
from play_fakes import FakePlay, one_time, product_purchase, push, refund_review, voided

from iap_flow import SYSTEM, Actor, Money, OrderStatus, RefundStatus


@pytest.fixture
def stored(play: FakePlay, store_url: str) -> Iterator[Env]:
    e = Env(play, url=store_url)
    e.flow.catalogue.add(
        Actor("pm", "product_manager"),
        sku="gems3",
        title="Three gem packs",
        description="d",
        price=Money(597, "USD"),
        kind="consumable",
    )
    yield e
    e.flow.close()


def send(env: Env, url: str, notification: dict[str, object], mid: str) -> tuple[int, str | None]:
    return post_json(url, push(notification, mid), {"Authorization": env.play.sign()})


def test_a_quantity_based_partial_refund_is_confirmed_then_recorded_once(stored: Env) -> None:
    env, play = stored, stored.play
    token, order_id = "tok-3", "GPA.3300-0000-0000-00003"
    play.purchases[token] = product_purchase(order_id, "u1", quantity=3)
    with served(env.notes.wsgi_app()) as url:
        assert send(env, url, one_time(token, "gems3", ms(START)), "m-1") == (200, "paid")
        [order] = env.flow.orders.query(BUYER).items
        env.flow.orders.deliver(SYSTEM, order.id)

        env.clock.advance(timedelta(days=2))
        at = ms(env.clock.now())
        partial = voided(token, order_id, at, refund_type=2)
        # Google does not (yet) say the order is refunded: nothing is recorded
        assert send(env, url, partial, "m-2") == (200, "unconfirmed")
        assert env.order(order.id).refunded == Money(0, "USD")

        play.orders[order_id] = {"state": "PARTIALLY_REFUNDED"}
        play.voided = [
            {"orderId": order_id, "purchaseToken": token, "voidedQuantity": 1,
             "voidedTimeMillis": str(at), "voidedReason": 1},
        ]  # fmt: skip
        assert send(env, url, partial, "m-3") == (200, "partially_refunded")
        listed = [c for c in play.api_calls() if c.path.endswith("voidedpurchases")]
        assert listed[-1].query["includeQuantityBasedPartialRefund"] == ["true"]
        partly = env.order(order.id)
        assert (partly.status, partly.refunded) == (
            OrderStatus.PARTIALLY_REFUNDED,
            Money(199, "USD"),
        )  # one of three packs
        assert send(env, url, partial, "m-3")[0] == 200  # Pub/Sub redelivers
        assert send(env, url, partial, "m-4")[0] == 200  # Google sends it again
    counts = env.notes.reconcile_voided(START)  # and the daily reconciliation sees it
    assert (counts.seen, counts.already, counts.partial) == (1, 1, 0)
    assert env.order(order.id).version == partly.version

    # the other two: Google now has the order refunded; the reconciliation records the rest
    play.orders[order_id] = {"state": "REFUNDED"}
    later = str(ms(env.clock.now() + timedelta(hours=1)))
    play.voided.append(
        {"orderId": order_id, "purchaseToken": token, "voidedQuantity": 2,
         "voidedTimeMillis": later, "voidedReason": 1},
    )  # fmt: skip
    counts = env.notes.reconcile_voided(START)
    assert (counts.seen, counts.already, counts.refunded) == (2, 1, 1)
    done = env.order(order.id)
    assert (done.status, done.refunded) == (OrderStatus.REFUNDED, Money(597, "USD"))
    amounts = [r.amount.amount for r in env.flow.refunds.of_order(SYSTEM, order.id)]
    assert amounts == [199, 398] and sum(amounts) == done.amount.amount
    assert env.topics("u1").count("refund.succeeded") == 2
    assert play.refund_calls() == []  # Google moved the money; nothing was paid out here


def test_staff_may_pay_out_the_rest_but_not_a_smaller_amount(stored: Env) -> None:
    env, play = stored, stored.play
    _, order_id, order = env.bought()
    asked = env.flow.refunds.request(BUYER, order.id, reason="half", amount=Money(100, "USD"))
    refused = env.flow.refunds.approve(AGENT, asked.id)
    # Google's orders.refund takes no amount: a smaller one is refused, not retried
    assert (refused.status, refused.escalated) == (RefundStatus.FAILED, True)
    assert refused.last_error is not None and "Play Console" in refused.last_error
    assert play.refund_calls() == [] and env.order(order.id).refunded == Money(0, "USD")

    # the lead refunds half in Play Console: the reconciliation records it on that refund
    play.purchases["tok-1"]["quantity"] = 2
    play.voided = [
        {"orderId": order_id, "purchaseToken": "tok-1", "voidedQuantity": 1,
         "voidedTimeMillis": str(ms(env.clock.now())), "voidedReason": 0},
    ]  # fmt: skip
    assert env.notes.reconcile_voided(START).partial == 1
    assert env.order(order.id).refunded == Money(100, "USD")  # half of 1.99, rounded half up
    recorded = env.flow.refunds.get(SYSTEM, refused.id)
    assert (recorded.status, recorded.amount) == (RefundStatus.REFUNDED, Money(100, "USD"))

    # then the buyer asks for what remains, and staff pay it out with orders.refund
    rest = env.flow.refunds.request(BUYER, order.id, reason="the rest")
    assert rest.amount == Money(99, "USD")
    paid = env.flow.refunds.approve(AGENT, rest.id)
    assert paid.status is RefundStatus.REFUNDED
    assert play.refunded == [order_id]
    done = env.order(order.id)
    assert (done.status, done.refunded) == (OrderStatus.REFUNDED, Money(199, "USD"))


def test_an_adapter_that_raises_during_a_payout_is_a_failed_attempt_retried(
    stored: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env, play = stored, stored.play
    _, order_id, order = env.bought()
    # Google refunds, then the answer is cut short: http.client raises IncompleteRead, which
    # the adapter does not map (a bug of the kind this guards against)
    play.refund_script = ["refund_then_cut"]
    asked = env.flow.refunds.request(BUYER, order.id, reason="broken")
    with caplog.at_level(logging.ERROR, logger="iap_flow"):
        result = env.flow.refunds.approve(AGENT, asked.id)  # the approver gets their result
    assert result.status is RefundStatus.FAILED and result.decided_by == AGENT.id
    assert result.last_error is not None and "IncompleteRead" in result.last_error
    [logged] = [r for r in caplog.records if "raised during the payout" in r.getMessage()]
    assert logged.exc_info is not None  # the cause, with its traceback
    assert env.order(order.id).status is OrderStatus.PAID

    env.clock.advance(env.flow.policy.refund_retry_delay + timedelta(seconds=1))
    assert env.flow.sweep().retried == 1  # the same key again: Google says it is refunded
    refund = env.flow.refunds.get(SYSTEM, asked.id)
    assert refund.status is RefundStatus.REFUNDED
    assert play.refunded == [order_id]  # money moved once
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert env.topics("u1").count("refund.succeeded") == 1


def test_a_review_after_a_partial_refund_opens_its_own_case(stored: Env) -> None:
    """A chargeback review of what remains after a partial refund is a new case: it opens a
    review of its own instead of joining the refund already paid."""
    env, play = stored, stored.play
    token, order_id = "tok-r", "GPA.3300-0000-0000-00009"
    play.purchases[token] = product_purchase(order_id, "u1", quantity=3)
    with served(env.notes.wsgi_app()) as url:
        assert send(env, url, one_time(token, "gems3", ms(START)), "r-1") == (200, "paid")
        [order] = env.flow.orders.query(BUYER).items
        env.flow.orders.deliver(SYSTEM, order.id)
        at = ms(env.clock.now())
        play.orders[order_id] = {"state": "PARTIALLY_REFUNDED"}
        play.voided = [
            {"orderId": order_id, "purchaseToken": token, "voidedQuantity": 1,
             "voidedTimeMillis": str(at), "voidedReason": 1},
        ]  # fmt: skip
        partial = voided(token, order_id, at, refund_type=2)
        assert send(env, url, partial, "r-2") == (200, "partially_refunded")
        [paid_back] = env.flow.refunds.of_order(SYSTEM, order.id)
        assert paid_back.status is RefundStatus.REFUNDED
        env.clock.advance(timedelta(hours=1))
        status, _ = send(env, url, refund_review(order_id, "pending-9", ms(env.clock.now())), "r-3")
        assert status == 200
    refunds = env.flow.refunds.of_order(SYSTEM, order.id)
    assert [r.status for r in refunds] == [RefundStatus.REFUNDED, RefundStatus.IN_REVIEW]
    assert refunds[1].platform_refund_id == "pending-9"
    assert env.flow.refunds.get(SYSTEM, paid_back.id) == paid_back  # the paid one untouched
