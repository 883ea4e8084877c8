"""Clocks: time is injected, never read from ``datetime.now()`` in the core."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from iap_flow.domain.errors import InvalidInput


def utc(dt: datetime, field: str | None = None) -> datetime:
    """Return ``dt`` as an aware UTC datetime; naive datetimes and non-datetimes are refused.

    ``field`` names the caller's argument in the error, so the message says which one.
    """
    name = field or "datetime"
    if not isinstance(dt, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {type(dt).__name__}", field=field)
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(
            f"{name} {dt.isoformat()} has no timezone; pass an aware UTC time", field=field
        )
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} {dt.isoformat()} is out of range in UTC", field=field) from None


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to: for tests and simulations.

    >>> from datetime import datetime, timedelta, UTC
    >>> clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.advance(timedelta(hours=25)).isoformat()
    '2026-01-02T01:00:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        self._now = utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise InvalidInput("a clock cannot move backwards")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        when = utc(when)
        if when < self._now:
            raise InvalidInput("a clock cannot move backwards")
        self._now = when
