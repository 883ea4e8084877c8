"""Google's chargeback reviews answered well, end to end on SQLite and PostgreSQL against the
local Google (real HTTP): the policy answer sent an hour before Google's 24 hours when no
one decided, audited with what was sent and Google's reply; a 5xx retried inside the window;
Google answered once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from play_env import START, Env, ms
from play_fakes import FakePlay, refund_review

from iap_flow import SYSTEM, RefundStatus


@pytest.fixture
def penv(play: FakePlay, store_url: str) -> Iterator[Env]:
    e = Env(play, url=store_url, consumption=lambda order: 100_000)
    yield e
    e.flow.close()


def test_the_policy_answer_declines_a_chargeback_on_a_delivered_purchase(penv: Env) -> None:
    env = penv
    _, order_id, order = env.bought()
    env.flow.orders.deliver(SYSTEM, order.id)
    opened = env.deliver(refund_review(order_id, "pending-1", ms(START)))
    assert opened.refund_id is not None
    env.play.review_script = [503]
    env.clock.advance(timedelta(hours=23))
    env.flow.sweep()  # the policy answer; Google answers 503
    env.clock.advance(timedelta(minutes=5))
    env.flow.sweep()  # retried after 5 minutes
    first, second = env.play.review_calls()
    sent = {
        "pendingRefundToken": "pending-1",
        "sampleContentProvided": False,
        "refundPreference": "DECLINE",
        "consumptionPercentageMilliunits": 100_000,
    }
    assert first.body == second.body == sent
    refund = env.flow.refunds.get(SYSTEM, opened.refund_id)
    assert (refund.status, refund.decided_by, refund.last_error) == (
        RefundStatus.REJECTED, "system", None
    )  # fmt: skip
    answers = [e.data for e in env.flow.history(SYSTEM, refund.id) if e.event == "answer_platform"]
    assert [a["detail"]["reply"]["status"] for a in answers] == [503, 200]
    assert answers[-1]["detail"]["sent"] == sent
    assert answers[-1]["detail"]["consent"]["source"] == "not required by Google Play"
    env.clock.advance(timedelta(hours=3))
    env.flow.sweep()
    assert len(env.play.review_calls()) == 2  # Google keeps the first answer: sent once
    assert env.topics("support_lead") == []
    # asked to answer again (a review joining this decided refund does): nothing is sent
    env.flow.refunds.answer_platform(SYSTEM, refund.id)
    assert len(env.play.review_calls()) == 2
    assert [e.event for e in env.flow.history(SYSTEM, refund.id)].count("answer_platform") == 2
