"""The simulator's local-agent export records: accepted by the real export format, deterministic for a
seed, recorded inside the span, the device's own time never after Obot's."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from gateledger.masking import Masker
from gateledger.topics import EventType, Format
from producers.accept import get_format
from producers.accept import IngestContext
from producers.simulator.local_agents import DEVICES, local_agent_exports
from producers.simulator.world import build_world

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
SPAN = timedelta(hours=2)


def test_records_are_deterministic_and_inside_the_span() -> None:
    tenant = build_world(random.Random(1), 1)[0]
    one = local_agent_exports(tenant, random.Random(5), START, SPAN, calls=20)
    assert one == local_agent_exports(tenant, random.Random(5), START, SPAN, calls=20)
    assert one != local_agent_exports(tenant, random.Random(6), START, SPAN, calls=20)
    assert len({r["actor"]["id"] for r in one}) == DEVICES
    for r in one:
        recorded = datetime.fromisoformat(r["timestamp"]["recordedAt"])
        occurred = datetime.fromisoformat(r["timestamp"]["occurredAt"])
        assert START <= recorded < START + SPAN and occurred <= recorded


def test_the_export_format_takes_every_record_as_a_local_agent_tool_call() -> None:
    tenant = build_world(random.Random(1), 1)[0]
    export = get_format(Format.OBOT_EXPORT)
    ctx = IngestContext(masker=Masker(salt=b"s"), tenant=tenant.name, received_at=START + SPAN)
    envelopes = [export(r, ctx).envelope for r in local_agent_exports(tenant, random.Random(5), START, SPAN)]
    assert {e.type for e in envelopes} == {EventType.OBOT_LOCAL_AGENT_TOOL_CALL}
    assert len({e.id for e in envelopes}) == len(envelopes)
