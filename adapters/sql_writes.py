"""What the two relational units of work do alike, in their dialect's :class:`Statements`:
the idempotency log, the inbound-event records and a deadline's state. Each unit of work
gives ``_w`` (run, or queue, a write) and reads with :meth:`SharedWrites._first` and
:meth:`SharedWrites._inserted`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from iap_flow.adapters.sql import Statements, check_json, check_text
from iap_flow.codec import ts
from iap_flow.domain.models import DeadlineState


class SharedWrites:
    """Mixed into both units of work."""

    STATEMENTS: ClassVar[Statements]
    _w: Callable[..., Any]

    def _first(self, text: str, params: Sequence[Any]) -> Any:
        """The first row of a read (after whatever this transaction queued), or None."""
        raise NotImplementedError

    def _inserted(self, text: str, params: Sequence[Any]) -> bool:
        """Run an ``INSERT ... RETURNING``; whether it inserted a row."""
        raise NotImplementedError

    def set_deadline_state(self, deadline_id: int, state: DeadlineState) -> None:
        self._w(self.STATEMENTS.deadline_state, (state.value, deadline_id))

    def idempotency_claim(self, key: str, command: str, fingerprint: str, at: datetime) -> None:
        check_text((key, command), "idempotency_key")
        self._w(self.STATEMENTS.idempotency_claim, (key, command, fingerprint, ts(at)))

    def idempotency_claim_new(self, key: str, command: str, fingerprint: str, at: datetime) -> bool:
        check_text((key, command), "idempotency_key")
        # A concurrent claim of the key waits on the primary key for this one's COMMIT, then
        # inserts nothing: no lock needed.
        return self._inserted(
            self.STATEMENTS.idempotency_claim_new, (key, command, fingerprint, ts(at))
        )

    def idempotency_put(
        self, key: str, command: str, fingerprint: str, result: str, at: datetime
    ) -> None:
        check_text((key, command), "idempotency_key")
        check_json(result, "result")
        self._w(self.STATEMENTS.idempotency_put, (key, command, fingerprint, result, ts(at)))

    def idempotency_release(self, key: str) -> None:
        self._w(self.STATEMENTS.idempotency_release, (key,))

    def remember_event(
        self, source: str, event_id: str, at: datetime, result: str | None = None
    ) -> bool:
        """Record an inbound event (webhook, Slack retry); False if it was seen before."""
        check_text((source, event_id), "event_id")
        check_json(result, "result")
        return self._inserted(self.STATEMENTS.event_insert, (source, event_id, ts(at), result))

    def event_result(self, source: str, event_id: str) -> str | None:
        check_text((source, event_id), "event_id")
        row = self._first(self.STATEMENTS.event_result, (source, event_id))
        return None if row is None or row[0] is None else str(row[0])
