"""What every relay sends (one JSON envelope per outbox notification) and how each keeps
the order of messages about one subject."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import attrs

from iap_flow.domain.errors import IapFlowError
from iap_flow.domain.models import Notification

_SUBJECT_KEYS = ("order_id", "refund_id", "ticket_id")


@attrs.frozen
class Envelope:
    """One outbox notification as it travels: ``id`` is the receiver's dedupe key."""

    id: int
    topic: str
    subject: str
    body: bytes
    """The JSON document: id, topic, subject, recipient, audience, created_at, payload."""


def subject_of(note: Notification) -> str:
    """The record a notification is about: its order, else its refund or ticket, else its
    recipient. Messages about one subject keep their outbox order."""
    for key in _SUBJECT_KEYS:
        value = note.payload.get(key)
        if isinstance(value, str) and value:
            return value
    return note.recipient


def envelope(note: Notification) -> Envelope:
    if note.id is None:
        raise IapFlowError(f"notification {note.topic} has no outbox id: it was never stored")
    subject = subject_of(note)
    doc = {
        "id": note.id,
        "topic": note.topic,
        "subject": subject,
        "recipient": note.recipient,
        "audience": str(note.audience),
        "created_at": note.created_at.isoformat(),
        "payload": note.payload,
    }
    body = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    return Envelope(note.id, note.topic, subject, body)


class HeldBack(IapFlowError):
    """Not sent: an earlier message about the same subject has not gone yet. The outbox
    retries it after that one."""

    code = "relay_held_back"


class RelayUnavailable(IapFlowError):
    """The broker did not take the message; the outbox will send it again."""

    code = "relay_unavailable"


class SubjectOrder:
    """Keeps messages about one subject in outbox order within a process.

    When a send fails, later messages for that subject are held back (raise
    :class:`HeldBack`, so the outbox retries them) until the failed one goes through. The
    outbox hands out the oldest first, so on the next pass the failed one leads. A hold
    lapses after ``lapse`` seconds in case the failed message is now another process's.
    """

    def __init__(self, lapse: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._lapse = lapse
        self._clock = clock

    def check(self, env: Envelope) -> None:
        with self._lock:
            held = self._held.get(env.subject)
            if held is None:
                return
            first, since = held
            if env.id <= first or self._clock() - since > self._lapse:
                return
        raise HeldBack(f"outbox {env.id} waits for {first}, an earlier message about {env.subject}")

    def failed(self, env: Envelope) -> None:
        with self._lock:
            if env.subject not in self._held or self._held[env.subject][0] > env.id:
                self._held[env.subject] = (env.id, self._clock())

    def sent(self, env: Envelope) -> None:
        with self._lock:
            held = self._held.get(env.subject)
            if held is not None and held[0] == env.id:
                del self._held[env.subject]
