"""A webhook delivery replayed from its recording keeps the delivery's time (issue 16)."""

from __future__ import annotations

from datetime import timedelta

from tests.stream_processors.harness import envelope
from tests.stream_processors.traffic import T0


def test_a_recorded_delivery_replays_at_its_delivery_time_not_the_replay_time() -> None:
    msg = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
           "params": {"name": "create_issue", "_meta": {"request_id": "req-9"}}}
    live = envelope("obot-webhook", msg, received_at=T0)
    assert live.envelope.time == T0
    # What raw_events holds for the delivery (its masked data) is the recording; replayed a day later:
    replay = envelope("obot-webhook", live.envelope.data, received_at=T0 + timedelta(days=1))
    assert replay.envelope.time == T0 and replay.envelope.received_at == T0 + timedelta(days=1)
    assert replay.envelope.request_id == "req-9"
    # A message recorded without one is stamped with its arrival, as a live delivery is.
    fresh = envelope("obot-webhook", msg, received_at=T0 + timedelta(hours=2))
    assert fresh.envelope.time == T0 + timedelta(hours=2)
