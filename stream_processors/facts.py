"""Facts: what the normalize stage tells the correlate stage about one output row.

A fact is a small JSON object on the internal facts topic, keyed by its interaction's **root key**,
so every fact of one interaction lands in one partition. It carries only what an interaction
needs. ``key`` is the output row id (unique within an interaction); a newer ``v`` (the row's
version) replaces an older one, so re-emissions never count twice.

Root key: the tenant plus the strongest correlation key the event carries, in this order:
request id, W3C trace id, AxonFlow context id, the Obot exchange (server + session + JSON-RPC id),
the event itself. AxonFlow audits take their pre-check's root (joined on context_id upstream).
"""

from __future__ import annotations

from typing import Any

from gateledger.contracts.events import LlmCall, McpCall, McpCallStatus, PolicyDecision, WebhookDecision
from gateledger.ids import stable_id
from stream_processors.common.timeutil import to_us

Fact = dict[str, Any]
FACTS = "facts"  # logical name of the internal facts topic in the normalize stage's emitted batches


def root_key(tenant: str, *, request_id: str | None = None, trace_id: str | None = None,
             context_id: str | None = None, exchange: str | None = None, fallback: str | None = None) -> str:
    """The interaction root key for an event's correlation keys."""
    if request_id:
        return f"{tenant}|r:{request_id}"
    if trace_id:
        return f"{tenant}|t:{trace_id}"
    if context_id:
        return f"{tenant}|c:{context_id}"
    if exchange:
        return f"{tenant}|x:{exchange}"
    return f"{tenant}|e:{fallback}"


def interaction_id(root: str) -> str:
    """Deterministic interaction id: a function of the root key only (tenant is part of it)."""
    return stable_id("interaction", root)


def _base(kind: str, row: Any, root: str, received_us: int) -> Fact:
    return {
        "kind": kind,
        "key": row.id,
        "v": row.version,
        "ids": list(row.event_ids),
        "tenant": row.tenant,
        "root": root,
        "t": to_us(row.time),
        "te": to_us(row.time),
        "rcv": received_us,
        # The source (upstream system + kind) whose event time this fact advances.
        "src": f"{row.source}|{kind}",
    }


def gone_fact(key: str, version: int, tenant: str, root: str, t_us: int, received_us: int) -> Fact:
    """Tombstone of a row that moved to another interaction: replaces the row's fact under ``root``."""
    return {"kind": "gone", "key": key, "v": version, "ids": [], "tenant": tenant, "root": root, "t": t_us,
            "te": t_us, "rcv": received_us}


def policy_fact(row: PolicyDecision, root: str, received_us: int) -> Fact:
    """Fact of an AxonFlow pre-check."""
    f = _base("policy", row, root, received_us)
    f.update(req=row.request_id, trace=row.trace_id, ctx=row.context_id, user=row.user_id, client=row.client_id,
             ok=row.approved, br=row.block_reason, pol=row.policies)
    return f


def gate_fact(row: PolicyDecision, root: str, received_us: int) -> Fact:
    """Fact of an AxonFlow /decide or MCP check verdict (kind "gate": never counted as a pre-check)."""
    f = _base("gate", row, root, received_us)
    f.update(req=row.request_id, trace=row.trace_id, user=row.user_id, client=row.client_id, ok=row.approved,
             br=row.block_reason, gate=row.gate, tool=row.tool_name,
             server=row.mcp_servers[0] if row.mcp_servers else None)
    return f


def llm_fact(row: LlmCall, root: str, received_us: int) -> Fact:
    """Fact of an LLM call."""
    f = _base("llm", row, root, received_us)
    if row.latency_ms:
        f["te"] = f["t"] + row.latency_ms * 1000
    f.update(req=row.request_id, trace=row.trace_id, ctx=row.context_id, sess=row.session_id, user=row.user_id,
             client=row.client_id, model=row.model, st=str(row.status), err=row.status != "success",
             tin=row.input_tokens, tout=row.output_tokens, ttot=row.total_tokens)
    return f


def mcp_fact(row: McpCall, root: str, received_us: int) -> Fact:
    """Fact of an MCP call (merged, whole, or closed incomplete by timeout)."""
    f = _base("mcp", row, root, received_us)
    if row.duration_ms:
        f["te"] = f["t"] + row.duration_ms * 1000
    rejected = sum(1 for w in row.webhook_statuses if (w.status or "").lower() == "rejected")
    # Filters that ran on the call and let it through / rejected it (names; "" when unnamed).
    passed = sorted({w.name or "" for w in row.webhook_statuses if (w.status or "").lower() != "rejected"})
    rejecting = sorted({w.name or "" for w in row.webhook_statuses if (w.status or "").lower() == "rejected"})
    f.update(req=row.request_id, trace=row.trace_id, ctx=row.context_id, sess=row.session_id, user=row.user_id,
             client=row.client_name, method=row.method, tool=row.tool_name,
             server=row.mcp_server_name or row.mcp_server_id, sid=row.mcp_server_id, rpc=row.jsonrpc_id,
             st=str(row.status), complete=row.complete, wrej=rejected, wf=passed, wrf=rejecting,
             # The server answered 2xx without error: it ran, even if a filter had rejected it.
             ran=row.http_status is not None and 200 <= row.http_status < 300 and not row.error,
             # "Executed": the server ran it (a success reached the client).
             exe=row.status == McpCallStatus.SUCCESS,
             err=row.status in (McpCallStatus.FAILURE, McpCallStatus.TIMEOUT) and not row.webhook_rejected)
    return f


def webhook_fact(row: WebhookDecision, root: str, received_us: int) -> Fact:
    """Fact of a webhook-filter decision made by gateledger's own filter."""
    f = _base("webhook", row, root, received_us)
    f.update(req=row.request_id, trace=row.trace_id, sess=row.session_id, user=row.user_id,
             dec=str(row.decision), tool=row.tool_name, sid=row.mcp_server_id, rpc=row.jsonrpc_id,
             phase=row.phase, wrf=[row.filter_name or ""])
    return f
