"""Signed HTTP webhooks from the outbox (``pip install 'iap-flow[webhooks]'``).

Each notification is POSTed as its JSON envelope with three headers:

- ``Iap-Flow-Id``: the outbox id, the receiver's dedupe key (a message may come twice);
- ``Iap-Flow-Timestamp``: Unix seconds when this attempt was signed;
- ``Iap-Flow-Signature``: ``v1=<hex>`` per active secret, comma-separated, where
  ``hex = HMAC-SHA256(secret, f"{timestamp}.".encode() + body)``. During a rotation both
  the new and the old secret sign, so receivers can switch whenever they like before the old
  one's ``until``. Receivers check with :func:`verify` (or the same few lines in any language)
  and refuse stale timestamps.

A failed attempt (no answer, 408, 429, 5xx) is retried with exponential backoff and full
jitter; after ``max_attempts`` (or at once on another 4xx) the message goes to the
:class:`DeadLetters` box, and later messages about the same subject wait there behind it so
their order holds. An operator lists the box and replays it (:meth:`WebhookRelay.replay`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs
import httpx

from iap_flow.adapters.relays.envelope import Envelope, envelope
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import Notification

ID_HEADER = "Iap-Flow-Id"
TIMESTAMP_HEADER = "Iap-Flow-Timestamp"
SIGNATURE_HEADER = "Iap-Flow-Signature"
TOLERANCE = 300
"""Seconds a receiver accepts between the signed timestamp and its own clock."""


@attrs.frozen
class Secret:
    """A signing secret; ``until`` (Unix seconds) ends its use, for a rotation's overlap."""

    value: str = attrs.field(repr=False)
    until: float | None = None

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE,
) -> int:
    """For receivers: the outbox id if the request is signed by one of ``secrets`` within
    ``tolerance`` seconds; raises :class:`InvalidInput` otherwise. ``headers`` lower-case."""
    try:
        outbox_id = int(headers[ID_HEADER.lower()])
        timestamp = int(headers[TIMESTAMP_HEADER.lower()])
        given = [
            part.strip()[3:]
            for part in headers[SIGNATURE_HEADER.lower()].split(",")
            if part.strip().startswith("v1=")
        ]
    except (KeyError, ValueError):
        raise InvalidInput("webhook is missing its id, timestamp or signature") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidInput("webhook timestamp is outside the tolerance: refused as a replay")
    for secret in secrets:
        expected = sign(secret, timestamp, body)
        if any(hmac.compare_digest(expected, g) for g in given):
            return outbox_id
    raise InvalidInput("webhook signature does not match")


@attrs.frozen
class DeadLetter:
    id: int
    topic: str
    subject: str
    attempts: int
    error: str
    dead_at: datetime
    body: bytes = attrs.field(repr=False)


