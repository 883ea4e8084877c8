"""Business-hours calendars: a clock that runs only in working hours.

Support targets (first response within 4 h, say) count working time in the team's time zone:
a ticket opened on Friday evening is due on Monday. Store deadlines (Apple's 12 h, Google's
24 h, an unpaid order's 30 min) stay on the wall clock and never use a calendar.

A small module of our own rather than a library: the candidates on PyPI either measure only
(``business-duration``) or are unmaintained and pytz-based (``businesstimedelta``, 2019);
this needs both directions, ``zoneinfo`` and exact arithmetic, which a property test checks
(``tests/unit/test_calendar.py``).

>>> from datetime import datetime, timedelta, UTC
>>> cal = BusinessCalendar(tz="Asia/Shanghai")  # Monday to Friday, 09:00-18:00
>>> friday_5pm = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai
>>> cal.add(friday_5pm, timedelta(hours=4)).isoformat()  # 1 h on Friday, 3 h on Monday
'2026-12-07T04:00:00+00:00'
>>> cal.between(friday_5pm, datetime(2026, 12, 7, 4, 0, tzinfo=UTC))
datetime.timedelta(seconds=14400)
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import attrs

from iap_flow.domain.errors import InvalidInput

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 3_660
"""How far ahead a calendar looks for working time before it calls itself closed."""


def _zone(_: object, __: attrs.Attribute[str], value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {value!r}", field="tz") from None


def _days(_: object, __: attrs.Attribute[frozenset[int]], value: frozenset[int]) -> None:
    if not value or not value <= frozenset(range(7)):
        raise InvalidInput("working days must be some of Monday (0) to Sunday (6)", field="days")


@attrs.frozen
class BusinessCalendar:
    """Working days (0 Monday .. 6 Sunday), the hours ``opens`` to ``closes`` on each (local
    time in ``tz``), and holidays (local dates) on which nothing counts."""

    tz: str = attrs.field(default="UTC", validator=_zone)
    days: frozenset[int] = attrs.field(default=frozenset(range(5)), validator=_days)
    opens: time = time(9)
    closes: time = time(18)
    holidays: frozenset[date] = frozenset()

    def __attrs_post_init__(self) -> None:
        if not self.opens < self.closes:
            raise InvalidInput(
                f"working hours must open before they close, got {self.opens}-{self.closes}",
                field="hours",
            )

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz)

    def _intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (UTC) from the local day of ``start`` on, in order."""
        zone = self.zone
        day = start.astimezone(zone).date()
        for _ in range(MAX_DAYS):
            if day.weekday() in self.days and day not in self.holidays:
                begin = datetime.combine(day, self.opens, zone).astimezone(UTC)
                end = datetime.combine(day, self.closes, zone).astimezone(UTC)
                if begin < end:  # a DST jump can swallow a very short day
                    yield begin, end
            day += timedelta(days=1)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant ``duration`` of working time after ``start`` (``start`` itself for 0).

        Never outside working hours for a positive duration: it is within some working day's
        ``opens``-``closes`` (the close itself included).
        """
        if duration < timedelta(0):
            raise InvalidInput("a business duration cannot be negative", field="duration")
        if duration == timedelta(0):
            return start
        left = duration
        for begin, end in self._intervals(start):
            if end <= start:
                continue
            segment = max(begin, start)
            if left <= end - segment:
                return segment + left
            left -= end - segment
        raise InvalidInput(f"no working time within {MAX_DAYS} days", field="holidays")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end`` (zero if ``end`` is not after ``start``)."""
        total = timedelta(0)
        if end <= start:
            return total
        for begin, close in self._intervals(start):
            if begin >= end:
                break
            overlap = min(close, end) - max(begin, start)
            if overlap > timedelta(0):
                total += overlap
        return total

    def is_working(self, at: datetime) -> bool:
        """Whether ``at`` is within working hours (opening and closing instants included)."""
        local = at.astimezone(self.zone)
        day = local.date()
        if day.weekday() not in self.days or day in self.holidays:
            return False
        begin = datetime.combine(day, self.opens, self.zone).astimezone(UTC)
        end = datetime.combine(day, self.closes, self.zone).astimezone(UTC)
        return begin <= at <= end


@attrs.frozen
class WallClock:
    """The calendar of store and platform deadlines: every hour counts, nothing pauses."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return start + duration

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, timedelta(0))


WALL_CLOCK = WallClock()
