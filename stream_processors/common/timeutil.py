"""Event time as integer microseconds since the epoch: exact, cheap to compare, JSON-friendly."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateledger.clock import Clock, utcnow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = 1_000_000


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch of an aware (or UTC-naive) datetime."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts - _EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> datetime:
    """The UTC datetime of an epoch-microsecond value."""
    return _EPOCH + timedelta(microseconds=us)


def secs(s: float) -> int:
    """A duration in seconds as microseconds."""
    return int(round(s * US))


# State that expires by event time does so in buckets: a quarter of its window, an hour at most, a
# second at least. A key is held at most window + one bucket; an hour's bucket under a 2-minute window
# held 30x the window (the soak's processors grew for an hour: docs/benchmarks-soak.md).
_EXPIRY_BUCKET_MAX_US = 3600 * US


def expiry_bucket_us(window_us: int) -> int:
    """The expiry granularity of state held for ``window_us`` of event time."""
    return min(_EXPIRY_BUCKET_MAX_US, max(US, window_us // 4))


def clock_us(clock: Clock) -> Callable[[], int]:
    """An epoch-microsecond clock from a datetime clock; the system clock without building a datetime
    (stages read it for every event: source idleness)."""
    if clock is utcnow:
        return lambda: time.time_ns() // 1000
    return lambda: to_us(clock())
