"""Simulated local-agent tool calls for the dashboard tests (kept beside simdata.py, which calls it)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from gateledger.contracts.events import LocalAgentToolCall, McpCallStatus
from gateledger.ids import stable_id

TOOLS = (("Bash", "shell"), ("Edit", "file"), ("WebFetch", "network"))
PROVIDERS = ("claude_code", "codex", "cursor", "vscode")


def local_agent_calls(sim: Any, rng: random.Random, tenant: str, start: datetime, span: timedelta) -> None:
    """A few devices running local tools; the device's clock a little off Obot's."""
    for n in range(12):
        recorded = start + span * rng.random()
        tool, kind = TOOLS[n % len(TOOLS)]
        sim.add(LocalAgentToolCall(
            id=stable_id("sim-local", tenant, n), tenant=tenant, time=recorded, source="obot/sim/mcp",
            occurred_at=recorded - timedelta(seconds=rng.randint(0, 90)), time_source="client_reported",
            actor_type="device", actor_id=f"dev-{tenant}-{n % 3}", device_id=f"dev-{tenant}-{n % 3}",
            hostname=f"laptop-{n % 3}", credential=f"key-{n % 2}", agent_provider=PROVIDERS[n % len(PROVIDERS)],
            tool_name=tool, tool_kind=kind, target_type="local_tool", target_name=tool,
            status=McpCallStatus.SUCCESS if n % 5 else McpCallStatus.FAILURE, duration_ms=rng.randint(5, 900),
            session_id=f"sess-{tenant}-{n % 4}", event_ids=[stable_id("sim-local-ev", tenant, n)],
        ))
