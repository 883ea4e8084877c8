"""Outbox relays: hand notifications to other systems, at least once, in order per subject.

Each relay is a :class:`~iap_flow.ports.Notifier`: open the flow with one
(``open_flow(url, notifier=RabbitMqRelay(...))``) and every outbox notification goes there,
inline after its commit or from ``deliver_notifications()`` / the sweep.

- :mod:`.webhook` (extra ``webhooks``): signed HTTP POSTs, retries with backoff and jitter,
  a dead-letter box an operator lists and replays, secret rotation with an overlap.
- :mod:`.rabbitmq` (extra ``rabbitmq``): a topic exchange, publisher confirms, routing key =
  topic.
- :mod:`.redis_streams` (extra ``redis``): ``XADD`` with the outbox id, deduplicated.

Every message carries the outbox id: receivers keep the ids they processed and drop repeats
(at least once means a repeat is possible). The subject (order, refund or ticket id) is in
every envelope; messages for one subject leave in outbox order.
"""

from iap_flow.adapters.relays.envelope import (
    Envelope,
    HeldBack,
    RelayUnavailable,
    SubjectOrder,
    envelope,
)

__all__ = ["Envelope", "HeldBack", "RelayUnavailable", "SubjectOrder", "envelope"]
