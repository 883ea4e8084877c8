"""App Store end to end: notifications signed with a local chain shaped like Apple's, verified
by app-store-server-library's SignedDataVerifier with its strict chain checks, applied to a
flow once however often Apple delivers them, and staff's decisions answered to a local App
Store Server API over real HTTP."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import make_server

import pytest
from apple_env import AGENT, BUYER, LEAD, START, Env, bought
from apple_fakes import (
    Apple,
    Chain,
    FakeAppStoreAPI,
    tamper,
)
from hypothesis import given
from hypothesis import strategies as st
from platform_env import QuietHandler, post_json

from iap_flow import (
    SYSTEM,
    DeadlineKind,
    Money,
    OrderStatus,
    Policy,
    RefundStatus,
    ReviewAnswerPolicy,
)
from iap_flow.adapters.appstore import (
    NotificationRejected,
)
from iap_flow.adapters.appstore.platform import minor_units


def test_purchase_review_answer_and_apple_refund_each_applied_once(env: Env) -> None:
    apple, notes = env.apple, env.notes
    tid = apple.next_id()
    txn = apple.transaction("gems", env.clock.now(), transaction_id=tid, account="u1")
    charge = apple.notification("ONE_TIME_CHARGE", txn, env.clock.now())

    first, again = notes.ingest(charge), notes.ingest(charge)
    assert (first.outcome, first.duplicate) == ("paid", False)
    assert (again.order_id, again.duplicate) == (first.order_id, True)
    assert first.order_id is not None
    order = env.order(first.order_id)
    assert (order.status, order.user_id, order.amount) == (
        OrderStatus.PAID,
        "u1",
        Money(199, "USD"),
    )
    assert order.platform_transaction_id == tid
    assert env.events(order.id) == ["record", "pay"]
    assert env.topics("u1") == ["order.paid"]

    env.flow.orders.deliver(SYSTEM, order.id)
    env.flow.orders.complete(BUYER, order.id)
    in_app = env.flow.refunds.request(BUYER, order.id, reason="bought it by mistake")

    env.clock.advance(timedelta(hours=1))
    asked_at = env.clock.now()
    ask = apple.notification(
        "CONSUMPTION_REQUEST",
        txn,
        asked_at,
        extra={"consumptionRequestReason": "UNINTENDED_PURCHASE"},
    )
    review, review_again = notes.ingest(ask), notes.ingest(ask)
    assert (review.outcome, review.refund_id) == ("review_opened", in_app.id)
    assert review_again.refund_id == in_app.id and review_again.duplicate
    refund = env.flow.refunds.get(SYSTEM, in_app.id)
    assert refund.review_due_at == asked_at + timedelta(hours=12)  # Apple's, sooner than 24 h
    deadlines = {d.kind: d.due_at for d in env.flow.store.pending_deadlines(in_app.id)}
    assert deadlines == {  # Apple's deadline, and the policy answer an hour before it
        DeadlineKind.REFUND_REVIEW: asked_at + timedelta(hours=12),
        DeadlineKind.REVIEW_ANSWER: asked_at + timedelta(hours=11),
    }

    decided = env.flow.refunds.approve(AGENT, in_app.id)
    assert decided.status is RefundStatus.APPROVED  # Apple decides: nothing is paid out here
    [answer] = env.api.consumption_answers()
    assert answer.path == f"/inApps/v2/transactions/consumption/{tid}"
    assert answer.body == {
        "customerConsented": True,
        "sampleContentProvided": False,
        "deliveryStatus": "DELIVERED",
        "refundPreference": "GRANT_FULL",
    }

    env.clock.advance(timedelta(hours=3))
    revoked = apple.transaction(
        "gems", START, transaction_id=tid, account="u1", revoked_at=env.clock.now()
    )
    refund_note = apple.notification("REFUND", revoked, env.clock.now())
    done, done_again = notes.ingest(refund_note), notes.ingest(refund_note)
    assert (done.outcome, done.refund_id, done_again.refund_id) == (
        "refunded",
        in_app.id,
        in_app.id,
    )
    assert env.flow.refunds.get(SYSTEM, in_app.id).status is RefundStatus.REFUNDED
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert env.topics("u1") == ["order.paid", "refund.succeeded"]
    assert env.events(in_app.id) == [
        "request",
        "open_review",
        "open_review",
        "approve",
        "answer_platform",
        "platform_refund",
    ]  # fmt: skip  (the second open_review: Apple's sooner deadline joined the request)
    assert len(env.api.consumption_answers()) == 1


def test_rejection_is_answered_as_decline_and_apples_decline_changes_nothing(env: Env) -> None:
    _, txn, order = bought(env)
    ask = env.apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now())
    review = env.notes.ingest(ask)
    assert review.refund_id is not None
    env.flow.refunds.reject(AGENT, review.refund_id, reason="the gems were used")
    [answer] = env.api.consumption_answers()
    assert answer.body["refundPreference"] == "DECLINE"

    declined = env.apple.notification("REFUND_DECLINED", txn, env.clock.now())
    result = env.notes.ingest(declined)
    assert (result.outcome, result.refund_id) == ("declined", review.refund_id)
    assert env.flow.refunds.get(SYSTEM, review.refund_id).status is RefundStatus.REJECTED
    assert env.topics("u1") == ["order.paid", "refund.rejected"]  # told once, by staff
    assert env.order(order.id).status is OrderStatus.PAID


def test_apple_may_decline_after_staff_approved(env: Env) -> None:
    _, txn, order = bought(env)
    review = env.notes.ingest(env.apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now()))
    assert review.refund_id is not None
    env.flow.refunds.approve(AGENT, review.refund_id)
    declined = env.apple.notification("REFUND_DECLINED", txn, env.clock.now())
    env.notes.ingest(declined)
    env.notes.ingest(declined)
    refund = env.flow.refunds.get(SYSTEM, review.refund_id)
    assert refund.status is RefundStatus.REJECTED
    assert env.events(refund.id)[-1] == "platform_decline"
    assert env.topics("u1") == ["order.paid", "refund.rejected"]
    assert env.order(order.id).status is OrderStatus.PAID


def test_a_renewal_is_a_new_order_linked_to_the_subscription(env: Env) -> None:
    first_tid = env.apple.next_id()
    first_txn = env.apple.transaction(
        "pro", START, transaction_id=first_tid, account="u1", price=4990
    )
    first = env.notes.ingest(
        env.apple.notification("SUBSCRIBED", first_txn, START, subtype="INITIAL_BUY")
    )
    env.clock.advance(timedelta(days=30))
    renewal_txn = env.apple.transaction("pro", env.clock.now(), original=first_tid, price=4990)
    renew = env.apple.notification("DID_RENEW", renewal_txn, env.clock.now())
    renewed, renewed_again = env.notes.ingest(renew), env.notes.ingest(renew)
    assert renewed.order_id == renewed_again.order_id != first.order_id
    assert renewed.order_id is not None and first.order_id is not None
    renewal = env.order(renewed.order_id)
    assert (renewal.subscription_id, renewal.user_id, renewal.status) == (
        first.order_id,
        "u1",
        OrderStatus.PAID,
    )
    assert renewal.amount == Money(499, "USD")
    page = env.flow.orders.query(BUYER)
    assert len(page.items) == 2


def test_refund_apple_decided_alone_then_reversed(env: Env) -> None:
    tid, _, order = bought(env)
    revoked = env.apple.transaction(
        "gems", START, transaction_id=tid, account="u1", revoked_at=START
    )
    refunded = env.notes.ingest(env.apple.notification("REFUND", revoked, env.clock.now()))
    assert refunded.refund_id is not None
    assert env.events(refunded.refund_id) == ["request", "platform_refund"]
    reversal = env.apple.notification("REFUND_REVERSED", revoked, env.clock.now())
    result, again = env.notes.ingest(reversal), env.notes.ingest(reversal)
    assert (result.outcome, again.refund_id) == ("reversed", refunded.refund_id)
    # Refunded is final: the reversal is audited (once) and told, the states stay.
    assert env.events(refunded.refund_id) == ["request", "platform_refund", "platform_reversal"]
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert env.topics("support_agent").count("refund.reversed") == 1
    assert env.topics("u1") == ["order.paid", "refund.succeeded", "refund.reversed"]


def test_consumption_request_deadline_escalates_when_staff_miss_it(
    chain: Chain, api: FakeAppStoreAPI, key_pem: bytes
) -> None:
    # with the policy answer off, nothing is sent on its own: the lead is told at Apple's deadline
    env = Env(chain, api, key_pem, policy=Policy(review_answer=ReviewAnswerPolicy(enabled=False)))
    _, txn, order = bought(env)
    env.flow.orders.deliver(SYSTEM, order.id)  # the gems were granted: only the review is due
    review = env.notes.ingest(env.apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now()))
    assert review.refund_id is not None
    env.clock.advance(timedelta(hours=11, minutes=59))
    assert env.flow.sweep().escalated == 0
    env.clock.advance(timedelta(minutes=2))
    assert env.flow.sweep().escalated == 1
    assert env.flow.refunds.get(SYSTEM, review.refund_id).escalated
    assert env.api.consumption_answers() == []
    env.flow.close()


@pytest.mark.parametrize(
    "forge",
    [
        "tampered",
        "foreign_root",
        "wrong_bundle",
        "wrong_environment",
        "leaf_without_marker",
        "intermediate_without_marker",
        "signed_when_expired",
    ],
)
def test_a_payload_failing_verification_is_refused_logged_and_changes_nothing(
    env: Env, forge: str, caplog: pytest.LogCaptureFixture
) -> None:
    apple, now = env.apple, env.clock.now()
    txn = apple.transaction("gems", now, account="u1")
    good = apple.notification("ONE_TIME_CHARGE", txn, now)
    if forge == "tampered":
        payload = tamper(good, notificationType="REFUND")
    elif forge == "foreign_root":
        other = Apple(Chain.generate("Mallory"))
        payload = other.notification("ONE_TIME_CHARGE", other.transaction("gems", now), now)
    elif forge == "wrong_bundle":
        payload = apple.notification("ONE_TIME_CHARGE", txn, now, extra={"bundleId": "com.evil"})
    elif forge == "wrong_environment":
        payload = Apple(apple.chain, environment="Production").notification(
            "ONE_TIME_CHARGE", txn, now
        )
    elif forge.endswith("_without_marker"):
        unmarked = Apple(apple.chain.without_marker(forge.split("_")[0]))
        payload = unmarked.notification("ONE_TIME_CHARGE", unmarked.transaction("gems", now), now)
    else:
        payload = apple.notification("ONE_TIME_CHARGE", txn, datetime(2031, 1, 1, tzinfo=UTC))
    before = env.snapshot()
    with caplog.at_level(logging.WARNING), pytest.raises(NotificationRejected) as refused:
        env.notes.ingest(payload)
    assert refused.value.source == "app_store"
    assert env.snapshot() == before
    assert any("refused app_store notification" in r.getMessage() for r in caplog.records)


def test_a_tampered_inner_transaction_is_refused(env: Env) -> None:
    txn = tamper(env.apple.transaction("gems", env.clock.now(), account="u1"), productId="gems_big")
    before = env.snapshot()
    with pytest.raises(NotificationRejected):
        env.notes.ingest(env.apple.notification("ONE_TIME_CHARGE", txn, env.clock.now()))
    assert env.snapshot() == before


def test_without_the_buyers_consent_apple_is_not_answered(
    chain: Chain, api: FakeAppStoreAPI, key_pem: bytes
) -> None:
    env = Env(chain, api, key_pem, consent=lambda order: False)
    _, txn, _ = bought(env)
    review = env.notes.ingest(env.apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now()))
    assert review.refund_id is not None
    refund = env.flow.refunds.approve(AGENT, review.refund_id)
    assert env.api.consumption_answers() == []
    assert refund.last_error is None
    last = env.flow.history(SYSTEM, refund.id)[-1]
    assert (last.event, last.data["answered"], last.data["detail"]["sent"]) == (
        "answer_platform",
        True,
        None,
    )
    assert last.data["detail"]["consent"]["given"] is False
    env.flow.close()


def test_a_failed_answer_is_retried_with_backoff_and_can_be_sent_again(env: Env) -> None:
    _, txn, _ = bought(env)
    review = env.notes.ingest(env.apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now()))
    assert review.refund_id is not None
    env.api.fail_next.append(503)
    refund = env.flow.refunds.approve(AGENT, review.refund_id)
    assert refund.status is RefundStatus.APPROVED and refund.last_error is not None
    assert "503" in refund.last_error
    assert env.topics("support_lead") == []  # a 5xx is retried inside Apple's window
    [retry] = [
        d
        for d in env.flow.store.pending_deadlines(refund.id)
        if d.kind is DeadlineKind.REVIEW_ANSWER
    ]
    assert retry.due_at == env.clock.now() + timedelta(minutes=5)
    again = env.flow.refunds.answer_platform(LEAD, review.refund_id)  # or at once, by hand
    assert again.last_error is None
    assert len(env.api.consumption_answers()) == 2  # the failed call, then the answer
    assert not any(
        d.kind is DeadlineKind.REVIEW_ANSWER for d in env.flow.store.pending_deadlines(refund.id)
    )


def test_a_purchase_the_app_reports_pays_the_placed_order_once(env: Env) -> None:
    placed = env.flow.orders.place(BUYER, "gems")
    tid = env.apple.next_id()
    env.api.transactions[tid] = env.apple.transaction(
        "gems", env.clock.now(), transaction_id=tid, account="u1"
    )
    paid = env.flow.orders.pay(BUYER, placed.id, token=tid)  # the app sends the transaction id
    assert (paid.status, paid.platform_transaction_id) == (OrderStatus.PAID, tid)
    note = env.apple.notification("ONE_TIME_CHARGE", env.api.transactions[tid], env.clock.now())
    assert env.notes.ingest(note).order_id == placed.id
    assert len(env.flow.orders.query(BUYER).items) == 1


def test_a_notification_pays_the_order_the_buyer_placed(env: Env) -> None:
    placed = env.flow.orders.place(BUYER, "gems")
    _, _, order = bought(env, account="u1")
    assert order.id == placed.id and order.status is OrderStatus.PAID
    signed = env.apple.transaction("gems", env.clock.now(), account="u2")
    assert env.notes.record_transaction(signed).user_id == "u2"  # a device-sent transaction


def test_the_wsgi_endpoint_answers_apple_with_status_codes(env: Env) -> None:
    server = make_server("127.0.0.1", 0, env.notes.wsgi_app(), handler_class=QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/apple"
    try:
        txn = env.apple.transaction("gems", env.clock.now(), account="u1")
        good = env.apple.notification("ONE_TIME_CHARGE", txn, env.clock.now())
        assert post_json(url, {"signedPayload": good}) == (200, "paid")
        assert post_json(url, {"signedPayload": good})[0] == 200  # Apple's retry
        assert post_json(url, {"signedPayload": tamper(good, notificationUUID="x")})[0] == 400
        assert post_json(url, {"nothing": 1})[0] == 400
    finally:
        server.shutdown()
        server.server_close()


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["USD", "JPY", "KWD"]))
def test_apple_milliunit_prices_become_minor_units(price: int, currency: str) -> None:
    money = minor_units(price, currency)
    exponent = {"USD": 2, "JPY": 0, "KWD": 3}[currency]
    assert money.currency == currency
    assert abs(money.amount * 1000 - price * 10**exponent) <= 500
