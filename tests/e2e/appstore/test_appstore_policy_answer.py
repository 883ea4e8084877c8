"""Apple's consumption requests answered well, end to end on SQLite and PostgreSQL against
the local App Store Server API (real HTTP, real JWTs): the policy answer sent an hour before
Apple's 12-hour window closes when no one decided, audited as the system's decision with
exactly what was sent, the consent behind it and Apple's reply; values checked before they
are sent; nothing sent after the window; 5xx retried with backoff inside it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apple_env import AGENT, Env, bought
from apple_fakes import Chain, FakeAppStoreAPI
from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus

from iap_flow import SYSTEM, Consent, DeadlineKind, Policy, RefundStatus, ReviewAnswerPolicy

CONSENTED_AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def make(chain: Chain, api: FakeAppStoreAPI, key_pem: bytes, store_url: str) -> Iterator[Any]:
    made: list[Env] = []

    def build(**options: Any) -> Env:
        options.setdefault(
            "consent", lambda order: Consent(True, "refund-consent screen, app 4.2", CONSENTED_AT)
        )
        env = Env(chain, api, key_pem, url=store_url, **options)
        made.append(env)
        return env

    yield build
    for env in made:
        env.flow.close()


def asked(env: Env, *, deliver: bool = True) -> tuple[str, str]:
    """A purchase (delivered unless not) and Apple's CONSUMPTION_REQUEST: (txn id, refund)."""
    tid, txn, order = bought(env)
    if deliver:
        env.flow.orders.deliver(SYSTEM, order.id)
    note = env.apple.notification("CONSUMPTION_REQUEST", txn, env.clock.now())
    refund_id = env.notes.ingest(note).refund_id
    assert refund_id is not None
    return tid, refund_id


def test_no_one_decides_so_the_policy_answer_goes_an_hour_before_apples_deadline(make: Any) -> None:
    env = make(consumption=lambda order: 25_000)
    tid, refund_id = asked(env)
    env.clock.advance(timedelta(hours=10, minutes=59))
    env.flow.sweep()
    assert env.api.consumption_answers() == []  # people still have time
    env.clock.advance(timedelta(minutes=1))
    env.flow.sweep()
    [answer] = env.api.consumption_answers()
    assert answer.path == f"/inApps/v2/transactions/consumption/{tid}"
    sent = {
        "customerConsented": True,
        "sampleContentProvided": False,
        "deliveryStatus": "DELIVERED",
        "consumptionPercentage": 25_000,
        "refundPreference": "DECLINE",  # delivered: the policy asks Apple to keep the sale
    }
    assert answer.body == sent
    refund = env.flow.refunds.get(SYSTEM, refund_id)
    assert (refund.status, refund.decided_by) == (RefundStatus.REJECTED, "system")
    trail = env.flow.history(SYSTEM, refund_id)
    [decided] = [e for e in trail if e.event == "reject"]
    assert decided.actor_id == "system" and decided.data["policy"]["decision"] == "decline"
    assert decided.data["policy"]["order_status"] == "delivered"
    [answered] = [e for e in trail if e.event == "answer_platform"]
    assert answered.data["answered"] is True
    assert answered.data["detail"]["sent"] == {k: sent[k] for k in sent}
    assert answered.data["detail"]["consent"] == {
        "given": True,
        "source": "refund-consent screen, app 4.2",
        "at": CONSENTED_AT.isoformat(),
    }
    assert answered.data["detail"]["reply"] == {"status": 202}
    env.clock.advance(timedelta(hours=2))
    env.flow.sweep()
    assert len(env.api.consumption_answers()) == 1  # answered once
    assert env.flow.refunds.get(SYSTEM, refund_id).escalated is False


def test_an_undelivered_purchase_gets_the_other_rule(make: Any) -> None:
    env = make()
    _, refund_id = asked(env, deliver=False)
    env.clock.advance(timedelta(hours=11))
    env.flow.sweep()
    [answer] = env.api.consumption_answers()
    assert (answer.body["deliveryStatus"], answer.body["refundPreference"]) == (
        "UNDELIVERED_OTHER",
        "GRANT_FULL",
    )
    assert "consumptionPercentage" not in answer.body
    assert env.flow.refunds.get(SYSTEM, refund_id).status is RefundStatus.APPROVED


