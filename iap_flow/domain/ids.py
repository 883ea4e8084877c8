"""Opaque, prefixed ids that sort by creation time (``ord_01J...``)."""

from __future__ import annotations

import random
import threading
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: sorts like the numbers


def _b32(value: int, width: int) -> str:
    a = _ALPHABET
    return "".join([a[(value >> (5 * i)) & 31] for i in range(width - 1, -1, -1)])


class IdGenerator:
    """Makes ids ``<prefix>_<10 chars of ms time><10 chars of randomness>``.

    Ids made later sort after ids made earlier (to the millisecond, then by a per-generator
    counter so ids from one process stay ordered). Seed it for reproducible simulations.

    >>> from datetime import datetime, UTC
    >>> gen = IdGenerator(seed=1)
    >>> a = gen.new("ord", datetime(2026, 1, 1, tzinfo=UTC))
    >>> b = gen.new("ord", datetime(2026, 1, 1, tzinfo=UTC))
    >>> a.startswith("ord_") and a < b
    True
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self._last_ms = -1
        self._counter = 0
        self._head = ""
        self._lock = threading.Lock()

    def new(self, prefix: str, now: datetime) -> str:
        ms = int(now.timestamp() * 1000)
        with self._lock:  # one flow may serve many threads (the Slack bot's listeners)
            if ms <= self._last_ms:
                self._counter += 1
            else:
                self._last_ms = ms
                self._head = _b32(ms, 10)
                self._counter = self._rng.getrandbits(29)  # headroom for the counter
            tail = (self._counter << 20) | self._rng.getrandbits(20)
            head = self._head
        return f"{prefix}_{head}{_b32(tail, 10)}"
