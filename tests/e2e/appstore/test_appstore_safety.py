"""App Store safe by default, end to end: environments nobody signs refused, revoked
transactions never paid, chains checked at the current time as well as at ``signedDate``,
an unreachable OCSP responder answered with a retryable 503, Apple-style test certificates
accepted only with strict checks off, verified chains cached without weakening a check, and
purchases bound to their buyer by ``appAccountToken``."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from wsgiref.simple_server import make_server

import pytest
from apple_env import AGENT, BUYER, START, Env, bought
from apple_fakes import APP_APPLE_ID, BUNDLE_ID, Apple, Chain, FakeAppStoreAPI, tamper
from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus
from appstoreserverlibrary.models.Environment import Environment
from platform_env import QuietHandler, post_json

from iap_flow import (
    ConflictError,
    InvalidInput,
    Money,
    OrderStatus,
    PlatformUnavailable,
    PurchaseNotOwned,
)
from iap_flow.adapters.appstore import (
    AppStorePlatform,
    NotificationRejected,
    app_account_token,
)

UNDELIVERED = DeliveryStatus.UNDELIVERED_QUALITY_ISSUE


def _serve(env: Env) -> tuple[Any, str]:
    server = make_server("127.0.0.1", 0, env.notes.wsgi_app(), handler_class=QuietHandler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    return server, f"http://127.0.0.1:{server.server_port}/apple"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("environment", [Environment.LOCAL_TESTING, Environment.XCODE])
def test_environments_nobody_signs_are_refused_unless_opted_in_for_testing(
    chain: Chain, environment: Environment
) -> None:
    with pytest.raises(InvalidInput, match="allow_unsigned_for_testing") as refused:
        AppStorePlatform(bundle_id=BUNDLE_ID, root_certificates=[chain.root_der], environment=environment)  # fmt: skip
    assert refused.value.field == "environment"
    testing = AppStorePlatform(
        bundle_id=BUNDLE_ID, root_certificates=[], environment=environment,
        allow_unsigned_for_testing=True,
    )  # fmt: skip
    assert testing.environment is environment


def test_a_revoked_transaction_is_never_recorded_paid(env: Env) -> None:
    now = env.clock.now()
    revoked = env.apple.transaction("gems", now, account="u1", revoked_at=now)
    before = env.snapshot()
    with pytest.raises(NotificationRejected, match="revoked") as refused:
        env.notes.record_transaction(revoked)
    assert refused.value.reason == "revoked"
    assert env.snapshot() == before
    late = env.notes.ingest(env.apple.notification("ONE_TIME_CHARGE", revoked, now))
    assert late.outcome == "refunded" and late.order_id is not None
    assert env.order(late.order_id).status is OrderStatus.REFUNDED
    assert env.topics("u1")[-1] == "refund.succeeded"


def test_an_expired_chain_with_a_back_dated_signed_date_is_refused(
    api: FakeAppStoreAPI, key_pem: bytes
) -> None:
    today = datetime.now(UTC)
    expired = Chain.generate(leaf_valid=(today - timedelta(days=400), today - timedelta(days=1)))
    env = Env(expired, api, key_pem)
    inside = today - timedelta(days=200)  # when the leaf was still valid
    txn = env.apple.transaction("gems", inside, account="u1", signed_at=inside)
    before = env.snapshot()
    with pytest.raises(NotificationRejected):
        env.notes.ingest(env.apple.notification("ONE_TIME_CHARGE", txn, inside))
    with pytest.raises(NotificationRejected):
        env.notes.record_transaction(txn)
    assert env.snapshot() == before
    env.flow.close()


def test_an_unreachable_ocsp_responder_answers_a_retryable_503(
    api: FakeAppStoreAPI, key_pem: bytes
) -> None:
    ocsp = Chain.generate(ocsp=f"http://127.0.0.1:{_closed_port()}/ocsp")
    env = Env(ocsp, api, key_pem, enable_online_checks=True)
    txn = env.apple.transaction("gems", env.clock.now(), account="u1")
    signed = env.apple.notification("ONE_TIME_CHARGE", txn, env.clock.now())
    before = env.snapshot()
    with pytest.raises(PlatformUnavailable, match="try again later"):
        env.notes.ingest(signed)
    server, url = _serve(env)
    try:
        assert post_json(url, {"signedPayload": signed})[0] == 503  # Apple retries it
    finally:
        server.shutdown()
        server.server_close()
    assert env.snapshot() == before
    env.flow.close()


def test_apple_style_test_certificates_verify_only_with_strict_checks_off(
    api: FakeAppStoreAPI, key_pem: bytes
) -> None:
    bare = Chain.generate("Apple Test", identifiers=False)
    strict = Env(bare, api, key_pem)
    txn = strict.apple.transaction("gems", START, account="u1")
    note = strict.apple.notification("ONE_TIME_CHARGE", txn, START)
    with pytest.raises(NotificationRejected):
        strict.notes.ingest(note)
    relaxed = Env(bare, api, key_pem, strict_checks=False)
    assert relaxed.notes.ingest(note).outcome == "paid"
    foreign = Apple(Chain.generate("Mallory", identifiers=False))
    forged = foreign.notification("ONE_TIME_CHARGE", foreign.transaction("gems", START), START)
    with pytest.raises(NotificationRejected):  # relaxed X.509 checks still need the root
        relaxed.notes.ingest(forged)
    strict.flow.close()
    relaxed.flow.close()


def test_verified_chains_are_cached_by_their_bytes_and_every_check_still_runs(env: Env) -> None:
    apple, now = env.apple, env.clock.now()
    for _ in range(5):
        env.notes.ingest(apple.notification("ONE_TIME_CHARGE", apple.transaction("gems", now, account="u1"), now))  # fmt: skip
    chains = env.platform.chains
    assert (chains.misses, chains.hits, chains.cached()) == (1, 9, 1)
    good = apple.notification("ONE_TIME_CHARGE", apple.transaction("gems", now, account="u1"), now)
    unmarked = Apple(apple.chain.without_marker("leaf"))
    forgeries = [
        tamper(good, notificationType="REFUND"),
        apple.notification(
            "ONE_TIME_CHARGE", apple.transaction("gems", now, account="u1"), now,
            extra={"bundleId": "com.evil"},
        ),
        apple.notification(
            "ONE_TIME_CHARGE", apple.transaction("gems", now, account="u1"),
            datetime(2031, 1, 1, tzinfo=UTC),
        ),
        unmarked.notification("ONE_TIME_CHARGE", unmarked.transaction("gems", now), now),
    ]  # fmt: skip
    before = env.snapshot()
    for forged in forgeries:
        with pytest.raises(NotificationRejected):
            env.notes.ingest(forged)
    assert env.snapshot() == before


@pytest.mark.parametrize(
    ("size", "seconds", "misses", "kept"),
    [(2, 900.0, 3, 2), (8, 0.0, 6, 3)],  # bounded: the oldest goes; expired: verified again
)
def test_the_chain_cache_is_bounded_and_expires(
    size: int, seconds: float, misses: int, kept: int
) -> None:
    chains = [Chain.generate(f"Signer {n}") for n in range(3)]
    platform = AppStorePlatform(
        bundle_id=BUNDLE_ID, app_apple_id=APP_APPLE_ID, environment=Environment.SANDBOX,
        root_certificates=[c.root_der for c in chains], enable_online_checks=False,
        chain_cache_size=size, chain_cache_seconds=seconds,
    )  # fmt: skip
    for chain in chains:
        txn = Apple(chain).transaction("gems", START, account="u1")
        platform.verify_transaction(txn)
        platform.verify_transaction(txn)
    assert (platform.chains.misses, platform.chains.cached()) == (misses, kept)


def test_a_purchase_of_another_account_cannot_pay_an_order(env: Env) -> None:
    placed = env.flow.orders.place(BUYER, "gems")
    thief_tries = {"victim": app_account_token("u2"), "unbound": None}
    before = env.snapshot()
    for name, account in thief_tries.items():
        tid = env.apple.next_id()
        env.api.transactions[tid] = env.apple.transaction(
            "gems", env.clock.now(), transaction_id=tid, account=account
        )
        with pytest.raises(PurchaseNotOwned) as refused:
            env.flow.orders.pay(BUYER, placed.id, token=tid)
        assert (refused.value.transaction_id, refused.value.user_id) == (tid, "u1"), name
    assert env.snapshot() == before
    tid = env.apple.next_id()
    env.api.transactions[tid] = env.apple.transaction(
        "gems", env.clock.now(), transaction_id=tid, account=app_account_token("u1")
    )
    assert env.flow.orders.pay(BUYER, placed.id, token=tid).status is OrderStatus.PAID


def test_without_required_binding_an_unbound_purchase_pays_but_a_foreign_one_never(
    chain: Chain, api: FakeAppStoreAPI, key_pem: bytes
) -> None:
    env = Env(chain, api, key_pem, require_account_token=False)
    for account, paid in ((None, True), (app_account_token("u2"), False)):
        placed = env.flow.orders.place(BUYER, "gems")
        tid = env.apple.next_id()
        env.api.transactions[tid] = env.apple.transaction(
            "gems", env.clock.now(), transaction_id=tid, account=account
        )
        if paid:
            assert env.flow.orders.pay(BUYER, placed.id, token=tid).status is OrderStatus.PAID
        else:
            with pytest.raises(PurchaseNotOwned):
                env.flow.orders.pay(BUYER, placed.id, token=tid)
    env.flow.close()


def test_one_transaction_paying_a_second_order_is_a_conflict(env: Env) -> None:
    tid = env.apple.next_id()
    env.api.transactions[tid] = env.apple.transaction(
        "gems", env.clock.now(), transaction_id=tid, account="u1"
    )
    first = env.flow.orders.place(BUYER, "gems")
    env.flow.orders.pay(BUYER, first.id, token=tid)
    second = env.flow.orders.place(BUYER, "gems")
    before = env.snapshot()
    with pytest.raises(ConflictError, match=r"already paid (order|another order)"):
        env.flow.orders.pay(BUYER, second.id, token=tid)
    assert env.snapshot() == before


@pytest.mark.parametrize("kind", ["RESCIND_CONSENT", "SOMETHING_APPLE_ADDS_IN_2027"])
def test_a_notification_of_a_kind_not_handled_is_acknowledged_and_logged(
    env: Env, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    signed = env.apple.notification(kind, None, env.clock.now())
    server, url = _serve(env)
    try:
        with caplog.at_level(logging.INFO):
            assert post_json(url, {"signedPayload": signed}) == (200, "ignored")
    finally:
        server.shutdown()
        server.server_close()
    assert any(f"ignored App Store notification {kind}" in r.getMessage() for r in caplog.records)


def test_a_renewal_before_its_initial_buy_is_still_linked_to_the_subscription(env: Env) -> None:
    apple = env.apple
    first_tid = apple.next_id()
    first_txn = apple.transaction("pro", START, transaction_id=first_tid, account="u1", price=4990)
    env.api.transactions[first_tid] = first_txn  # Apple's Get Transaction Info knows it
    env.clock.advance(timedelta(days=30))
    renewal_txn = apple.transaction("pro", env.clock.now(), original=first_tid, price=4990)
    renewed = env.notes.ingest(apple.notification("DID_RENEW", renewal_txn, env.clock.now()))
    initial = env.notes.ingest(
        apple.notification("SUBSCRIBED", first_txn, START, subtype="INITIAL_BUY")
    )
    assert renewed.order_id is not None and initial.order_id is not None
    renewal, first = env.order(renewed.order_id), env.order(initial.order_id)
    assert renewal.subscription_id == first.id
    assert (first.platform_transaction_id, first.status) == (first_tid, OrderStatus.PAID)
    assert len(env.flow.orders.query(BUYER).items) == 2


@pytest.mark.parametrize("kind", ["DID_CHANGE_RENEWAL_PREF", "OFFER_REDEEMED"])
def test_an_upgrade_is_a_charge_recorded_at_once(env: Env, kind: str) -> None:
    apple = env.apple
    first_tid = apple.next_id()
    first_txn = apple.transaction("pro", START, transaction_id=first_tid, account="u1", price=4990)
    first = env.notes.ingest(apple.notification("SUBSCRIBED", first_txn, START))
    env.clock.advance(timedelta(days=3))
    upgrade_txn = apple.transaction("pro", env.clock.now(), original=first_tid, price=9990)
    upgraded = env.notes.ingest(
        apple.notification(kind, upgrade_txn, env.clock.now(), subtype="UPGRADE")
    )
    assert upgraded.outcome == "paid" and upgraded.order_id != first.order_id
    assert upgraded.order_id is not None
    order = env.order(upgraded.order_id)
    assert (order.subscription_id, order.amount, order.status) == (
        first.order_id, Money(999, "USD"), OrderStatus.PAID
    )  # fmt: skip
    later = env.notes.ingest(  # about the current transaction, as Apple sends it
        apple.notification(kind, upgrade_txn, env.clock.now(), subtype="DOWNGRADE")
    )
    # takes effect at the next renewal, charged then (here to the same product: no change;
    # test_appstore_subscriptions has one to another plan)
    assert later.outcome == ("unchanged" if kind == "DID_CHANGE_RENEWAL_PREF" else "ignored")
    assert len(env.flow.orders.query(BUYER).items) == 2


def test_a_family_shared_transaction_is_access_with_no_revenue(env: Env) -> None:
    txn = env.apple.transaction("gems", START, account="u7", ownership="FAMILY_SHARED")
    result = env.notes.ingest(env.apple.notification("ONE_TIME_CHARGE", txn, START))
    assert result.order_id is not None
    order = env.order(result.order_id)
    assert (order.user_id, order.status, order.amount) == ("u7", OrderStatus.PAID, Money(0, "USD"))


def _review(env: Env) -> str:
    _, txn, _ = bought(env)
    review = env.notes.ingest(env.apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now()))
    assert review.refund_id is not None
    return review.refund_id


@pytest.mark.parametrize(
    ("options", "wait", "why"),
    [
        ({"consumption": lambda order: 150_000}, timedelta(hours=1), "outside 0-100000"),
        ({"consumption": lambda order: True}, timedelta(hours=1), "not an integer"),
        (
            {"consumption": lambda order: 5_000, "delivery_status": lambda order: UNDELIVERED},
            timedelta(hours=1),
            "undelivered",
        ),
        ({}, timedelta(hours=13), "window closed"),
    ],
)
def test_an_answer_apple_would_refuse_or_no_longer_count_is_not_sent(
    chain: Chain,
    api: FakeAppStoreAPI,
    key_pem: bytes,
    options: dict[str, Any],
    wait: timedelta,
    why: str,
) -> None:
    env = Env(chain, api, key_pem, **options)
    refund_id = _review(env)
    env.clock.advance(wait)
    refund = env.flow.refunds.approve(AGENT, refund_id)
    assert refund.last_error is not None and why in refund.last_error
    assert env.api.consumption_answers() == []
    env.flow.close()


def test_the_embedder_supplies_delivery_status_and_share(
    chain: Chain, api: FakeAppStoreAPI, key_pem: bytes
) -> None:
    env = Env(chain, api, key_pem, consumption=lambda order: 0, delivery_status=lambda order: UNDELIVERED)  # fmt: skip
    env.flow.refunds.reject(AGENT, _review(env), reason="not ours to refund")
    [answer] = env.api.consumption_answers()
    assert (answer.body["deliveryStatus"], answer.body["consumptionPercentage"]) == (
        "UNDELIVERED_QUALITY_ISSUE", 0
    )  # fmt: skip
    env.flow.close()
