"""Outbox notifications to a RabbitMQ topic exchange (``pip install 'iap-flow[rabbitmq]'``).

Each notification is published to ``exchange`` (type ``topic``, durable) with the routing
key = its topic (``order.paid``, ``refund.requested``...), persistent, ``message_id`` = the
outbox id, the subject in the ``iap-flow-subject`` header, the JSON envelope as body. With
publisher confirms on, :meth:`RabbitMqRelay.send` returns only once the broker has taken the
message; otherwise it raises and the outbox sends it again later (at least once: receivers
dedupe on ``message_id``). Bind queues with patterns such as ``order.*`` or ``#``.
"""

from __future__ import annotations

import contextlib
import threading

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from iap_flow.adapters.relays.envelope import RelayUnavailable, SubjectOrder, envelope
from iap_flow.domain.models import Notification

SUBJECT_HEADER = "iap-flow-subject"


class RabbitMqRelay:
    """A :class:`~iap_flow.ports.Notifier` publishing to a topic exchange with confirms.

    ``mandatory`` makes a message no queue is bound for an error (so it is retried) instead
    of dropped by the broker.
    """

    def __init__(self, url: str, exchange: str = "iap-flow", *, mandatory: bool = False) -> None:
        self._params = pika.URLParameters(url)
        self.exchange = exchange
        self._mandatory = mandatory
        self._lock = threading.Lock()  # pika's blocking connection is not thread-safe
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._order = SubjectOrder()

    def _open(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._close()
        self._conn = pika.BlockingConnection(self._params)
        channel = self._conn.channel()
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def send(self, notification: Notification) -> None:
        env = envelope(notification)
        self._order.check(env)
        props = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=str(env.id),
            type=env.topic,
            headers={SUBJECT_HEADER: env.subject},
        )
        with self._lock:
            try:
                channel = self._open()
                channel.basic_publish(
                    self.exchange, env.topic, env.body, props, mandatory=self._mandatory
                )
            except AMQPError as exc:  # not confirmed: unroutable, nacked or connection lost
                self._close()
                self._order.failed(env)
                raise RelayUnavailable(
                    f"RabbitMQ did not confirm outbox {env.id}: {type(exc).__name__}: {exc}"
                ) from exc
        self._order.sent(env)

    def _close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            # A broken connection is thrown away; its close may fail too, and the next send
            # opens a new one.
            with contextlib.suppress(AMQPError):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._close()
