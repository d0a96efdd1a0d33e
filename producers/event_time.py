"""Event time bounded at ingest: a record may not claim to have happened after it was received.

One tenant's record dated in the year 2999 would otherwise move event time (watermarks, timeouts,
expiries) for everybody downstream. Such a record is refused with reason ``future_time`` and
dead-lettered like any invalid record, rather than clamped: a clamped time would be a time nobody
observed, recorded as fact in a compliance ledger, while a dead letter keeps the (masked) original
and tells the sender, which can fix its clock and send again (docs/ingest.md, "Event time").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class EventTimeSettings(BaseSettings):
    """How far ahead of its receipt an event may be dated (``GATELEDGER_INGEST_MAX_FUTURE_SKEW_S``)."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_INGEST_", extra="ignore")

    # Clocks of upstream hosts drift; a few minutes covers NTP-synced hosts with margin.
    max_future_skew_s: float = 300.0


@lru_cache(maxsize=1)
def configured_skew() -> timedelta:
    """The skew from the environment, read once per process."""
    return timedelta(seconds=EventTimeSettings().max_future_skew_s)


def future_time_error(time: datetime, received_at: datetime, skew: timedelta) -> str | None:
    """Why ``time`` is too far after ``received_at``, or None when it is within the skew."""
    if time <= received_at + skew:
        return None
    return (f"event time {time.isoformat()} is {(time - received_at).total_seconds():.0f} s after it was "
            f"received ({received_at.isoformat()}); at most {skew.total_seconds():.0f} s allowed "
            f"(GATELEDGER_INGEST_MAX_FUTURE_SKEW_S)")
