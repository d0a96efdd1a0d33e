"""Local-agent tool calls of a tenant's enrolled devices, as Obot's export presents them (format
``obot-export``): a few laptops running an agent's local tools, each device's clock a little off Obot's.

Drawn from the simulator's world (the tenant's users report themselves on their devices); the record
shape is ``records.obot_local_agent_tool_call``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from producers.simulator.records import obot_local_agent_tool_call
from producers.simulator.world import Tenant

TOOLS = (("Bash", "shell"), ("Edit", "file"), ("WebFetch", "network"))
PROVIDERS = ("claude_code", "codex", "cursor", "vscode")
DEVICES = 3  # per tenant
FAILURE_EVERY = 5  # one call in five fails


def local_agent_exports(tenant: Tenant, rng: random.Random, start: datetime, span: timedelta,
                        calls: int = 12) -> list[dict[str, Any]]:
    """``calls`` export records of ``tenant``'s devices, recorded by Obot within ``[start, start + span)``."""
    out = []
    for n in range(calls):
        recorded = start + span * rng.random()
        tool, kind = TOOLS[n % len(TOOLS)]
        device = n % DEVICES
        out.append(obot_local_agent_tool_call(
            n + 1,  # Obot numbers its audit rows (gateledger's event id adds the tenant)
            occurred=recorded - timedelta(seconds=rng.randint(0, 90)), recorded=recorded,
            device_id=f"dev-{tenant.name}-{device}", credential=f"key-{n % 2}", tool=tool, kind=kind,
            provider=PROVIDERS[n % len(PROVIDERS)], success=bool(n % FAILURE_EVERY),
            duration_ms=rng.randint(5, 900), session_id=f"sess-{tenant.name}-{n % 4}", hostname=f"laptop-{device}",
            os="darwin", user_email=f"{tenant.users[device % len(tenant.users)]}@{tenant.name}.example",
        ))
    return out
