"""Budget periods: calendar day / ISO week / month in an IANA timezone, or rolling windows of N hours.

A calendar period is the half-open interval of instants ``[start, end)`` between two local
midnights of the budget's timezone, converted to UTC. Local midnight is taken as the first instant
whose wall clock shows that date: on a spring-forward day where midnight does not exist (e.g.
America/Santiago) the day starts at the transition; where midnight happens twice it starts at the
first. A day therefore lasts 23, 24 or 25 hours (23.5 / 24.5 on Lord Howe Island), February has 28
or 29 days, weeks start on Monday (ISO 8601) and carry ISO week numbers (``week:2026-W01`` may
start in December). Boundaries are computed from instants, never by adding 24 hours.

Rolling windows: spend over the trailing ``N`` hours, measured on buckets of ``N/12`` hours
aligned to the Unix epoch. Alerts for a rolling budget are identified by *blocks*: consecutive
N-hour intervals aligned to the epoch; the block that contains the end of the window where a
threshold is crossed names the alert, so each threshold fires at most once per block (see
``accounting``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateledger.clock import to_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROLLING_BUCKETS = 12  # buckets per rolling window


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    ROLLING = "rolling"


class PeriodError(ValueError):
    """A period definition that cannot be used."""


@dataclass(frozen=True)
class Period:
    """One budget period: its key, its instants ``[start, end)`` in UTC, and its bucket grid."""

    key: str
    start: datetime
    end: datetime
    bucket_seconds: int

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end

    def bucket_of(self, t: datetime) -> int:
        """Index of the bucket holding instant t, counted from this period's start (negative before it)."""
        return int((t - self.start).total_seconds() // self.bucket_seconds)

    def bucket_end(self, index: int) -> datetime:
        """End instant of bucket ``index`` (clamped to the period end)."""
        return min(self.start + timedelta(seconds=(index + 1) * self.bucket_seconds), self.end)


def zone(name: str) -> ZoneInfo:
    """The IANA timezone, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"unknown IANA timezone {name!r}") from None


def local_midnight(d: date, tz: ZoneInfo) -> datetime:
    """The first instant whose wall clock in ``tz`` shows date ``d``, in UTC."""
    # fold=0 picks the earlier of two repeated midnights; for a midnight inside a DST gap zoneinfo
    # applies the pre-transition offset, which lands exactly on the transition instant.
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def _first_of_month(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _calendar(kind: PeriodKind, t: datetime, tz: ZoneInfo) -> tuple[date, date]:
    """The local dates that open the period holding t and the next one."""
    local = t.astimezone(tz).date()
    if kind is PeriodKind.DAY:
        first = local
        nxt = local + timedelta(days=1)
    elif kind is PeriodKind.WEEK:
        first = local - timedelta(days=local.weekday())  # ISO weeks start on Monday
        nxt = first + timedelta(days=7)
    else:
        first = _first_of_month(local)
        nxt = _next_month(local)
    # Boundaries are instants; in the rare zone whose clock runs back over midnight, an instant's
    # wall date can disagree with the interval it falls in: move to the interval that holds it.
    while t < local_midnight(first, tz):
        first, nxt = _step(kind, first, -1), first
    while t >= local_midnight(nxt, tz):
        first, nxt = nxt, _step(kind, nxt, 1)
    return first, nxt


def _step(kind: PeriodKind, d: date, n: int) -> date:
    if kind is PeriodKind.DAY:
        return d + timedelta(days=n)
    if kind is PeriodKind.WEEK:
        return d + timedelta(days=7 * n)
    if n > 0:
        return _next_month(d)
    prev = d - timedelta(days=1)
    return prev.replace(day=1)


def _key(kind: PeriodKind, first: date) -> str:
    if kind is PeriodKind.DAY:
        return f"day:{first.isoformat()}"
    if kind is PeriodKind.WEEK:
        iso = first.isocalendar()
        return f"week:{iso.year}-W{iso.week:02d}"
    return f"month:{first.year:04d}-{first.month:02d}"


_CAL_BUCKET = {PeriodKind.DAY: 3600, PeriodKind.WEEK: 6 * 3600, PeriodKind.MONTH: 24 * 3600}


@dataclass(frozen=True)
class PeriodSpec:
    """How a budget cuts time: kind, timezone (calendar kinds) and window length (rolling)."""

    kind: PeriodKind
    timezone: str = "UTC"
    hours: int | None = None

    def __post_init__(self) -> None:
        if self.kind is PeriodKind.ROLLING:
            if not self.hours or self.hours < 1:
                raise PeriodError("a rolling period needs hours >= 1")
        elif self.hours is not None:
            raise PeriodError(f"hours only applies to rolling periods, not {self.kind.value}")
        zone(self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def bucket_seconds(self) -> int:
        if self.kind is PeriodKind.ROLLING:
            return (self.hours or 1) * 3600 // ROLLING_BUCKETS
        return _CAL_BUCKET[self.kind]

    @property
    def window_seconds(self) -> int | None:
        return (self.hours or 0) * 3600 if self.kind is PeriodKind.ROLLING else None

    def period_at(self, t: datetime) -> Period:
        """The period (calendar) or alert block (rolling) that holds instant t."""
        t = to_utc(t)
        if self.kind is PeriodKind.ROLLING:
            length = (self.hours or 1) * 3600
            k = int((t - EPOCH).total_seconds() // length)
            start = EPOCH + timedelta(seconds=k * length)
            return Period(f"rolling{self.hours}h:{start.strftime('%Y-%m-%dT%H:%M:%SZ')}", start,
                          start + timedelta(seconds=length), self.bucket_seconds)
        tz = self.tz
        first, nxt = _calendar(self.kind, t, tz)
        return Period(_key(self.kind, first), local_midnight(first, tz), local_midnight(nxt, tz), self.bucket_seconds)

    def next_period(self, p: Period) -> Period:
        """The period right after p."""
        return self.period_at(p.end)

    def previous_period(self, p: Period) -> Period:
        """The period right before p."""
        return self.period_at(p.start - timedelta(microseconds=1))

    def periods_touched(self, t: datetime) -> list[Period]:
        """Every period whose state an event at t changes: its own, and for rolling windows also the next
        block (whose first windows reach back into this one)."""
        own = self.period_at(t)
        if self.kind is PeriodKind.ROLLING:
            return [own, self.next_period(own)]
        return [own]

    def describe(self) -> str:
        if self.kind is PeriodKind.ROLLING:
            return f"rolling {self.hours}h"
        return f"calendar {self.kind.value} ({self.timezone})"
