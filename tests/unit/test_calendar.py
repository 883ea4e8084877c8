"""Business-hours arithmetic: properties over many calendars, instants and durations."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iap_flow import InvalidInput
from iap_flow.domain.calendar import BusinessCalendar

ZONES = ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    opens = draw(st.integers(0, 22 * 60))
    closes = draw(st.integers(opens + 30, 24 * 60 - 1))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    holidays = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=20))
    return BusinessCalendar(
        tz=draw(st.sampled_from(ZONES)),
        days=days,
        opens=time(opens // 60, opens % 60),
        closes=time(closes // 60, closes % 60),
        holidays=holidays,
    )


instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 6, 30)).map(
    lambda d: d.replace(tzinfo=UTC)
)
durations = st.timedeltas(timedelta(0), timedelta(hours=120))


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, durations)
def test_adding_then_measuring_round_trips(
    cal: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    due = cal.add(start, duration)
    assert due >= start
    assert cal.between(start, due) == duration


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, durations.filter(lambda d: d > timedelta(0)))
def test_a_deadline_never_falls_outside_working_hours(
    cal: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    assert cal.is_working(cal.add(start, duration))


@settings(max_examples=100, deadline=None)
@given(calendars(), instants, durations, durations)
def test_adding_in_two_steps_is_adding_once(
    cal: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    """What the pause relies on: time left counted again from later lands as far."""
    assert cal.add(cal.add(start, first), second) >= cal.add(start, first + second)
    assert cal.between(start, cal.add(cal.add(start, first), second)) == first + second


@settings(max_examples=100, deadline=None)
@given(calendars(), instants, instants, instants)
def test_measuring_is_additive(
    cal: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    assert cal.between(a, c) == cal.between(a, b) + cal.between(b, c)


def test_friday_evening_is_due_on_monday_and_holidays_do_not_count() -> None:
    cal = BusinessCalendar(tz="Asia/Shanghai", holidays=frozenset({date(2026, 12, 7)}))
    friday_5pm = datetime(2026, 12, 4, 9, tzinfo=UTC)  # 17:00 +08:00
    # 1 h on Friday; Monday the 7th is a holiday; 3 h on Tuesday from 09:00 (01:00 UTC)
    assert cal.add(friday_5pm, timedelta(hours=4)) == datetime(2026, 12, 8, 4, tzinfo=UTC)
    assert cal.between(friday_5pm, datetime(2026, 12, 8, 4, tzinfo=UTC)) == timedelta(hours=4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"days": frozenset()}, "days"),
        ({"opens": time(18), "closes": time(9)}, "hours"),
    ],
)
def test_a_calendar_that_cannot_work_is_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        BusinessCalendar(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
