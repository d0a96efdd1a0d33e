"""When `gateledger up` recycles its broker (gateledger/stack/recycle.py): the schedule's decision."""

from __future__ import annotations

import os

import pytest

from gateledger.settings import StackSettings
from gateledger.stack.recycle import RecycleSchedule, rss_mib


def test_defaults_bound_memory_and_not_time(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("GATELEDGER_STACK_"):
            monkeypatch.delenv(k)
    s = RecycleSchedule.of(StackSettings())
    assert s.rss_mib == 1024 and s.interval_s == 0 and s.min_uptime_s == 600
    assert s.due(1025, 601) and not s.due(1023, 10**7)


def test_memory_bound_time_bound_and_minimum_uptime() -> None:
    s = RecycleSchedule(rss_mib=100, interval_s=3600, min_uptime_s=60)
    assert s.due(101, 59) is None, "a young broker is never recycled (a bound below its baseline would loop)"
    assert "101 MiB" in (s.due(101, 60) or "")
    assert s.due(100, 60) is None  # at the bound is not past it
    assert s.due(None, 3599) is None  # the broker's memory unknown (it is gone): time alone decides
    assert "1.00 h" in (s.due(None, 3600) or "")
    off = RecycleSchedule(rss_mib=0, interval_s=0, min_uptime_s=0)
    assert off.due(10**6, 10**9) is None


def test_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATELEDGER_STACK_BROKER_RECYCLE_RSS_MIB", "-1")
    with pytest.raises(ValueError):
        StackSettings()


def test_rss_of_this_process_and_of_none() -> None:
    mine = rss_mib(os.getpid())
    assert mine is not None and mine > 1
    assert rss_mib(2**22 + 12345) is None
