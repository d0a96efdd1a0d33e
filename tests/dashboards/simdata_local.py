"""Local-agent tool calls for the dashboard tests (kept beside simdata.py, which calls it): the simulator's
export records (producers/simulator/local_agents.py), through the real format and normalization."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from gateledger.masking import Masker
from gateledger.topics import Format
from producers.accept import get_format
from producers.accept import IngestContext
from producers.simulator.local_agents import local_agent_exports
from producers.simulator.world import Tenant
from stream_processors.normalize.local_agent import call_from_local_agent_event

MASKER = Masker(salt=b"dashboards")


def local_agent_calls(sim: Any, rng: random.Random, tenant: Tenant, start: datetime, span: timedelta) -> None:
    """The tenant's devices' tool calls, each as the pipeline would land it (Obot receives them at once)."""
    export = get_format(Format.OBOT_EXPORT)
    for record in local_agent_exports(tenant, rng, start, span):
        received = datetime.fromisoformat(record["timestamp"]["recordedAt"])
        published = export(record, IngestContext(masker=MASKER, tenant=tenant.name, received_at=received))
        sim.add(call_from_local_agent_event(published.envelope))