def test_the_embedders_delivery_status_is_sent_when_it_knows_better(make: Any) -> None:
    env = make(delivery_status=lambda order: DeliveryStatus.UNDELIVERED_SERVER_OUTAGE)
    _, refund_id = asked(env)
    env.flow.refunds.approve(AGENT, refund_id)
    [answer] = env.api.consumption_answers()
    assert answer.body["deliveryStatus"] == "UNDELIVERED_SERVER_OUTAGE"


@pytest.mark.parametrize("share", [150_000, -1, True, 2.5])
def test_a_consumption_share_apple_would_refuse_is_never_sent(make: Any, share: object) -> None:
    env = make(consumption=lambda order: share)
    _, refund_id = asked(env)
    refund = env.flow.refunds.approve(AGENT, refund_id)
    assert env.api.consumption_answers() == []
    assert refund.last_error is not None and "not sent to Apple" in refund.last_error
    assert env.topics("support_lead") == ["refund.answer_failed"]  # not retried: told now


def test_a_decision_after_apples_window_is_not_sent(make: Any) -> None:
    env = make(policy=Policy(review_answer=ReviewAnswerPolicy(enabled=False)))
    _, refund_id = asked(env)
    env.clock.advance(timedelta(hours=13))  # no policy answer, no one decided in time
    refund = env.flow.refunds.approve(AGENT, refund_id)
    assert env.api.consumption_answers() == []
    assert refund.last_error is not None and "window closed" in refund.last_error
    assert env.topics("support_lead")[-1] == "refund.answer_failed"


def test_a_failed_send_is_retried_with_backoff_inside_the_window(make: Any) -> None:
    env = make()
    _, refund_id = asked(env)
    env.api.fail_next += [500, 503]
    env.clock.advance(timedelta(hours=11))
    env.flow.sweep()  # the policy answer: 500
    for wait in (5, 10):  # minutes: the retry after a 500, then after a 503
        [retry] = [
            d
            for d in env.flow.pending_deadlines(SYSTEM, refund_id)
            if d.kind is DeadlineKind.REVIEW_ANSWER
        ]
        assert retry.due_at - env.clock.now() == timedelta(minutes=wait)
        env.clock.set(retry.due_at)
        env.flow.sweep()
    assert len(env.api.consumption_answers()) == 3
    refund = env.flow.refunds.get(SYSTEM, refund_id)
    assert refund.last_error is None and env.topics("support_lead") == []
    replies = [
        e.data["detail"]["reply"]["status"]
        for e in env.flow.history(SYSTEM, refund_id)
        if e.event == "answer_platform"
    ]
    assert replies == [500, 503, 202]


def test_retries_stop_before_the_window_closes_and_a_lead_is_told(make: Any) -> None:
    env = make()
    _, refund_id = asked(env)
    env.api.fail_next += [503] * 50
    env.clock.advance(timedelta(hours=11))
    env.flow.sweep()
    while any(
        d.kind is DeadlineKind.REVIEW_ANSWER for d in env.flow.pending_deadlines(SYSTEM, refund_id)
    ):
        [retry] = [
            d
            for d in env.flow.pending_deadlines(SYSTEM, refund_id)
            if d.kind is DeadlineKind.REVIEW_ANSWER
        ]
        env.clock.set(retry.due_at)
        env.flow.sweep()
    assert env.clock.now() < datetime.fromisoformat("2026-03-02T21:00:00+00:00")  # 12 h
    assert len(env.api.consumption_answers()) == 4  # at 11 h, +5, +10, +20 min; +40 is too late
    assert env.topics("support_lead") == ["refund.answer_failed"]


def test_with_finish_transactions_the_sweep_finishes_a_delivered_purchase(make: Any) -> None:
    env = make(finish_transactions=True)
    tid, _, order = bought(env)
    env.flow.orders.deliver(SYSTEM, order.id)
    env.clock.advance(timedelta(minutes=1))
    env.flow.sweep()
    [finish] = [s for s in env.api.seen if s.path.endswith("/finish")]
    assert (finish.method, finish.path) == ("POST", f"/inApps/v1/transactions/{tid}/finish")
    [event] = [e for e in env.flow.history(SYSTEM, order.id) if e.event == "acknowledge"]
    assert event.data == {"acknowledged": True, "detail": {"finished": tid}}


def test_by_default_the_app_finishes_transactions_and_the_sweep_calls_nothing(make: Any) -> None:
    env = make()
    _, _, order = bought(env)
    env.flow.orders.deliver(SYSTEM, order.id)
    env.clock.advance(timedelta(minutes=1))
    env.flow.sweep()
    assert not any(s.path.endswith("/finish") for s in env.api.seen)
    assert "acknowledge" not in env.events(order.id)
