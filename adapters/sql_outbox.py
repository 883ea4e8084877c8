"""The outbox of the relational stores, written once: claims with a lease (renewed while a
batch is sent), delivery and failure marks. :class:`RelationalOutbox` is the stores' outbox
half; each store gives it one way to run a write (:meth:`RelationalOutbox._outbox_write`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from iap_flow import codec
from iap_flow.adapters.sql import Dialect
from iap_flow.codec import ts
from iap_flow.domain.errors import StoreError
from iap_flow.domain.models import Audience, Notification

log = logging.getLogger("iap_flow.store")

NOTE_COLUMNS = "id, topic, recipient, payload, created_at, attempts, audience"
_NOTE_NAMES = tuple(NOTE_COLUMNS.split(", "))


def claim_sql(d: Dialect, audiences: Sequence[Audience]) -> tuple[str, list[Any]]:
    """Take up to ``limit`` free notifications for a claimer; parameters follow as
    ``[until, claimer, *audiences, now, limit]``: the caller fills in the values."""
    m = d.mark
    clause, values = d.any_of("audience", [a.value for a in audiences])
    return (
        f"UPDATE outbox SET claimed_until = {m}, claimed_by = {m} WHERE id IN (SELECT id FROM"
        f" outbox WHERE delivered_at IS NULL AND {clause}"
        f" AND (claimed_until IS NULL OR claimed_until <= {m})"
        f" ORDER BY id LIMIT {m}{d.skip_locked}) RETURNING {NOTE_COLUMNS}",
        values,
    )


def renew_sql(d: Dialect, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """Extend the lease of those of ``ids`` still undelivered and claimed by the claimer;
    parameters ``[until, *ids, claimer]``; returns their ids."""
    m = d.mark
    clause, values = d.any_of("id", list(ids))
    return (
        f"UPDATE outbox SET claimed_until = {m} WHERE {clause} AND claimed_by = {m}"
        " AND delivered_at IS NULL RETURNING id",
        values,
    )


def delivered_sql(d: Dialect, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """Mark ``ids`` delivered (once: a row already marked keeps its first time); parameters
    ``[at, *ids]``."""
    clause, values = d.any_of("id", list(ids))
    return (
        f"UPDATE outbox SET delivered_at = {d.mark}, attempts = attempts + 1,"
        f" claimed_until = NULL WHERE {clause} AND delivered_at IS NULL",
        values,
    )


def failed_sql(d: Dialect) -> str:
    """Count a failed delivery and release its claim; parameters ``[error, id]``."""
    m = d.mark
    return (
        f"UPDATE outbox SET attempts = attempts + 1, last_error = {m}, claimed_until = NULL,"
        f" claimed_by = NULL WHERE id = {m} AND delivered_at IS NULL"
    )


def notes_of(rows: Iterable[Sequence[Any]]) -> list[Notification]:
    """Notifications from rows in :data:`NOTE_COLUMNS` order, oldest first."""
    found = [codec.notification_from(dict(zip(_NOTE_NAMES, r, strict=True))) for r in rows]
    found.sort(key=lambda n: n.id or 0)
    return found


class RelationalOutbox:
    """``claim_notifications``, ``renew_claims``, ``mark_delivered`` and ``mark_failed`` of a
    relational store, in its :attr:`DIALECT`."""

    DIALECT: ClassVar[Dialect]

    def _outbox_write(self, text: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """Run one write on the outbox as its own transaction (or inside the thread's open
        one); the rows it returns. Driver errors leave as :class:`StoreError`."""
        raise NotImplementedError

    def _claimer(self) -> str:
        raise NotImplementedError

    def _where(self) -> str:
        """Which database, for the log."""
        raise NotImplementedError

    def claim_notifications(
        self, limit: int, now: datetime, lease_seconds: int, audiences: Sequence[Audience]
    ) -> list[Notification]:
        text, values = claim_sql(self.DIALECT, audiences)
        until = ts(now + timedelta(seconds=lease_seconds))
        rows = self._outbox_write(text, (until, self._claimer(), *values, ts(now), limit))
        return notes_of(rows)

    def renew_claims(self, ids: Sequence[int], now: datetime, lease_seconds: int) -> list[int]:
        """Extend this claimer's lease on those of ``ids`` still undelivered; their ids."""
        if not ids:
            return []
        text, values = renew_sql(self.DIALECT, ids)
        until = ts(now + timedelta(seconds=lease_seconds))
        rows = self._outbox_write(text, (until, *values, self._claimer()))
        return sorted(int(r[0]) for r in rows)

    def mark_delivered(self, ids: Sequence[int], at: datetime) -> bool:
        """Record ``ids`` as delivered. Bookkeeping after the fact: it never raises (a failure
        is logged, and the notifications are sent again later: at least once). False then."""
        if not ids:
            return True
        text, values = delivered_sql(self.DIALECT, ids)
        return self._bookkeeping("mark delivered", text, (ts(at), *values))

    def mark_failed(self, notification_id: int, error: str) -> bool:
        """Record a failed delivery and release the claim; never raises (see mark_delivered)."""
        return self._bookkeeping(
            "mark failed",
            failed_sql(self.DIALECT),
            (error[:1000].replace("\x00", "?"), notification_id),
        )

    def _bookkeeping(self, what: str, text: str, params: Sequence[Any]) -> bool:
        try:
            self._outbox_write(text, params)
        except StoreError as exc:
            log.warning("outbox %s in %s failed, will be sent again: %s", what, self._where(), exc)
            return False
        return True
