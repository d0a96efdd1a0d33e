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


def clock_us(clock: Clock) -> Callable[[], int]:
    """An epoch-microsecond clock from a datetime clock; the system clock without building a datetime
    (stages read it for every event: source idleness)."""
    if clock is utcnow:
        return lambda: time.time_ns() // 1000
    return lambda: to_us(clock())
