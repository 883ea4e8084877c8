"""Outbox relays to the real RabbitMQ and Redis on this machine (never a mock).

Set ``IAP_FLOW_TEST_RABBITMQ_URL`` (amqp://guest:guest@127.0.0.1:5672/%2F) and
``IAP_FLOW_TEST_REDIS_URL`` (redis://127.0.0.1:6379/0); ``.ci/run`` does.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iap_flow import Actor, Flow, Money, Notification, Role, open_flow
from iap_flow.ports import Notifier

RABBITMQ = os.environ.get("IAP_FLOW_TEST_RABBITMQ_URL")
REDIS = os.environ.get("IAP_FLOW_TEST_REDIS_URL")
PM = Actor("pm_1", Role.PRODUCT_MANAGER)
needs_rabbitmq = pytest.mark.skipif(not RABBITMQ, reason="IAP_FLOW_TEST_RABBITMQ_URL is not set")
needs_redis = pytest.mark.skipif(not REDIS, reason="IAP_FLOW_TEST_REDIS_URL is not set")


def shop(db: Path, notifier: Notifier) -> Flow:
    flow = open_flow(f"sqlite:///{db}", notifier=notifier, deliver_inline=False)
    if not flow.catalogue.products():
        flow.catalogue.add(
            PM,
            sku="gems",
            title="Gems",
            description="d",
            price=Money(499, "USD"),
            kind="consumable",
        )
    return flow


def paid_and_refund_asked(flow: Flow, user: str) -> str:
    buyer = Actor.buyer(user)
    order = flow.orders.place(buyer, "gems")
    flow.orders.pay(buyer, order.id, token="tok_approve")
    flow.refunds.request(buyer, order.id, reason="bought by mistake")
    return order.id


def pending(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        (n,) = conn.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
    return int(n)


# -- RabbitMQ ---------------------------------------------------------------------------------


@pytest.fixture
def rabbit() -> Iterator[tuple[Any, str]]:
    import pika

    exchange = "iap-flow-test-" + uuid.uuid4().hex[:8]
    conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ or ""))
    channel = conn.channel()
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    yield channel, exchange
    channel.exchange_delete(exchange)
    conn.close()


def bind(channel: Any, exchange: str, pattern: str) -> str:
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key=pattern)
    return str(queue)


def drain(channel: Any, queue: str) -> list[tuple[str, Any, dict[str, Any]]]:
    out = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((method.routing_key, props, json.loads(body)))


@needs_rabbitmq
def test_rabbitmq_topic_exchange_routes_by_topic_with_outbox_ids(
    rabbit: tuple[Any, str], tmp_path: Path
) -> None:
    from iap_flow.adapters.relays.rabbitmq import SUBJECT_HEADER, RabbitMqRelay

    channel, exchange = rabbit
    orders_q = bind(channel, exchange, "order.*")
    everything_q = bind(channel, exchange, "#")
    relay = RabbitMqRelay(RABBITMQ or "", exchange)
    flow = shop(tmp_path / "shop.db", relay)
    order_id = paid_and_refund_asked(flow, "u_r1")
    assert flow.deliver_notifications() >= 2
    orders = drain(channel, orders_q)
    assert [key for key, _, _ in orders] == ["order.paid"]
    _, props, body = orders[0]
    assert props.message_id == str(body["id"]) and props.delivery_mode == 2
    assert props.headers[SUBJECT_HEADER] == order_id == body["subject"]
    everything = drain(channel, everything_q)
    ids = [b["id"] for _, _, b in everything]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) >= 2
    assert {k for k, _, _ in everything} >= {"order.paid", "refund.review_requested"}
    relay.close()


@needs_rabbitmq
def test_rabbitmq_unconfirmed_messages_stay_in_the_outbox_in_subject_order(
    rabbit: tuple[Any, str], tmp_path: Path
) -> None:
    from iap_flow.adapters.relays.rabbitmq import RabbitMqRelay

    channel, exchange = rabbit
    db = tmp_path / "shop.db"
    relay = RabbitMqRelay(RABBITMQ or "", exchange, mandatory=True)
    flow = shop(db, relay)
    paid_and_refund_asked(flow, "u_r2")
    assert flow.deliver_notifications() == 0  # no queue bound: the broker returned them
    assert pending(db) >= 2
    queue = bind(channel, exchange, "#")
    flow.deliver_notifications()
    flow.deliver_notifications()
    got = drain(channel, queue)
    assert pending(db) == 0
    ids = [b["id"] for _, _, b in got]
    assert ids == sorted(ids)
    assert [k for k, _, _ in got][:2] == ["order.paid", "refund.review_requested"]
    relay.close()


# -- Redis Streams ----------------------------------------------------------------------------


@pytest.fixture
def stream() -> Iterator[tuple[Any, str]]:
    import redis

    client = redis.Redis.from_url(REDIS or "")
    name = "iap-flow-test:" + uuid.uuid4().hex[:8]
    yield client, name
    keys = [name, *client.scan_iter(f"{name}:sent:*")]
    client.delete(*keys)
    client.close()


@needs_redis
def test_redis_stream_xadd_with_outbox_ids_read_by_a_consumer_group(
    stream: tuple[Any, str], tmp_path: Path
) -> None:
    from iap_flow.adapters.relays.redis_streams import RedisStreamRelay

    client, name = stream
    client.xgroup_create(name, "billing", id="$", mkstream=True)
    relay = RedisStreamRelay(REDIS or "", name)
    flow = shop(tmp_path / "shop.db", relay)
    order_id = paid_and_refund_asked(flow, "u_s1")
    flow.deliver_notifications()
    [(_, entries)] = client.xreadgroup("billing", "worker-1", {name: ">"}, count=100)
    fields = [{k.decode(): v.decode() for k, v in e.items()} for _, e in entries]
    ids = [int(f["outbox_id"]) for f in fields]
    assert ids == sorted(ids) and len(ids) >= 2
    paid = next(f for f in fields if f["topic"] == "order.paid")
    assert paid["subject"] == order_id and json.loads(paid["body"])["id"] == int(paid["outbox_id"])
    client.xack(name, "billing", *[entry_id for entry_id, _ in entries])
    assert client.xpending(name, "billing")["pending"] == 0
    relay.close()


@needs_redis
def test_redis_sends_each_outbox_id_once_and_keeps_what_it_could_not_send(
    stream: tuple[Any, str], tmp_path: Path
) -> None:
    from iap_flow.adapters.relays.redis_streams import RedisStreamRelay

    client, name = stream
    db = tmp_path / "shop.db"
    down = RedisStreamRelay("redis://127.0.0.1:1/0", name)  # nothing listens there
    flow = shop(db, down)
    paid_and_refund_asked(flow, "u_s2")
    assert flow.deliver_notifications() == 0 and pending(db) >= 2
    flow.close()
    relay = RedisStreamRelay(REDIS or "", name)
    worker = shop(db, relay)  # the worker restarted with a reachable Redis
    sent = worker.deliver_notifications()
    assert sent >= 2 and pending(db) == 0
    assert client.xlen(name) == sent
    entries = client.xrange(name)
    first = {k.decode(): v.decode() for k, v in entries[0][1].items()}
    body = json.loads(first["body"])
    again = Notification(
        body["topic"], body["recipient"], body["payload"], worker.clock.now(), id=body["id"]
    )
    relay.send(again)  # a retry after a lost reply
    assert client.xlen(name) == sent  # not added twice
    relay.close()
