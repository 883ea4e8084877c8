"""Clocks: aware UTC only; the manual clock moves only forward and only when told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from iap_flow import InvalidInput, ManualClock, SystemClock
from iap_flow.domain.clock import utc

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T0)
    assert clock.now() == clock.now() == T0
    assert clock.advance(timedelta(minutes=30)) == T0 + timedelta(minutes=30)
    clock.set(T0 + timedelta(days=2))
    assert clock.now() == T0 + timedelta(days=2)


def test_manual_clock_never_moves_backwards() -> None:
    clock = ManualClock(T0 + timedelta(hours=1))
    with pytest.raises(InvalidInput, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(InvalidInput, match="backwards"):
        clock.set(T0)
    assert clock.now() == T0 + timedelta(hours=1)


def test_naive_times_are_refused_everywhere_a_clock_takes_one() -> None:
    with pytest.raises(InvalidInput, match="no timezone"):
        ManualClock(datetime(2026, 1, 1))
    clock = ManualClock(T0)
    with pytest.raises(InvalidInput, match="no timezone"):
        clock.set(datetime(2026, 1, 2))


def test_other_zones_are_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    clock = ManualClock(datetime(2026, 1, 1, 9, tzinfo=tokyo))
    assert clock.now() == T0
    assert clock.now().utcoffset() == timedelta(0)
    assert utc(datetime(2026, 1, 1, 9, tzinfo=tokyo)).tzinfo is UTC


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["2026-01-01", 1767225600, None])
def test_utc_refuses_what_is_not_a_datetime(value: object) -> None:
    with pytest.raises(InvalidInput, match="datetime"):
        utc(value)  # type: ignore[arg-type]
