"""Generating interactions as the upstream systems would report them, in their wire formats.

One interaction: an AxonFlow pre-check (sometimes blocked), the LLM call's audit, zero or more MCP
tool calls through the Obot shim (request and response halves), and webhook-filter results. All
randomness comes from one seeded generator: the same seed gives the same traffic.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateledger.contracts.envelope import utc_iso as rfc3339
from producers.simulator.world import CLIENTS, MCP_SERVERS, MODELS, POLICIES, Tenant


@dataclass
class Batch:
    """Records per ingest format, ready to POST."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, fmt: str, record: dict[str, Any]) -> None:
        self.records.setdefault(fmt, []).append(record)


class TrafficGenerator:
    """Deterministic interaction generator."""

    def __init__(self, world: list[Tenant], seed: int) -> None:
        self.world = world
        self.rng = random.Random(seed)
        self._row_id = 0

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def interaction(self, now: datetime, out: Batch) -> None:
        """Append one interaction's records to ``out``."""
        rng = self.rng
        tenant = rng.choice(self.world)
        user = rng.choice(tenant.users)
        agent = rng.choice(tenant.agents)
        request_id = f"req-{self._uuid()}"
        trace_id = self._hex(32)
        traceparent = f"00-{trace_id}-{self._hex(16)}-01"
        context_id = f"ctx-{self._uuid()}"
        servers = rng.sample(tenant.servers, rng.randint(1, min(3, len(tenant.servers))))
        blocked = rng.random() < 0.08
        policies = rng.sample(POLICIES, rng.randint(0, 2))
        t0 = now
        # -- pre-check
        out.add(
            "axonflow-precheck",
            {
                "path": "/api/policy/pre-check",
                "status": 200,
                "started_at": rfc3339(t0),
                "finished_at": rfc3339(t0 + timedelta(milliseconds=rng.randint(3, 25))),
                "tenant_header": tenant.name,
                "request": {
                    "user_token": f"utok_{user}_{self._hex(24)}",
                    "client_id": agent,
                    "query": f"{agent} request for {user}: summarize recent activity",
                    "data_sources": servers,
                    "context": {
                        "request_id": request_id,
                        "traceparent": traceparent,
                        "tenant_id": tenant.name,
                        "mcp_servers": servers,
                        "agent_framework": rng.choice(["langgraph", "crewai", "openai-agents"]),
                    },
                },
                "response": {
                    "context_id": context_id,
                    "approved": not blocked,
                    "requires_redaction": "pii_detection" in policies,
                    "policies": policies + (["prompt_injection"] if blocked else []),
                    "expires_at": rfc3339(t0 + timedelta(minutes=5)),
                    "block_reason": "Prompt injection pattern detected" if blocked else None,
                    "trace_id": trace_id,
                    "rate_limit": {"limit": 1000, "remaining": rng.randint(0, 1000),
                                   "reset_at": rfc3339(t0 + timedelta(minutes=1))},
                },
            },
        )
        if blocked:
            return
        # -- LLM call audit
        provider, model, tin, tout = rng.choice(MODELS)
        prompt = max(1, int(rng.gauss(tin, tin / 4)))
        completion = max(1, int(rng.gauss(tout, tout / 3)))
        latency = int(rng.lognormvariate(6.5, 0.5))
        failed = rng.random() < 0.03
        t1 = t0 + timedelta(milliseconds=30)
        out.add(
            "axonflow-llm-call",
            {
                "path": "/api/audit/llm-call",
                "status": 200,
                "started_at": rfc3339(t1 + timedelta(milliseconds=latency)),
                "finished_at": rfc3339(t1 + timedelta(milliseconds=latency + 4)),
                "tenant_header": tenant.name,
                "request": {
                    "context_id": context_id,
                    "client_id": agent,
                    "provider": provider,
                    "model": model,
                    "response_summary": "Summarized 12 items" if not failed else "",
                    "token_usage": {"prompt_tokens": prompt, "completion_tokens": 0 if failed else completion,
                                    "total_tokens": prompt + (0 if failed else completion)},
                    "latency_ms": latency,
                    "metadata": {"error": True} if failed else {"request_id": request_id},
                },
                "response": {"success": True, "audit_id": f"aud-{self._uuid()}"},
            },
        )
        # -- MCP tool calls through the Obot shim
        t2 = t1 + timedelta(milliseconds=latency + 10)
        client_name, client_version = rng.choice(CLIENTS)
        session = f"sess-{self._hex(16)}"
        for n in range(rng.choice([0, 1, 1, 2, 2, 3])):
            server = rng.choice(servers)
            tool = rng.choice(MCP_SERVERS[server])
            jsonrpc_id = str(n + 1)
            duration = int(rng.lognormvariate(4.5, 0.7))
            rejected = rng.random() < 0.04
            error = not rejected and rng.random() < 0.03
            status = 403 if rejected else (500 if error else 200)
            meta = {"mcpID": f"{tenant.name}-{server}", "mcpServerDisplayName": server,
                    "mcpServerCatalogEntryName": f"catalog/{server}", "userID": user}
            request_body = {
                "jsonrpc": "2.0",
                "id": n + 1,
                "method": "tools/call",
                "params": {
                    "name": tool,
                    "arguments": {"query": f"item {rng.randint(1, 999)}", "contact": f"{user}@{tenant.name}.example"},
                    "_meta": {"request_id": request_id, "traceparent": traceparent,
                              "io.modelcontextprotocol/clientInfo": {"name": client_name, "version": client_version}},
                },
            }
            webhook = [{"type": "request", "method": "tools/call", "name": "dlp-filter", "tool": tool,
                        "url": "https://hooks.internal/dlp", "status": "rejected" if rejected else "ok",
                        "message": "blocked: contains customer PII" if rejected else ""}]
            ts = t2 + timedelta(milliseconds=n * (duration + 5))
            out.add(
                "obot-audit",
                {
                    "createdAt": rfc3339(ts),
                    "subject": user,
                    "metadata": meta,
                    "clientName": client_name,
                    "clientVersion": client_version,
                    "clientIP": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                    "callType": "tools/call",
                    "callIdentifier": tool,
                    "requestBody": request_body,
                    "requestHeaders": {"Authorization": "[REDACTED]", "Mcp-Session-Id": session},
                    "sessionID": session,
                    "requestID": jsonrpc_id,
                    "userAgent": f"{client_name}/{client_version}",
                    "webhookStatuses": webhook,
                    "responseStatus": status,
                    "processingTimeMs": duration,
                    "responseReceived": not rejected,
                    "error": "MCP request blocked by hook: dlp-filter" if rejected else ("upstream error" if error else ""),
                    "responseBody": None if rejected else {
                        "jsonrpc": "2.0", "id": n + 1,
                        "result": {"content": [{"type": "text", "text": "ok"}], "isError": error},
                    },
                },
            )
