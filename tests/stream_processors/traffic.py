"""Interactions shaped by a test, in the upstream wire formats, through the producers' format code (as
ingest publishes them).

A thin adapter over the simulator's record builders (producers/simulator/records.py, the one place
the wire shapes are spelled): a ``Spec`` names the exact values a scenario needs. Each builder returns ``Published`` envelopes with explicit event and receive times, so a test
controls event time exactly (received_at = event time + a small delay unless told otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateledger.contracts.envelope import utc_iso
from producers.accept import Published
from producers.simulator import Faults, Mix, simulate
from producers.simulator.records import (
    AUDIT_PATH,
    CHECK_INPUT_PATH,
    CHECK_OUTPUT_PATH,
    DECIDE_PATH,
    PRECHECK_PATH,
    audit_request,
    audit_response,
    audit_trail_row,
    axonflow_exchange,
    governance_exchange,
    obot_call,
    precheck_request,
    precheck_response,
    token_usage,
    tool_call_message,
)
from tests.stream_processors.harness import envelope

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DELAY = timedelta(milliseconds=200)


def _iso(ts: datetime) -> str:
    return utc_iso(ts)


@dataclass
class Spec:
    """What one generated interaction contains."""

    n: int
    t0: datetime
    tenant: str = "acme"
    blocked: bool = False
    audit: bool = True
    tools: int = 2
    halves: bool = True  # MCP calls as request + response halves (else whole records)
    reject_tool: int | None = None  # index of the tool call a webhook filter rejects
    reject_ran: bool = False  # the rejected call ran anyway (a bypass)
    zero_tokens: bool = False
    filter_decision: str | None = None  # also a gateledger webhook-filter record with this decision
    expires_in_s: float = 300.0  # the pre-check's expires_at, after its time
    trail: bool = False  # AxonFlow's own audit trail logs the audit too (the audit poller's row)
    checks: bool = False  # tool calls governed by AxonFlow's /decide and MCP checks, joined on the trace only
    check_block: bool = False  # check-input refuses the first tool call, which runs anyway (a bypass)
    prompt_tokens: int = 1000
    completion_tokens: int = 200
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def request_id(self) -> str:
        return f"req-{self.n}"

    @property
    def context_id(self) -> str:
        return f"ctx-{self.n}"

    @property
    def trace_id(self) -> str:
        return f"{self.n:032x}"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-00f067aa0ba902b7-01"


def precheck(spec: Spec, at: datetime, received: datetime | None = None) -> Published:
    return envelope("axonflow-precheck", precheck_record(spec, at), tenant=spec.tenant,
                    received_at=received or at + DELAY)


def precheck_record(spec: Spec, at: datetime) -> dict[str, Any]:
    """The AxonFlow tap's recording of one pre-check exchange."""
    approved = not spec.blocked
    request = precheck_request(f"utok-{spec.n}-secret", "support-bot", "status of 42?",
                               {"request_id": spec.request_id, "traceparent": spec.traceparent,
                                "mcp_servers": ["github"], "user_id": f"user-{spec.n % 7}"})
    response = precheck_response(spec.context_id, approved, ["pii_detection"] + ([] if approved else ["prompt_injection"]),
                                 at + timedelta(seconds=spec.expires_in_s),
                                 block_reason=None if approved else "Prompt injection pattern detected")
    return axonflow_exchange(PRECHECK_PATH, spec.tenant, at, at + timedelta(milliseconds=15), request, response)


def audit(spec: Spec, at: datetime, received: datetime | None = None, context_id: str | None = None) -> Published:
    return envelope("axonflow-llm-call", audit_record(spec, at, context_id), tenant=spec.tenant,
                    received_at=received or at + DELAY)


def audit_record(spec: Spec, at: datetime, context_id: str | None = None) -> dict[str, Any]:
    """The AxonFlow tap's recording of one LLM-call audit exchange."""
    usage = token_usage(0, 0) if spec.zero_tokens else token_usage(spec.prompt_tokens, spec.completion_tokens)
    request = audit_request(context_id or spec.context_id, "support-bot", "openai", "gpt-4o", usage, 900, {})
    return axonflow_exchange(AUDIT_PATH, spec.tenant, at, at + timedelta(milliseconds=5), request,
                             audit_response(f"aud-{spec.n}"))


