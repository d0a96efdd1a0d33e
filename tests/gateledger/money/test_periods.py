"""Period boundaries honour the timezone: DST days of 23/25 hours, half-hour DST, midnight gaps,
month ends, leap days, year ends, ISO weeks starting Monday; rolling blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateledger.money.periods import PeriodError, PeriodKind, PeriodSpec


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def hours(p) -> float:  # noqa: ANN001
    return (p.end - p.start).total_seconds() / 3600


def day(tz: str) -> PeriodSpec:
    return PeriodSpec(PeriodKind.DAY, tz)


def test_spring_forward_day_has_23_hours_in_berlin() -> None:
    p = day("Europe/Berlin").period_at(utc(2026, 3, 29, 12))
    assert p.key == "day:2026-03-29"
    assert (p.start, p.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert hours(p) == 23


def test_fall_back_day_has_25_hours_in_berlin() -> None:
    p = day("Europe/Berlin").period_at(utc(2026, 10, 25, 1, 30))  # inside the repeated hour
    assert p.key == "day:2026-10-25" and hours(p) == 25
    assert (p.start, p.end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))


def test_new_york_dst_days() -> None:
    spring = day("America/New_York").period_at(utc(2026, 3, 8, 12))
    fall = day("America/New_York").period_at(utc(2026, 11, 1, 12))
    assert (hours(spring), hours(fall)) == (23, 25)
    assert spring.start == utc(2026, 3, 8, 5) and spring.end == utc(2026, 3, 9, 4)


def test_lord_howe_half_hour_dst() -> None:
    # Lord Howe moves its clocks by 30 minutes: 24.5-hour day when DST ends (first Sunday of April).
    p = day("Australia/Lord_Howe").period_at(utc(2026, 4, 5, 3))
    assert p.key == "day:2026-04-05" and hours(p) == 24.5


def test_midnight_that_does_not_exist_starts_the_day_at_the_transition() -> None:
    # Chile springs forward at 24:00: on 2026-09-06 the wall clock goes from 23:59:59 to 01:00.
    tz = ZoneInfo("America/Santiago")
    p = day("America/Santiago").period_at(utc(2026, 9, 6, 12))
    assert p.key == "day:2026-09-06" and hours(p) == 23
    assert p.start.astimezone(tz).hour == 1, "the first instant of the day shows 01:00"
    prev = day("America/Santiago").previous_period(p)
    assert prev.end == p.start and prev.key == "day:2026-09-05"


def test_boundaries_are_exact_instants_around_the_gap() -> None:
    spec = day("Europe/Berlin")
    boundary = utc(2026, 3, 28, 23)
    assert spec.period_at(boundary).key == "day:2026-03-29"
    assert spec.period_at(boundary - timedelta(microseconds=1)).key == "day:2026-03-28"


def test_month_ends_leap_day_and_year_end() -> None:
    m = PeriodSpec(PeriodKind.MONTH, "Europe/Berlin")
    feb = m.period_at(utc(2028, 2, 29, 12))
    assert feb.key == "month:2028-02" and (feb.end - feb.start) == timedelta(days=29)
    assert m.period_at(utc(2027, 2, 15)).end - m.period_at(utc(2027, 2, 15)).start == timedelta(days=28)
    march = m.period_at(utc(2026, 3, 15))
    assert hours(march) == 31 * 24 - 1, "March in Berlin loses the DST hour"
    dec = m.period_at(utc(2026, 12, 31, 22, 59))  # 23:59 Berlin on New Year's Eve
    assert dec.key == "month:2026-12" and dec.end == utc(2026, 12, 31, 23)
    jan = m.next_period(dec)
    assert jan.key == "month:2027-01" and jan.start == dec.end
    assert m.period_at(utc(2026, 12, 31, 23)).key == "month:2027-01", "already January in Berlin"
    assert day("Europe/Berlin").period_at(utc(2028, 2, 29, 12)).key == "day:2028-02-29"


def test_weeks_start_on_monday_and_use_iso_numbers() -> None:
    w = PeriodSpec(PeriodKind.WEEK, "Europe/Berlin")
    p = w.period_at(utc(2026, 3, 29, 12))  # Sunday of the DST change
    assert p.key == "week:2026-W13"
    assert p.start.astimezone(ZoneInfo("Europe/Berlin")).weekday() == 0
    assert hours(p) == 7 * 24 - 1
    # ISO week 1 of 2027 starts on Monday 2027-01-04; 2027-01-01 (Friday) is in 2026-W53.
    assert w.period_at(utc(2027, 1, 1, 12)).key == "week:2026-W53"
    y2026 = w.period_at(utc(2025, 12, 31, 12))
    assert y2026.key == "week:2026-W01", "2025-12-31 (Wednesday) is in the first ISO week of 2026"


def test_rolling_blocks_and_buckets() -> None:
    r = PeriodSpec(PeriodKind.ROLLING, hours=6)
    p = r.period_at(utc(2026, 3, 29, 13, 5))
    assert (p.start, p.end) == (utc(2026, 3, 29, 12), utc(2026, 3, 29, 18))
    assert p.key == "rolling6h:2026-03-29T12:00:00Z" and p.bucket_seconds == 1800
    assert [x.key for x in r.periods_touched(utc(2026, 3, 29, 13, 5))] == [p.key, "rolling6h:2026-03-29T18:00:00Z"]
    assert p.bucket_of(utc(2026, 3, 29, 13, 5)) == 2


@pytest.mark.parametrize(("kind", "tz", "hours_"), [
    (PeriodKind.DAY, "Mars/Olympus", None), (PeriodKind.ROLLING, "UTC", None), (PeriodKind.ROLLING, "UTC", 0),
    (PeriodKind.MONTH, "UTC", 6),
])
def test_bad_specs(kind: PeriodKind, tz: str, hours_: int | None) -> None:
    with pytest.raises(PeriodError):
        PeriodSpec(kind, tz, hours_)


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata",
         "Pacific/Chatham", "America/St_Johns", "Africa/Casablanca", "Asia/Tehran", "Pacific/Apia"]


@settings(max_examples=400, deadline=None)
@given(st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2040, 1, 1)).map(lambda d: d.replace(tzinfo=UTC)),
       st.sampled_from(ZONES), st.sampled_from([PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH]))
def test_periods_tile_time(t: datetime, tz: str, kind: PeriodKind) -> None:
    spec = PeriodSpec(kind, tz)
    p = spec.period_at(t)
    assert p.start <= t < p.end
    nxt = spec.next_period(p)
    assert nxt.start == p.end and nxt.key != p.key
    assert spec.previous_period(p).end == p.start
    assert spec.period_at(p.start) == p and spec.period_at(p.end - timedelta(microseconds=1)) == p
    # the key is the wall-clock date of the period's first instant
    local = p.start.astimezone(ZoneInfo(tz))
    if kind is PeriodKind.DAY:
        assert p.key == f"day:{local.date().isoformat()}" and timedelta(hours=22) <= p.end - p.start <= timedelta(hours=26)
    elif kind is PeriodKind.MONTH:
        assert local.day == 1 and p.key == f"month:{local.year:04d}-{local.month:02d}"
    else:
        assert local.weekday() == 0
