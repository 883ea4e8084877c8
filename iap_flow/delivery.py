"""Sending claimed outbox notifications: each marked delivered as soon as it is sent, the
lease on the rest renewed while a long batch runs, and nothing sent whose claim was lost.

A batch claimed for 60 s that takes 65 s to send is then neither sent twice by a second
worker nor sent again in full after a crash: at most the one notification in flight when
the process died goes out twice (delivery is at least once, by design).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from iap_flow.domain.errors import StoreError
from iap_flow.domain.models import Notification
from iap_flow.ports import Clock, Notifier, Store

log = logging.getLogger("iap_flow.delivery")


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
    for i, note in enumerate(notes):
        assert note.id is not None
        now = clock.now()
        if now >= renew_at:
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
        store.mark_delivered([note.id], clock.now())
        sent += 1
    return sent
