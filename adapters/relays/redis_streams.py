"""Outbox notifications to a Redis Stream (``pip install 'iap-flow[redis]'``).

Each notification is one ``XADD`` to ``stream`` with the fields ``outbox_id``, ``topic``,
``subject`` and ``body`` (the JSON envelope). A small Lua script adds it only if this outbox
id was not added before (a marker key that expires after ``dedupe_seconds``), in one atomic
step, so a retry after a lost reply does not add it twice; receivers still dedupe on
``outbox_id`` (at least once).

Receivers read with a consumer group, each message handled by one consumer of the group::

    XGROUP CREATE iap-flow:outbox billing $ MKSTREAM
    XREADGROUP GROUP billing worker-1 COUNT 100 BLOCK 5000 STREAMS iap-flow:outbox >
    ... handle, remembering outbox_id ...
    XACK iap-flow:outbox billing <entry id>

Entries a dead consumer left pending are taken over with ``XAUTOCLAIM``. One stream keeps
the outbox order, so messages about one subject arrive in order.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import RedisError

from iap_flow.adapters.relays.envelope import RelayUnavailable, SubjectOrder, envelope
from iap_flow.domain.models import Notification

_ADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
    'outbox_id', ARGV[3], 'topic', ARGV[4], 'subject', ARGV[5], 'body', ARGV[6])
end
return false
"""


class RedisStreamRelay:
    """A :class:`~iap_flow.ports.Notifier` appending to a Redis Stream, once per outbox id."""

    def __init__(
        self,
        url: str,
        stream: str = "iap-flow:outbox",
        *,
        max_len: int = 1_000_000,
        dedupe_seconds: int = 7 * 24 * 3600,
        client: Any = None,
    ) -> None:
        self.stream = stream
        self._redis = client if client is not None else redis.Redis.from_url(url)
        self._add = self._redis.register_script(_ADD_ONCE)
        self._max_len = max_len
        self._dedupe = dedupe_seconds
        self._order = SubjectOrder()

    def send(self, notification: Notification) -> None:
        env = envelope(notification)
        self._order.check(env)
        try:
            self._add(
                keys=[self.stream, f"{self.stream}:sent:{env.id}"],
                args=[self._dedupe, self._max_len, env.id, env.topic, env.subject, env.body],
            )
        except RedisError as exc:
            self._order.failed(env)
            raise RelayUnavailable(
                f"Redis did not take outbox {env.id}: {type(exc).__name__}: {exc}"
            ) from exc
        self._order.sent(env)

    def close(self) -> None:
        self._redis.close()
