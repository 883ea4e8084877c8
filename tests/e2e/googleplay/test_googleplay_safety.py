"""Google Play safe by default, end to end over real HTTP: pushes authenticated by Pub/Sub's
OIDC token (RS256, certificates served by the fake Google), refunds confirmed with
androidpublisher before they are recorded, purchases bound to their buyer's account, and
what Google's documentation says about purchase states, voided purchases and redelivery."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import make_server

import pytest
from platform_env import QuietHandler, post_json
from play_env import AGENT, BUYER, START, Env, ms
from play_fakes import (
    AUDIENCE,
    PUSHER,
    FakePlay,
    SigningKey,
    one_time,
    product_purchase,
    push,
    refund_review,
    subscription,
    subscription_purchase,
    voided,
)

from iap_flow import SYSTEM, ConflictError, OrderStatus, PurchaseNotOwned
from iap_flow.adapters.googleplay import (
    GooglePlayNotifications,
    NotificationRejected,
    PubSubPushAuth,
    obfuscated_account_id,
)
from iap_flow.adapters.webhooks import already_applied

FORGERIES: dict[str, dict[str, Any]] = {
    "wrong_audience": {"aud": "https://evil.example.com/push"},
    "any_google_project": {"email": "someone@other-project.iam.gserviceaccount.com"},
    "email_unverified": {"email_verified": False},
    "no_email": {"email": None, "email_verified": None},
    "not_google": {"iss": "https://evil.example.com"},
    "expired": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
}


def _served(env: Env) -> tuple[Any, str]:
    server = make_server("127.0.0.1", 0, env.notes.wsgi_app(), handler_class=QuietHandler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    return server, f"http://127.0.0.1:{server.server_port}/play/rtdn"


@pytest.mark.parametrize("forge", [*FORGERIES, "unknown_key", "no_header", "not_bearer"])
def test_an_anonymous_or_forged_push_is_refused_with_403_and_changes_nothing(
    env: Env, forge: str, caplog: pytest.LogCaptureFixture
) -> None:
    token, order_id, order = env.bought()
    env.play.orders[order_id] = {"state": "REFUNDED"}  # even were Google to agree
    envelope = push(voided(token, order_id, ms(START)), "m-forged")
    if forge in FORGERIES:
        headers = {"Authorization": env.play.sign(**FORGERIES[forge])}
    elif forge == "unknown_key":  # a well-formed token signed by a key Google never served
        headers = {"Authorization": "Bearer " + SigningKey().token()}
    elif forge == "not_bearer":
        headers = {"Authorization": "Basic dXNlcjpwYXNz"}
    else:
        headers = {}
    before, calls = env.snapshot(), len(env.play.api_calls())
    server, url = _served(env)
    try:
        with caplog.at_level(logging.WARNING):
            assert post_json(url, envelope, headers)[0] == 403
    finally:
        server.shutdown()
        server.server_close()
    assert env.snapshot() == before
    assert env.order(order.id).status is OrderStatus.PAID
    assert len(env.play.api_calls()) == calls  # nothing asked of Google for a forged push
    assert any("push token refused" in r.getMessage() for r in caplog.records)


def test_with_no_push_authentication_configured_every_push_is_refused(play: FakePlay) -> None:
    env = Env(play)
    open_door = GooglePlayNotifications(env.flow, env.platform)
    token, order_id, _ = env.bought()
    before = env.snapshot()
    with pytest.raises(NotificationRejected, match="no push authentication") as refused:
        open_door.ingest_push(
            push(voided(token, order_id, ms(START)), "m-1"), authorization=play.sign()
        )
    assert refused.value.reason == "unauthenticated"
    assert env.snapshot() == before
    env.flow.close()


def test_a_shared_url_token_is_an_extra_check_never_a_replacement(play: FakePlay) -> None:
    env = Env(play)
    auth = PubSubPushAuth(audience=AUDIENCE, service_account_email=PUSHER, certs_url=play.certs_url)
    both = GooglePlayNotifications(env.flow, env.platform, push_auth=auth, push_token="s3cret")
    play.purchases["tok-1"] = product_purchase("GPA.3300-0000-0000-00001", "u1")
    envelope = push(one_time("tok-1", "gems", ms(START)), "m-1")
    with pytest.raises(NotificationRejected, match="URL token"):
        both.ingest_push(envelope, authorization=play.sign(), token="guess")
    with pytest.raises(NotificationRejected, match="push token refused"):
        both.ingest_push(envelope, token="s3cret")
    assert both.ingest_push(envelope, authorization=play.sign(), token="s3cret").outcome == "paid"
    env.flow.close()


def test_googles_certificates_are_fetched_once_and_again_for_a_new_key(env: Env) -> None:
    for n in range(1, 4):
        env.bought(n)
    assert env.play.certs_fetched == 1
    env.play.keys.append(SigningKey())  # Google rotates its signing keys
    env.bought(4)
    assert env.play.certs_fetched == 2
    assert len(env.flow.orders.query(BUYER).items) == 4


def test_a_void_is_recorded_only_once_google_confirms_the_order_refunded(env: Env) -> None:
    token, order_id, order = env.bought()
    first = env.deliver(voided(token, order_id, ms(START)))
    assert (first.outcome, first.refund_id) == ("unconfirmed", None)
    assert env.order(order.id).status is OrderStatus.PAID
    assert env.flow.history(SYSTEM, order.id)[-1].event == "pay"
    env.play.orders[order_id] = {"state": "REFUNDED"}
    later = env.deliver(voided(token, order_id, ms(START)))
    assert later.outcome == "refunded"
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert [c.path.rsplit("/", 1)[1] for c in env.play.api_calls()].count(order_id) == 2


def test_a_revoked_subscription_is_refunded_once_google_confirms(env: Env) -> None:
    env.play.subscriptions["sub"] = subscription_purchase("pro", "GPA.5500-0000-0000-00001", "u1")
    first = env.deliver(subscription("sub", ms(START), kind=4))
    revoked = env.deliver(subscription("sub", ms(START), kind=12))
    assert revoked.outcome == "unconfirmed"
    env.play.refunded.append("GPA.5500-0000-0000-00001")
    confirmed = env.deliver(subscription("sub", ms(START), kind=12))
    assert (confirmed.outcome, confirmed.order_id) == ("refunded", first.order_id)
    assert env.order(first.order_id).status is OrderStatus.REFUNDED


def test_a_purchase_of_another_account_cannot_pay_an_order(env: Env) -> None:
    env.play.purchases["victim"] = product_purchase("GPA.3300-0000-0000-00009", "u2")
    env.play.purchases["unbound"] = product_purchase("GPA.3300-0000-0000-00010", "")
    placed = env.flow.orders.place(BUYER, "gems")
    before = env.snapshot()
    for token in ("victim", "unbound"):
        with pytest.raises(PurchaseNotOwned) as refused:
            env.flow.orders.pay(BUYER, placed.id, token=token)
        assert (refused.value.order_id, refused.value.user_id) == (placed.id, "u1")
    assert env.snapshot() == before
    # The victim's own notification later records the purchase as theirs, not the thief's.
    result = env.deliver(one_time("victim", "gems", ms(START)))
    assert env.order(result.order_id).user_id == "u2"
    assert env.order(placed.id).status is OrderStatus.PENDING_PAYMENT


def test_the_obfuscated_account_id_of_the_buyer_binds_the_purchase(play: FakePlay) -> None:
    env = Env(play)
    hashed = obfuscated_account_id("u1")
    play.purchases["mine"] = product_purchase("GPA.3300-0000-0000-00011", hashed)
    placed = env.flow.orders.place(BUYER, "gems")
    assert env.flow.orders.pay(BUYER, placed.id, token="mine").status is OrderStatus.PAID
    env.flow.close()
    loose = Env(play, require_account_id=False)
    play.purchases["unbound"] = product_purchase("GPA.3300-0000-0000-00012", "")
    placed = loose.flow.orders.place(BUYER, "gems")
    assert loose.flow.orders.pay(BUYER, placed.id, token="unbound").status is OrderStatus.PAID
    loose.flow.close()


def test_one_purchase_token_paying_a_second_order_is_a_conflict(env: Env) -> None:
    env.play.purchases["tok"] = product_purchase("GPA.3300-0000-0000-00013", "u1")
    first = env.flow.orders.place(BUYER, "gems")
    env.flow.orders.pay(BUYER, first.id, token="tok")
    second = env.flow.orders.place(BUYER, "gems")
    before = env.snapshot()
    with pytest.raises(ConflictError, match=r"already paid (order|another order)"):
        env.flow.orders.pay(BUYER, second.id, token="tok")
    assert env.snapshot() == before


def test_a_notification_of_an_unknown_kind_is_acknowledged_and_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    note = {"eventTimeMillis": str(ms(START)), "futureThingNotification": {"version": "1.0"}}
    server, url = _served(env)
    before = env.snapshot()
    try:
        with caplog.at_level(logging.INFO):
            status, outcome = post_json(
                url, push(note, "m-new"), {"Authorization": env.play.sign()}
            )
    finally:
        server.shutdown()
        server.server_close()
    assert (status, outcome) == (200, "ignored")
    assert already_applied(env.flow, "google_play", "m-new") is not None  # acknowledged once
    assert {k: v for k, v in env.snapshot().items() if k != "processed_events"} == {
        k: v for k, v in before.items() if k != "processed_events"
    }
    assert any("UNKNOWN:futureThingNotification" in r.getMessage() for r in caplog.records)


def test_a_canceled_purchase_is_not_recorded_paid(env: Env) -> None:
    env.play.purchases["tok-c"] = product_purchase("GPA.3300-0000-0000-00014", "u1", state=1)
    result = env.deliver(one_time("tok-c", "gems", ms(START)))
    assert (result.outcome, result.order_id) == ("ignored", None)
    assert env.flow.orders.query(BUYER).items == []
    placed = env.flow.orders.place(BUYER, "gems")
    assert env.flow.orders.pay(BUYER, placed.id, token="tok-c").status is OrderStatus.PAYMENT_FAILED


def test_a_redelivered_message_is_recognised_before_any_call_to_google(env: Env) -> None:
    env.play.purchases["tok-d"] = product_purchase("GPA.3300-0000-0000-00015", "u1")
    first = env.deliver(one_time("tok-d", "gems", ms(START)), "m-dup")
    calls = len(env.play.api_calls())
    again = env.deliver(one_time("tok-d", "gems", ms(START)), "m-dup")
    assert (again.duplicate, again.order_id, again.outcome) == (True, first.order_id, "paid")
    assert len(env.play.api_calls()) == calls


def test_reconciliation_asks_for_30_days_at_most_and_names_the_reason(env: Env) -> None:
    token, order_id, order = env.bought()
    env.play.voided = [{"orderId": order_id, "purchaseToken": token, "voidedReason": 8}]
    counts = env.notes.reconcile_voided(START - timedelta(days=40))
    assert counts.refunded == 1
    [listed] = [c for c in env.play.api_calls() if c.path.endswith("/voidedpurchases")]
    asked_since = int(listed.query["startTime"][0])
    assert ms(START - timedelta(days=30)) <= asked_since <= ms(START)
    [refund] = env.flow.store.refunds(["refunded"], None, 10)
    assert refund.reason == "voided in Google Play (unacknowledged_purchase)"
    assert env.order(order.id).status is OrderStatus.REFUNDED


def test_a_late_renewal_is_recorded_by_the_order_it_is_about(env: Env) -> None:
    first_id = "GPA.5500-0000-0000-00001"
    env.play.subscriptions["sub"] = subscription_purchase("pro", first_id, "u1")
    first = env.deliver(subscription("sub", ms(START), kind=4))
    day = timedelta(days=30)
    times = {f"{first_id}..{n}": START + day * (n + 1) for n in range(2)}
    for order_id, at in times.items():
        env.play.orders[order_id] = {"state": "PROCESSED", "createTime": at.isoformat()}
    # The second renewal's push comes first; the first renewal's push comes a day later.
    env.play.subscriptions["sub"] = subscription_purchase("pro", f"{first_id}..1", "u1")
    newer = env.deliver(subscription("sub", ms(START + day * 2), kind=2))
    older = env.deliver(subscription("sub", ms(START + day), kind=2))
    by_txn = {
        env.order(r.order_id).platform_transaction_id: env.order(r.order_id) for r in (newer, older)
    }
    assert set(by_txn) == {f"{first_id}..1", f"{first_id}..0"}
    assert all(o.subscription_id == first.order_id for o in by_txn.values())
    assert len(env.flow.orders.query(BUYER).items) == 3  # nothing lost, nothing doubled


@pytest.mark.parametrize(
    ("options", "wait", "why"),
    [
        ({"consumption": lambda order: 150_000}, timedelta(hours=1), "not 0-100000"),
        ({}, timedelta(hours=25), "window closed"),
    ],
)
def test_a_chargeback_answer_google_would_not_take_is_not_sent(
    play: FakePlay, options: dict[str, Any], wait: timedelta, why: str
) -> None:
    env = Env(play, **options)
    _, order_id, _ = env.bought()
    opened = env.deliver(refund_review(order_id, "pending-1", ms(env.clock.now())))
    env.clock.advance(wait)
    refund = env.flow.refunds.approve(AGENT, opened.refund_id)
    assert refund.last_error is not None and why in refund.last_error
    assert env.play.review_calls() == []
    env.flow.close()


@pytest.mark.parametrize("sku", ["gems", "pro"])
def test_a_delivered_purchase_is_acknowledged_once_however_often_asked(env: Env, sku: str) -> None:
    if sku == "pro":
        sub = subscription_purchase("pro", "GPA.5500-0000-0000-00002", "u1")
        env.play.subscriptions["tok-1"] = sub
        order = env.order(env.deliver(subscription("tok-1", ms(START), kind=4)).order_id)
    else:
        _, _, order = env.bought()
    env.platform.acknowledge(order, "tok-1")
    env.platform.acknowledge(order, "tok-1")  # a retry after an unclear answer: no error
    if sku == "pro":
        assert sub["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
    else:
        assert env.play.purchases["tok-1"]["consumptionState"] == 1  # a consumable: consumed
    verb = ":acknowledge" if sku == "pro" else ":consume"
    assert [c.path.endswith(verb) for c in env.play.acknowledged()] == [True, True]