def _tool_records(spec: Spec, k: int, at: datetime) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(request half, response half, whole record) of the k-th tool call."""
    rejected = spec.reject_tool == k
    ran = not rejected or spec.reject_ran
    rpc = k + 1
    tool = f"tool_{k % 3}"
    meta = {"traceparent": spec.traceparent}
    if not spec.checks:  # an agent behind AxonFlow's MCP checks passes only the W3C trace on
        meta["request_id"] = spec.request_id
    hooks = [{"type": "request", "method": "tools/call", "name": "dlp", "tool": tool,
              "status": "rejected" if rejected else "ok", "message": "blocked: PII" if rejected else ""}]
    common = {"subject": f"user-{spec.n % 7}", "metadata": {"mcpID": "ms-github", "mcpServerDisplayName": "GitHub",
                                                           "mcpServerCatalogEntryName": "github"},
              "clientName": "Cursor", "clientVersion": "1.7.2", "sessionID": f"sess-{spec.n}", "requestID": str(rpc)}
    request = {"callType": "tools/call", "callIdentifier": tool,
               "requestBody": tool_call_message(rpc, tool, {"q": "x"}, meta), "webhookStatuses": hooks}
    if ran:
        return obot_call(common, request, {"responseBody": {"jsonrpc": "2.0", "id": rpc, "result": {"content": []}},
                                           "responseStatus": 200, "processingTimeMs": 80, "responseReceived": True},
                         at, at + timedelta(milliseconds=80))
    return obot_call(common, request, {"responseStatus": 403, "error": "MCP request blocked by hook: dlp",
                                       "processingTimeMs": 5}, at, at + timedelta(milliseconds=5))


def audit_trail_record(spec: Spec, at: datetime, context_id: str | None = None) -> dict[str, Any]:
    """A row of AxonFlow's own audit trail for the spec's LLM call (the audit poller's row)."""
    ctx = context_id or spec.context_id
    return audit_trail_row(f"trail-{ctx}", ctx, at, "support-bot", spec.tenant, "openai", "gpt-4o",
                           spec.prompt_tokens + spec.completion_tokens)


def governance_record(spec: Spec, path: str, at: datetime, tool: str, allowed: bool = True) -> dict[str, Any]:
    """The tap's recording of AxonFlow's ``/api/v1/decide`` or an MCP check for the spec's tool call."""
    k = {DECIDE_PATH: "d", CHECK_INPUT_PATH: "i", CHECK_OUTPUT_PATH: "o"}[path]
    return governance_exchange(path, spec.tenant, at, at + timedelta(milliseconds=4),
                               f"00-{spec.trace_id}-b7ad6b7169203331-01", tool=tool, server="github",
                               allowed=allowed, decision_id=f"dec-{spec.n}-{tool}-{k}")


def _governed_records(spec: Spec) -> list[tuple[datetime, str, dict[str, Any], datetime]]:
    """Tool calls an agent runs behind AxonFlow's governance: /decide, check-input, the call, check-output."""
    out = []
    for k in range(max(spec.tools, 1)):
        tk = spec.t0 + timedelta(seconds=2 + k)
        tool = f"tool_{k % 3}"
        blocked = spec.check_block and k == 0
        out.append((tk - timedelta(milliseconds=30), "axonflow-governance",
                    governance_record(spec, DECIDE_PATH, tk - timedelta(milliseconds=30), tool), tk))
        out.append((tk - timedelta(milliseconds=20), "axonflow-governance",
                    governance_record(spec, CHECK_INPUT_PATH, tk - timedelta(milliseconds=20), tool,
                                      allowed=not blocked), tk))
        _req, _resp, whole = _tool_records(spec, k, tk)
        out.append((tk, "obot-audit", whole, tk + DELAY))
        to = tk + timedelta(milliseconds=200)
        out.append((to, "axonflow-governance", governance_record(spec, CHECK_OUTPUT_PATH, to, tool),
                    to + DELAY))
    return out


def records(spec: Spec) -> list[tuple[datetime, str, dict[str, Any], datetime]]:
    """The upstream records of one interaction: (event time, format, record, received at)."""
    if spec.checks:
        return _governed_records(spec)
    t = spec.t0
    out = [(t, "axonflow-precheck", precheck_record(spec, t), t + DELAY)]
    if spec.audit:
        ta = t + timedelta(seconds=1)
        out.append((ta, "axonflow-llm-call", audit_record(spec, ta), ta + DELAY))
        if spec.trail:
            tt = ta + timedelta(milliseconds=300)
            out.append((tt, "axonflow-audit-entry", audit_trail_record(spec, tt), tt + DELAY))
    for k in range(spec.tools):
        tk = t + timedelta(seconds=2 + k)
        req, resp, whole = _tool_records(spec, k, tk)
        if spec.halves:
            out.append((tk, "obot-audit", req, tk + DELAY))
            out.append((tk + timedelta(milliseconds=80), "obot-audit", resp, tk + DELAY * 2))
        else:
            out.append((tk, "obot-audit", whole, tk + DELAY))
    if spec.filter_decision:
        tw = t + timedelta(seconds=2)
        k = spec.reject_tool or 0
        msg = tool_call_message(k + 1, f"tool_{k % 3}", {}, {"request_id": spec.request_id}) | {
            "_gateledger": {"decision": spec.filter_decision, "reason": "policy", "filter": "gl-filter"}}
        out.append((tw, "obot-webhook", msg, tw))
    return out


def housekeeping_record(tenant: str, n: int, at: datetime) -> dict[str, Any]:
    """Obot's whole record of a `tools/list` exchange: protocol housekeeping, never an interaction."""
    return {"subject": f"u-{tenant}", "metadata": {"mcpID": "ms-github"}, "sessionID": f"hk-{n}", "requestID": "0",
            "createdAt": _iso(at), "callType": "tools/list",
            "requestBody": {"jsonrpc": "2.0", "id": 0, "method": "tools/list"},
            "responseBody": {"jsonrpc": "2.0", "id": 0, "result": {"tools": []}}, "responseStatus": 200}


def interaction(spec: Spec) -> list[tuple[datetime, Published]]:
    """The events of one interaction with their event times (in event-time order)."""
    return [(t, envelope(fmt, rec, tenant=spec.tenant, received_at=rcv,
                         delivery_id=f"d-{spec.n}" if fmt == "obot-webhook" else None))
            for t, fmt, rec, rcv in records(spec)]


# What happens in mixed() interactions: the simulator decides (one tenant, AxonFlow only; every blocked
# pre-check's call runs anyway, as a bypass; some audits missing, some reporting zero tokens; some
# rejected tool calls running anyway).
MIXED = Mix(custom_gateway=0.0, obot_llm=0.0, verdicts=(92, 8, 0, 0), tool_calls=(0, 1, 2, 3), tool_rejections=0.03)
MIXED_FAULTS = Faults(bypass=1.0, missing_audits=0.04, zero_token_audits=0.03, filter_bypass=0.25)


def mixed(count: int, seed: int, start: datetime = T0, spacing_s: float = 0.5, first_n: int = 0) -> list[Spec]:
    """A deterministic mix of interactions (numbered from ``first_n``, ``spacing_s`` apart): what happens in
    each is the simulator's ground truth; the records are shaped here, as for any ``Spec``."""
    sim = simulate(count, seed=seed, start=start, tenants=1, rate=1 / spacing_s, faults=MIXED_FAULTS, mix=MIXED)
    specs = []
    for i, it in enumerate(sim.truth.interactions):
        llm, calls = it.llm, it.tool_calls
        rejected = next((k for k, c in enumerate(calls) if c.outcome == "rejected"), None)
        specs.append(Spec(
            n=first_n + i, t0=start + timedelta(seconds=i * spacing_s),
            blocked=it.blocked,
            audit=llm is not None and not it.audit_dropped,
            tools=len(calls),
            halves=calls[0].as_halves if calls else True,
            reject_tool=rejected,
            reject_ran=rejected is not None and calls[rejected].ran_anyway,
            zero_tokens=llm is not None and llm.prompt_tokens == llm.completion_tokens == 0,
            prompt_tokens=llm.prompt_tokens if llm else 1000,
            completion_tokens=llm.completion_tokens if llm else 200,
        ))
    return specs


def events_in_time_order(specs: list[Spec]) -> list[Published]:
    """All events of the specs, sorted by event time (ties by envelope id)."""
    evs = [e for s in specs for e in interaction(s)]
    evs.sort(key=lambda te: (te[0], te[1].envelope.id))
    return [p for _, p in evs]