class DeadLetters:
    """Messages that could not be delivered, in an SQLite file (shared by processes on one
    host), until an operator replays them."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
            " subject TEXT NOT NULL, body BLOB NOT NULL, attempts INTEGER NOT NULL,"
            " error TEXT NOT NULL, dead_at TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS dl_subject ON dead_letters (subject, id)")

    def add(self, env: Envelope, attempts: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)",
                (env.id, env.topic, env.subject, env.body, attempts, error[:500], _now()),
            )

    def holds(self, subject: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM dead_letters WHERE subject = ? LIMIT 1", (subject,)
            ).fetchone()
        return row is not None

    def list(self, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, subject, attempts, error, dead_at, body FROM dead_letters"
                " ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            DeadLetter(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), bytes(r[6]))
            for r in rows
        ]

    def remove(self, outbox_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM dead_letters WHERE id = ?", (outbox_id,))

    def close(self) -> None:
        self._db.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Failed(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class WebhookRelay:
    """A :class:`~iap_flow.ports.Notifier` that POSTs signed envelopes to ``url``.

    ``secrets``: the newest first; each active one signs. ``dead_letters``: where messages
    go after ``max_attempts``. ``backoff`` (seconds) doubles per retry up to ``max_backoff``,
    and each wait is drawn uniformly from ``[0, that]`` (full jitter).
    """

    def __init__(
        self,
        url: str,
        secrets: Sequence[Secret | str],
        dead_letters: DeadLetters,
        *,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self._secrets = [s if isinstance(s, Secret) else Secret(s) for s in secrets]
        if not self._secrets:
            raise InvalidInput("a webhook relay needs at least one secret", field="secrets")
        if max_attempts < 1:
            raise InvalidInput("max_attempts must be at least 1", field="max_attempts")
        self.dead_letters = dead_letters
        self.max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._http = client or httpx.Client(timeout=timeout)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._subjects = threading.Lock()

    def rotate(self, new: str, *, overlap: float) -> None:
        """Sign with ``new`` from now on, and with the current secrets for ``overlap`` seconds."""
        until = time.time() + overlap
        old = [attrs.evolve(s, until=min(s.until or until, until)) for s in self._secrets]
        self._secrets = [Secret(new), *old]

    def headers(self, env: Envelope, now: float | None = None) -> dict[str, str]:
        stamp = int(time.time() if now is None else now)
        active = [s for s in self._secrets if s.active(stamp)]
        signatures = ", ".join(f"v1={sign(s.value, stamp, env.body)}" for s in active)
        return {
            "content-type": "application/json",
            ID_HEADER: str(env.id),
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: signatures,
        }

    def send(self, notification: Notification) -> None:
        env = envelope(notification)
        with self._subjects:  # one message at a time per process keeps subjects in order
            if self.dead_letters.holds(env.subject):
                self.dead_letters.add(env, 0, "held: an earlier message about it is dead")
                return
            self._deliver(env)

    def _deliver(self, env: Envelope) -> bool:
        error = ""
        attempts = 0
        for attempt in range(self.max_attempts):
            attempts = attempt + 1
            try:
                self._post(env)
                return True
            except Failed as exc:
                error = str(exc)
                if not exc.retry:
                    break
            if attempts < self.max_attempts:
                ceiling = min(self._max_backoff, self._backoff * 2**attempt)
                self._sleep(self._rng.uniform(0, ceiling))
        self.dead_letters.add(env, attempts, error)
        return False

    def _post(self, env: Envelope) -> None:
        try:
            r = self._http.post(self.url, content=env.body, headers=self.headers(env))
        except httpx.HTTPError as exc:
            raise Failed(f"{type(exc).__name__}: {exc}", retry=True) from exc
        if r.status_code < 300:
            return
        retry = r.status_code in (408, 425, 429) or r.status_code >= 500
        raise Failed(f"HTTP {r.status_code}: {r.text[:200]}", retry=retry)

    def replay(self, limit: int = 100) -> tuple[int, int]:
        """Send the dead letters again, oldest first; a subject stops at its first failure so
        its order holds. Returns ``(sent, still_dead)``."""
        sent = 0
        blocked: set[str] = set()
        letters = self.dead_letters.list(limit)
        with self._subjects:
            for letter in letters:
                if letter.subject in blocked:
                    continue
                env = Envelope(letter.id, letter.topic, letter.subject, letter.body)
                self.dead_letters.remove(letter.id)
                if self._deliver(env):
                    sent += 1
                else:
                    blocked.add(letter.subject)
        return sent, len(letters) - sent

    def close(self) -> None:
        self._http.close()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m iap_flow.adapters.relays.webhook list|replay DEAD_LETTERS.db [URL SECRET]``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if (
        len(args) < 2
        or args[0] not in ("list", "replay")
        or (args[0] == "replay" and len(args) < 4)
    ):
        raise SystemExit(__doc__ and main.__doc__)
    box = DeadLetters(args[1])
    if args[0] == "list":
        for d in box.list(1000):
            print(
                json.dumps(
                    {
                        "id": d.id,
                        "topic": d.topic,
                        "subject": d.subject,
                        "attempts": d.attempts,
                        "error": d.error,
                        "dead_at": d.dead_at.isoformat(),
                    }
                )
            )
        return
    relay = WebhookRelay(args[2], [args[3]], box)
    sent, left = relay.replay(1000)
    print(json.dumps({"sent": sent, "still_dead": left}))


if __name__ == "__main__":  # pragma: no cover
    main()
