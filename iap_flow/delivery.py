"""Sending claimed outbox notifications: marked delivered as they are sent (in small groups),
the lease on the rest renewed while a long batch runs, and nothing sent whose claim was lost.

A batch claimed for 60 s that takes 65 s to send is then neither sent twice by a second
worker nor sent again in full after a crash: at most the notifications sent in the last
:data:`MARK_WITHIN` seconds (and never more than :data:`MARK_EVERY`) before the process died
go out twice (delivery is at least once, by design; receivers dedupe on the outbox id).
Marking each one in a transaction of its own made a sweep of 1,000 expiries spend most of
its time committing marks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta

from iap_flow.domain.errors import StoreError
from iap_flow.domain.models import Notification
from iap_flow.ports import Clock, Notifier, Store

log = logging.getLogger("iap_flow.delivery")

MARK_EVERY = 32
"""At most this many sent notifications wait to be marked delivered."""
MARK_WITHIN = 0.05
"""Seconds a sent notification waits at most to be marked delivered (a slow notifier's are
then marked one by one)."""


def send_claimed(
    store: Store,
    notifier: Notifier,
    notes: Sequence[Notification],
    clock: Clock,
    lease_seconds: int,
) -> int:
    """Send ``notes`` (just claimed by this worker, or written claimed by it); returns how
    many were delivered. A notifier error leaves that notification pending with its reason."""
    lease = timedelta(seconds=lease_seconds)
    renew_at = clock.now() + lease / 2
    held: set[int] | None = None  # None: every note is still ours (no renewal yet)
    sent = 0
    unmarked: list[int] = []  # sent, not yet marked delivered
    since = 0.0

    def mark() -> None:
        store.mark_delivered(unmarked, clock.now())
        unmarked.clear()

    try:
        for i, note in enumerate(notes):
            assert note.id is not None
            now = clock.now()
            if now >= renew_at:
                if unmarked:
                    mark()
                rest = [n.id for n in notes[i:] if n.id is not None]
                try:
                    held = set(store.renew_claims(rest, now, lease_seconds))
                except StoreError as exc:  # cannot tell what is still ours: leave the rest
                    log.warning("could not renew the claim on %d notifications: %s", len(rest), exc)
                    return sent
                renew_at = now + lease / 2
            if held is not None and note.id not in held:
                log.info("notification %s: claim lost or already delivered, not sent", note.id)
                continue
            try:
                notifier.send(note)
            except Exception as exc:  # any notifier fault: keep it pending, record why
                store.mark_failed(note.id, f"{type(exc).__name__}: {exc}")
                continue
            if not unmarked:
                since = time.monotonic()
            unmarked.append(note.id)
            sent += 1
            if len(unmarked) >= MARK_EVERY or time.monotonic() - since >= MARK_WITHIN:
                mark()
    finally:  # whatever stops the loop (even a BaseException), what was sent is marked
        if unmarked:
            mark()
    return sent
