"""Google Play end to end: RTDN pushes applied once per Pub/Sub messageId, purchases looked up
and refunds paid out through androidpublisher v3 (static discovery document from the
package) answered by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from wsgiref.simple_server import make_server

import pytest
from platform_env import QuietHandler, post_json
from play_env import AGENT, BUYER, START, Env, ms
from play_fakes import (
    PACKAGE,
    one_time,
    product_purchase,
    push,
    refund_review,
    subscription,
    subscription_purchase,
    voided,
)

from iap_flow import (
    SYSTEM,
    DeadlineKind,
    Money,
    OrderStatus,
    RefundStatus,
)
from iap_flow.adapters.googleplay import (
    NotificationRejected,
)


def test_purchase_staff_refund_then_voided_notice_and_reconciliation_change_nothing(
    env: Env,
) -> None:
    token, order_id = "tok-1", "GPA.3300-0000-0000-00001"
    env.play.purchases[token] = product_purchase(order_id, "u1")
    purchased = one_time(token, "gems", ms(START))
    first = env.deliver(purchased, "m-1")
    again = env.deliver(purchased, "m-1")  # Pub/Sub redelivers the same message
    assert (first.outcome, again.order_id, again.duplicate) == ("paid", first.order_id, True)
    order = env.order(first.order_id)
    assert (order.status, order.user_id, order.platform_transaction_id) == (
        OrderStatus.PAID, "u1", order_id
    )  # fmt: skip
    assert env.topics("u1") == ["order.paid"]
    assert not any("discovery" in c.path for c in env.play.calls)  # the packaged document

    env.flow.orders.deliver(SYSTEM, order.id)
    env.flow.orders.complete(BUYER, order.id)
    requested = env.flow.refunds.request(BUYER, order.id, reason="did not want it")
    refund = env.flow.refunds.approve(AGENT, requested.id)
    assert refund.status is RefundStatus.REFUNDED
    [call] = env.play.refund_calls()
    assert (call.method, call.path) == (
        "POST", f"/androidpublisher/v3/applications/{PACKAGE}/orders/{order_id}:refund"
    )  # fmt: skip
    assert call.query == {"revoke": ["true"]}
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert env.topics("u1") == ["order.paid", "refund.succeeded"]

    env.clock.advance(timedelta(hours=1))
    notice = env.deliver(voided(token, order_id, ms(env.clock.now())))
    assert (notice.outcome, notice.refund_id) == ("refunded", refund.id)
    env.play.voided = [{"orderId": order_id, "purchaseToken": token, "voidedReason": 1}]
    before = env.snapshot()
    counts = env.notes.reconcile_voided(START)
    assert (counts.seen, counts.already, counts.refunded) == (1, 1, 0)
    assert env.snapshot() == before
    assert env.events(refund.id) == ["request", "open_review", "approve", "submit", "confirm"]
    assert env.topics("u1") == ["order.paid", "refund.succeeded"]
    assert env.play.refunded == [order_id]


@pytest.mark.parametrize(
    ("script", "calls", "sweeps"),
    [
        (["503", "503"], 3, 2),  # down twice: retried by the sweep with the same refund
        (["refund_then_503"], 1, 0),  # refunded, but the answer got lost: orders.get tells
        (["503", "refund_then_503"], 2, 1),
    ],
)
def test_refund_failures_are_retried_by_the_core_and_never_doubled(
    env: Env, script: list[str], calls: int, sweeps: int
) -> None:
    _, order_id, order = env.bought()
    env.play.refund_script = list(script)
    requested = env.flow.refunds.request(BUYER, order.id, reason="broken")
    refund = env.flow.refunds.approve(AGENT, requested.id)
    for _ in range(sweeps):
        assert refund.status is RefundStatus.FAILED
        env.clock.advance(env.flow.policy.refund_retry_delay + timedelta(seconds=1))
        env.flow.sweep()
        refund = env.flow.refunds.get(SYSTEM, refund.id)
    assert refund.status is RefundStatus.REFUNDED
    assert len(env.play.refund_calls()) == calls
    assert env.play.refunded == [order_id]  # money moved once
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert env.topics("u1").count("refund.succeeded") == 1


def test_reconciliation_records_console_refunds_and_chargebacks_once(env: Env) -> None:
    _, first_id, first = env.bought(1)
    token, second_id, second = env.bought(2, account="u2")
    env.play.voided = [
        {"orderId": second_id, "purchaseToken": token, "voidedReason": 7, "voidedSource": 2},
        {"orderId": "GPA.9999-0000-0000-00000", "purchaseToken": "other", "voidedReason": 1},
        {"orderId": first_id, "purchaseToken": "tok-1", "voidedReason": 1, "voidedQuantity": 1},
    ]
    env.play.purchases["tok-1"]["quantity"] = 2  # one of two voided: half refunded
    env.play.voided_page = 1  # three pages
    counts = env.notes.reconcile_voided(START - timedelta(days=3))
    assert (counts.seen, counts.refunded, counts.unknown, counts.partial) == (3, 1, 1, 1)
    assert env.order(second.id).status is OrderStatus.REFUNDED
    partly = env.order(first.id)
    assert (partly.status, partly.refunded) == (OrderStatus.PARTIALLY_REFUNDED, Money(100, "USD"))
    assert env.topics("u2") == ["order.paid", "refund.succeeded"]
    before = env.snapshot()
    again = env.notes.reconcile_voided(START - timedelta(days=3))
    assert (again.refunded, again.partial, again.already) == (0, 0, 2)
    assert env.snapshot() == before
    assert env.play.refund_calls() == []  # reconciling never calls orders.refund


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_chargeback_review_is_answered_within_googles_deadline(env: Env, decision: str) -> None:
    token, order_id, order = env.bought()
    env.clock.advance(timedelta(days=20))  # past the buyer's refund window: Google still asks
    asked = env.clock.now()
    review = refund_review(order_id, "pending-refund-token-1", ms(asked))
    opened, opened_again = env.deliver(review, "m-r"), env.deliver(review, "m-r")
    assert (opened.outcome, opened_again.refund_id) == ("review_opened", opened.refund_id)
    refund = env.flow.refunds.get(SYSTEM, opened.refund_id)
    assert refund.review_due_at == asked + timedelta(hours=24)
    deadlines = {d.kind: d.due_at for d in env.flow.store.pending_deadlines(refund.id)}
    assert deadlines == {  # Google's deadline, and the policy answer an hour before it
        DeadlineKind.REFUND_REVIEW: asked + timedelta(hours=24),
        DeadlineKind.REVIEW_ANSWER: asked + timedelta(hours=23),
    }

    if decision == "approve":
        refund = env.flow.refunds.approve(AGENT, refund.id)
    else:
        refund = env.flow.refunds.reject(AGENT, refund.id, reason="the gems were spent")
    [call] = env.play.review_calls()
    assert call.path.endswith(f"/orders/{order_id}:reviewrefund")
    assert call.body == {
        "pendingRefundToken": "pending-refund-token-1",
        "sampleContentProvided": False,
        "refundPreference": "APPROVE" if decision == "approve" else "DECLINE",
    }
    assert env.play.refund_calls() == []  # a chargeback is never refunded a second time
    if decision == "approve":
        assert refund.status is RefundStatus.APPROVED
        unconfirmed = env.deliver(voided(token, order_id, ms(env.clock.now())))
        assert unconfirmed.outcome == "unconfirmed"  # Google does not say so: nothing changes
        assert env.flow.refunds.get(SYSTEM, refund.id).status is RefundStatus.APPROVED
        env.play.orders[order_id] = {"state": "REFUNDED"}  # Google grants it
        env.deliver(voided(token, order_id, ms(env.clock.now())))
        assert env.flow.refunds.get(SYSTEM, refund.id).status is RefundStatus.REFUNDED
        assert env.order(order.id).status is OrderStatus.REFUNDED
    else:
        assert refund.status is RefundStatus.REJECTED
        assert env.order(order.id).status is OrderStatus.PAID


def test_a_subscription_renewal_is_a_new_order_linked_to_the_first(env: Env) -> None:
    env.play.subscriptions["sub-tok"] = subscription_purchase(
        "pro", "GPA.5500-0000-0000-00001", "u1"
    )
    first = env.deliver(subscription(token="sub-tok", at_ms=ms(START), kind=4))
    env.clock.advance(timedelta(days=30))
    env.play.subscriptions["sub-tok"] = subscription_purchase(
        "pro", "GPA.5500-0000-0000-00001..0", "u1"
    )
    renewed = subscription(token="sub-tok", at_ms=ms(env.clock.now()), kind=2)
    renewal, again = env.deliver(renewed, "m-renew"), env.deliver(renewed, "m-renew")
    assert renewal.order_id == again.order_id != first.order_id
    order = env.order(renewal.order_id)
    assert (order.subscription_id, order.status, order.platform_transaction_id) == (
        first.order_id, OrderStatus.PAID, "GPA.5500-0000-0000-00001..0"
    )  # fmt: skip
    canceled = env.deliver(subscription(token="sub-tok", at_ms=ms(env.clock.now()), kind=3))
    assert canceled.outcome == "unconfirmed"  # Google still says it is active: the push alone
    assert env.flow.subscriptions.for_order(SYSTEM, first.order_id).auto_renew  # changes nothing


def test_the_app_can_confirm_a_purchase_with_its_token(env: Env) -> None:
    placed = env.flow.orders.place(BUYER, "gems")
    env.play.purchases["tok-app"] = product_purchase("GPA.3300-0000-0000-00077", "u1")
    paid = env.flow.orders.pay(BUYER, placed.id, token="tok-app")
    assert (paid.status, paid.platform_transaction_id) == (
        OrderStatus.PAID,
        "GPA.3300-0000-0000-00077",
    )
    late = env.deliver(one_time("tok-app", "gems", ms(START)))  # Google's notice comes after
    assert late.order_id == placed.id
    env.play.purchases["tok-pending"] = product_purchase("GPA.3300-0000-0000-00078", "u1", state=2)
    pending = env.flow.orders.place(BUYER, "gems")
    with pytest.raises(Exception, match="pending"):
        env.flow.orders.pay(BUYER, pending.id, token="tok-pending")
    assert env.order(pending.id).status is OrderStatus.PENDING_PAYMENT


@pytest.mark.parametrize("forge", ["other_package", "other_subscription", "not_base64", "two_bodies", "unknown_purchase"])  # fmt: skip
def test_a_push_failing_verification_is_refused_logged_and_changes_nothing(
    env: Env, forge: str, caplog: pytest.LogCaptureFixture
) -> None:
    note = one_time("tok-forged", "gems", ms(START))
    envelope = push(note, "m-x")
    if forge == "other_package":
        envelope = push(note, "m-x", package="com.evil")
    elif forge == "other_subscription":
        envelope["subscription"] = "projects/evil/subscriptions/x"
    elif forge == "not_base64":
        envelope["message"]["data"] = "%%%"
    elif forge == "two_bodies":
        envelope = push({**note, **voided("t", "o", 1)}, "m-x")
    before = env.snapshot()
    with caplog.at_level(logging.WARNING), pytest.raises(NotificationRejected) as refused:
        env.notes.ingest_push(envelope, authorization=env.play.sign())
    assert refused.value.source == "google_play"
    assert env.snapshot() == before
    assert any("refused google_play notification" in r.getMessage() for r in caplog.records)


def test_the_push_endpoint_answers_pubsub(env: Env) -> None:
    env.play.purchases["tok-w"] = product_purchase("GPA.3300-0000-0000-00042", "u1")
    server = make_server("127.0.0.1", 0, env.notes.wsgi_app(), handler_class=QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/play/rtdn"
    signed = {"Authorization": env.play.sign()}
    try:
        envelope = push(one_time("tok-w", "gems", ms(START)), "m-w")
        assert post_json(url, envelope)[0] == 403  # anonymous
        assert post_json(url, envelope, signed) == (200, "paid")
        assert post_json(url, envelope, signed) == (200, "paid")  # redelivery
        assert post_json(url, envelope, {"Authorization": env.play.sign(aud="x")})[0] == 403
        assert post_json(url, {"message": {}}, signed)[0] == 400
    finally:
        server.shutdown()
        server.server_close()
    assert len(env.flow.orders.query(BUYER).items) == 1
