"""App Store reconciliation end to end, on SQLite and PostgreSQL, against the local Apple over
real HTTP with real signatures: notifications Apple could not deliver are found in Get
Notification History and applied once; a refund Apple granted without a notification is
found in Get Refund History from the buyer's stored revision; a second run changes nothing.
Also through ``POST /v1/staff/reconcile``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import uvicorn
from apple_env import LEAD, START, Env, bought
from apple_fakes import Chain, FakeAppStoreAPI, Sent

from iap_flow import SYSTEM, Actor, OrderStatus, PermissionDenied, RefundStatus
from iap_flow.adapters.reconcile import reconcile
from iap_flow.http import ApiKeys, create_app


@pytest.fixture
def renv(chain: Chain, api: FakeAppStoreAPI, key_pem: bytes, store_url: str) -> Iterator[Env]:
    e = Env(chain, api, key_pem, url=store_url)
    yield e
    e.flow.close()


def counts(report: object) -> tuple[int, int, int, int, int]:
    [s] = report.sources  # type: ignore[attr-defined]
    return (s.seen, s.applied, s.already_known, s.ignored, s.failed)


def test_missed_notifications_are_found_in_the_history_and_applied_once(renv: Env) -> None:
    env, apple, now = renv, renv.apple, renv.clock.now()
    tid = apple.next_id()
    txn = apple.transaction("gems", now, transaction_id=tid, account="u1")
    charge = apple.notification("ONE_TIME_CHARGE", txn, now)
    order = env.order(str(env.notes.ingest(charge).order_id))
    env.api.history.append(Sent(charge, now))  # delivered: Apple's history lists it as sent
    revoked = apple.transaction("gems", now, transaction_id=tid, account="u1", revoked_at=now)
    missed_refund = apple.notification("REFUND", revoked, now + timedelta(minutes=1))
    other = apple.transaction("gems", now, account="u2")
    missed_charge = apple.notification("ONE_TIME_CHARGE", other, now + timedelta(minutes=2))
    env.api.history += [
        Sent(missed_refund, now + timedelta(minutes=1), delivered=False),
        Sent(missed_charge, now + timedelta(minutes=2), delivered=False),
    ]
    env.api.history_page = 2  # Apple pages its answer: every page is read
    env.clock.advance(timedelta(minutes=3))

    first = reconcile(env.flow, LEAD)
    assert counts(first) == (3, 2, 1, 0, 0)
    assert env.order(order.id).status is OrderStatus.REFUNDED
    [paid] = env.flow.orders.query(SYSTEM, user_id="u2").items
    assert paid.status is OrderStatus.PAID
    calls = env.api.history_calls()
    assert [c.body.get("onlyFailures") for c in calls] == [
        None,
        None,
        True,
    ]  # 2 pages, then failures
    assert "paginationToken=2" in calls[1].path

    again = reconcile(env.flow, LEAD)  # idempotent: all of it is known now
    assert counts(again) == (3, 0, 3, 0, 0)
    assert env.topics("u1").count("refund.succeeded") == 1
    [run1, run2] = env.flow.history(SYSTEM, "reconcile_app_store")
    assert (run1.actor_id, run1.data["applied"], run2.data["applied"]) == ("lead_1", 2, 0)


def test_a_refund_with_no_notification_is_found_in_the_refund_history(renv: Env) -> None:
    env, apple = renv, renv.apple
    tids = []
    for _ in range(2):  # two purchases, each under Apple's review
        tid, txn, _ = bought(env)
        env.notes.ingest(apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now()))
        env.api.customer_of[tid] = "customer-1"
        tids.append(tid)
    now = env.clock.now()
    signed = [
        apple.transaction("gems", now, transaction_id=t, account="u1", revoked_at=now) for t in tids
    ]
    env.api.refunds["customer-1"] = [signed[0]]  # Apple refunded the first; no REFUND arrived

    assert counts(reconcile(env.flow, LEAD)) == (1, 1, 0, 0, 0)
    first = env.flow.platform_events.order_for_transaction(SYSTEM, "app_store", tids[0])
    second = env.flow.platform_events.order_for_transaction(SYSTEM, "app_store", tids[1])
    assert first is not None and second is not None
    assert first.status is OrderStatus.REFUNDED and second.status is OrderStatus.PAID
    run = env.flow.reconciliation.last_run(LEAD, "app_store")
    assert run is not None and run["cursor"]["refund_revisions"] == {"u1": "1"}

    assert counts(reconcile(env.flow, LEAD)) == (0, 0, 0, 0, 0)  # asked from revision 1
    assert env.api.refund_history_calls()[-1].path.endswith(f"/{tids[1]}?revision=1")
    env.api.refunds["customer-1"].append(signed[1])  # later, Apple refunds the second too
    assert counts(reconcile(env.flow, LEAD)) == (1, 1, 0, 0, 0)
    assert env.order(second.id).status is OrderStatus.REFUNDED
    [refund] = env.flow.refunds.of_order(SYSTEM, second.id)
    assert refund.status is RefundStatus.REFUNDED
    last = env.flow.history(SYSTEM, refund.id)[-1]
    assert last.event == "platform_refund" and "refund history" in last.data["reason"]


def test_only_staff_leads_developers_and_the_system_reconcile(renv: Env) -> None:
    with pytest.raises(PermissionDenied):
        reconcile(renv.flow, Actor.agent("agent_1"))
    assert renv.api.history_calls() == []


def test_the_staff_route_runs_it_over_http(renv: Env) -> None:
    env, now = renv, renv.clock.now()
    other = env.apple.transaction("gems", now, account="u3")
    env.api.history.append(
        Sent(env.apple.notification("ONE_TIME_CHARGE", other, now), now, delivered=False)
    )
    env.clock.advance(timedelta(minutes=1))
    keys = ApiKeys({"k_lead": LEAD, "k_agent": Actor.agent("agent_1")})
    app = create_app(env.flow, staff=keys)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1/staff/reconcile"
    try:
        denied = httpx.post(base, headers={"X-Api-Key": "k_agent"}, timeout=10)
        assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
        ran = httpx.post(
            base, params={"source": "app_store"}, headers={"X-Api-Key": "k_lead"}, timeout=10
        )
        assert ran.status_code == 200, ran.text
        [source] = ran.json()["sources"]
        assert (source["source"], source["seen"], source["applied"]) == ("app_store", 1, 1)
        unknown = httpx.post(
            base, params={"source": "google_play"}, headers={"X-Api-Key": "k_lead"}, timeout=10
        )
        assert unknown.status_code in (400, 422)
    finally:
        server.should_exit = True
        thread.join(10)
    assert env.clock.now() > START
