"""Google Play acknowledgement end to end, on SQLite and PostgreSQL: a delivered purchase is
acknowledged (consumed) by the sweep through androidpublisher on the local fake, which, like
Google, refunds a purchase nobody acknowledged within 3 days of its clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from play_env import START, Env
from play_fakes import FakePlay

from iap_flow import SYSTEM, DeadlineKind, OrderStatus


@pytest.fixture
def ack_env(play: FakePlay, store_url: str) -> Iterator[Env]:
    e = Env(play, url=store_url)
    play.clock = e.clock.now  # the fake refunds on the flow's clock
    yield e
    e.flow.close()


def _ack_deadlines(env: Env, order_id: str) -> list[object]:
    pending = env.flow.pending_deadlines(SYSTEM, order_id)
    return [d.due_at for d in pending if d.kind is DeadlineKind.PURCHASE_ACKNOWLEDGE]


def test_a_delivered_purchase_is_acknowledged_and_google_keeps_it(ack_env: Env) -> None:
    env = ack_env
    token, order_id, order = env.bought()
    env.flow.orders.deliver(SYSTEM, order.id)
    assert _ack_deadlines(env, order.id) == [START + timedelta(minutes=1)]
    env.clock.advance(timedelta(minutes=1))
    assert env.flow.sweep().retried == 1
    [call] = env.play.acknowledged()  # a consumable is consumed
    assert call.path.endswith(f"/purchases/products/gems/tokens/{token}:consume")
    assert env.play.purchases[token]["consumptionState"] == 1
    [event] = [e for e in env.flow.history(SYSTEM, order.id) if e.event == "acknowledge"]
    assert (event.actor_id, event.data["acknowledged"]) == ("system", True)
    assert event.data["detail"] == {"order_id": order_id, "how": "consume"}
    assert _ack_deadlines(env, order.id) == []
    env.clock.advance(timedelta(days=4))
    assert env.play.refund_unacknowledged() == []  # Google keeps the sale
    assert env.flow.sweep().retried == 0  # acknowledged once
    assert len(env.play.acknowledged()) == 1


def test_without_the_acknowledgement_google_refunds_it_after_3_days(ack_env: Env) -> None:
    env = ack_env
    _, order_id, order = env.bought()  # paid, never delivered: nothing acknowledges it
    env.clock.advance(timedelta(days=3))
    assert env.play.refund_unacknowledged() == [order_id]
    env.notes.reconcile_voided(START)
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert env.flow.refunds.of_order(SYSTEM, order.id)[-1].reason == (
        "voided in Google Play (unacknowledged_purchase)"
    )


def test_failed_acknowledgements_retry_with_backoff_and_a_lead_is_told_before_google_refunds(
    ack_env: Env,
) -> None:
    env = ack_env
    token, order_id, order = env.bought()
    env.play.ack_script = [503] * 1000
    env.flow.orders.deliver(SYSTEM, order.id)
    waits = []
    while env.topics("support_lead") == []:
        [due] = _ack_deadlines(env, order.id)
        waits.append(due - env.clock.now())
        env.clock.set(due)
        env.flow.sweep()
        assert env.clock.now() < START + timedelta(days=3)
    # doubling from 10 minutes, at most 6 h; the lead is told 2 days after the purchase, once
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 10, 20, 40)]
    assert max(waits) == timedelta(hours=6)
    assert START + timedelta(days=2) <= env.clock.now() < START + timedelta(days=2, hours=6)
    [told] = env.notifier.to("support_lead")
    assert told.topic == "order.acknowledge_failed"
    assert (told.payload["order_id"], told.payload["transaction_id"]) == (order.id, order_id)
    assert "503" in str(told.payload["error"])
    env.play.ack_script.clear()  # Google answers again
    [due] = _ack_deadlines(env, order.id)
    env.clock.advance(due - env.clock.now())
    env.flow.sweep()
    assert env.play.purchases[token]["consumptionState"] == 1
    assert len(env.notifier.to("support_lead")) == 1
    env.clock.advance(START + timedelta(days=3, hours=1) - env.clock.now())
    assert env.play.refund_unacknowledged() == []  # the deadline saved the sale
    assert env.order(order.id).status is OrderStatus.DELIVERED
