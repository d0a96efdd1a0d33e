"""Event time is bounded at ingest: a record dated beyond its receipt plus the allowed skew is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateledger.masking import Masker
from producers import event_time
from producers.accept import get_format
from producers.accept import IngestContext, InvalidRecord
from tests import samples

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _event(t: datetime) -> dict[str, Any]:
    rec = samples.obot_audit_event()
    rec["timestamp"]["occurredAt"] = _iso(t)
    return rec


# Every format whose record carries its own event time (a webhook delivery is dated by its arrival).
DATED: dict[str, Callable[[datetime], dict[str, Any]]] = {
    "obot-audit": lambda t: samples.obot_flat(createdAt=_iso(t)),
    "obot-audit-event": _event,
    "obot-llm": lambda t: samples.obot_llm(createdAt=_iso(t)),
    "axonflow-precheck": lambda t: samples.precheck(started_at=_iso(t), finished_at=_iso(t)),
    "axonflow-llm-call": lambda t: samples.llm_audit(started_at=_iso(t), finished_at=_iso(t)),
    "cloudevents": lambda t: samples.cloudevent(time=_iso(t)),
}


def ctx(**kw: Any) -> IngestContext:
    return IngestContext(masker=Masker(salt=b"s"), received_at=NOW, **kw)


@pytest.mark.parametrize("fmt", sorted(DATED))
def test_a_record_from_the_year_2999_is_refused_in_every_format(fmt: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        get_format(fmt)(DATED[fmt](datetime(2999, 1, 1, tzinfo=UTC)), ctx())
    assert err.value.reason == "future_time"
    assert "2999-01-01" in str(err.value) and "GATELEDGER_INGEST_MAX_FUTURE_SKEW_S" in str(err.value)


@pytest.mark.parametrize("fmt", sorted(DATED))
def test_the_skew_is_the_bound(fmt: str) -> None:
    skew = timedelta(minutes=5)
    # At the bound and in the past: accepted with the time the record gives.
    for t in (NOW + skew, NOW - timedelta(days=30)):
        assert get_format(fmt)(DATED[fmt](t), ctx(max_future_skew=skew)).envelope.time == t
    with pytest.raises(InvalidRecord, match="future_time|after it was received"):
        get_format(fmt)(DATED[fmt](NOW + skew + timedelta(seconds=1)), ctx(max_future_skew=skew))


def test_the_webhook_delivery_is_dated_by_its_arrival() -> None:
    env = get_format("obot-webhook")(samples.webhook_message(), ctx(max_future_skew=timedelta(0))).envelope
    assert env.time == env.received_at == NOW


def test_skew_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    event_time.configured_skew.cache_clear()
    monkeypatch.setenv("GATELEDGER_INGEST_MAX_FUTURE_SKEW_S", "30")
    try:
        assert IngestContext(masker=Masker(salt=b"s")).max_future_skew == timedelta(seconds=30)
    finally:
        event_time.configured_skew.cache_clear()
    monkeypatch.delenv("GATELEDGER_INGEST_MAX_FUTURE_SKEW_S")
    assert event_time.configured_skew() == timedelta(minutes=5)  # the default: a few minutes
