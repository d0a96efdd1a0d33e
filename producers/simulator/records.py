"""The upstream wire records, built from explicit values: the one place their shapes are spelled.

The traffic generator (``traffic.py``) draws the values and calls these; the processors' tests
(tests/stream_processors/traffic.py) call them with the exact values a scenario needs. Shapes follow
the upstreams: AxonFlow's exchanges as gateledger's tap records them (producers/axonflow/tap.py),
Obot's MCP audit records as its shim reports them (whole, or a request and a response half).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateledger.contracts.envelope import utc_iso

PRECHECK_PATH = "/api/policy/pre-check"
AUDIT_PATH = "/api/audit/llm-call"
DECIDE_PATH = "/api/v1/decide"
CHECK_INPUT_PATH = "/api/v1/mcp/check-input"
CHECK_OUTPUT_PATH = "/api/v1/mcp/check-output"


def axonflow_exchange(path: str, tenant: str, started: datetime, finished: datetime, request: dict[str, Any],
                      response: dict[str, Any], *, status: int = 200, traceparent: str | None = None) -> dict[str, Any]:
    """One AxonFlow exchange as the tap records it (``{path, status, times, request, response}``)."""
    rec: dict[str, Any] = {"path": path, "method": "POST", "status": status, "started_at": utc_iso(started),
                           "finished_at": utc_iso(finished), "tenant_header": tenant}
    if traceparent is not None:
        rec["traceparent"] = traceparent  # AxonFlow joins the stages of one tool call on it
    return rec | {"request": request, "response": response}


def precheck_request(user_token: str, client_id: str, query: str, context: dict[str, Any],
                     data_sources: list[str] | None = None) -> dict[str, Any]:
    """The body of ``POST /api/policy/pre-check`` (the SDK's PolicyApprovalRequest)."""
    req: dict[str, Any] = {"user_token": user_token, "client_id": client_id, "query": query}
    if data_sources is not None:
        req["data_sources"] = data_sources
    return req | {"context": context}


def precheck_response(context_id: str, approved: bool, policies: list[str], expires_at: datetime, *,
                      block_reason: str | None = None, requires_redaction: bool = False,
                      **extra: Any) -> dict[str, Any]:
    """AxonFlow's pre-check answer (HTTP 200: approved, blocked or held for approval)."""
    return {"context_id": context_id, "approved": approved, "requires_redaction": requires_redaction,
            "policies": policies, "expires_at": utc_iso(expires_at), "block_reason": block_reason, **extra}


def token_usage(prompt: int, completion: int) -> dict[str, int]:
    """An audit's ``token_usage`` as the SDK sends it."""
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def audit_request(context_id: str, client_id: str, provider: str, model: str, usage: dict[str, int],
                  latency_ms: int, metadata: dict[str, Any], response_summary: str | None = None) -> dict[str, Any]:
    """The body of ``POST /api/audit/llm-call`` (the SDK's audit_llm_call)."""
    req: dict[str, Any] = {"context_id": context_id, "client_id": client_id, "provider": provider, "model": model}
    if response_summary is not None:
        req["response_summary"] = response_summary
    return req | {"token_usage": usage, "latency_ms": latency_ms, "metadata": metadata}


def audit_response(audit_id: str) -> dict[str, Any]:
    """AxonFlow's answer to an audit."""
    return {"success": True, "audit_id": audit_id}


def governance_exchange(path: str, tenant: str, started: datetime, finished: datetime, traceparent: str, *,
                        tool: str, server: str, allowed: bool, decision_id: str, query: str = "search issues",
                        statement: str = "list open issues", block_reason: str = "SQL injection detected",
                        operation: str | None = None, policies_evaluated: int = 3) -> dict[str, Any]:
    """The tap's recording of AxonFlow's ``/api/v1/decide`` or MCP ``check-input`` / ``check-output``.

    Shapes from getaxonflow/axonflow platform/agent/mcp_handler.go (a check-input block is HTTP 403
    with ``allowed: false``) and the SDK's axonflow/types.py DecideRequest / DecideResponse; AxonFlow
    joins the stages of one tool call on the caller's ``traceparent``.
    """
    if path == DECIDE_PATH:
        request: dict[str, Any] = {"stage": "tool", "query": query,
                                   "target": {"type": "tool", "server": server, "tool": tool}}
        response: dict[str, Any] = {"verdict": "allow" if allowed else "deny", "decision_id": decision_id,
                                    "reasons": [] if allowed else ["tool not allowed"]}
    else:
        request = {"connector_type": server, "tool": tool, "statement": statement}
        if operation is not None:
            request["operation"] = operation
        response = {"allowed": allowed, "decision_id": decision_id, "policies_evaluated": policies_evaluated,
                    "block_reason": None if allowed else block_reason}
    return axonflow_exchange(path, tenant, started, finished, request, response, status=200 if allowed else 403,
                             traceparent=traceparent)


def audit_trail_row(trail_id: str, context_id: str, at: datetime, client_id: str, tenant: str, provider: str,
                    model: str, tokens: int, **extra: Any) -> dict[str, Any]:
    """A row of AxonFlow's own audit trail for an LLM call, as ``POST /api/v1/audit/search`` lists it
    (audit_logger.go columns; gateway rows carry the pre-check's context id as ``request_id``)."""
    return {"id": trail_id, "request_id": context_id, "timestamp": utc_iso(at), "client_id": client_id,
            "tenant_id": tenant, "request_type": "llm_chat", "policy_decision": "allowed", "provider": provider,
            "model": model, "tokens_used": tokens, **extra}


def tool_call_message(rpc_id: int, tool: str, arguments: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """An MCP ``tools/call`` request (JSON-RPC), as the client sends it and Obot shows its filters."""
    return {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta}}


def obot_call(common: dict[str, Any], request_part: dict[str, Any], response_part: dict[str, Any], at: datetime,
              done: datetime) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(request half, response half, whole record) of one MCP call as Obot's shim reports it.

    A response half has an empty ``callType`` and its own ``createdAt``; the whole record is the
    request's time with both parts (obot-platform/obot pkg/mcp audit log fields).
    """
    request = {**common, "createdAt": utc_iso(at), **request_part}
    response = {**common, "createdAt": utc_iso(done), "callType": "", **response_part}
    return request, response, {**common, "createdAt": utc_iso(at), **request_part, **response_part}


def obot_local_agent_tool_call(event_id: int, *, occurred: datetime, recorded: datetime, device_id: str,
                               credential: str, tool: str, kind: str, provider: str, success: bool,
                               duration_ms: int, session_id: str, hostname: str, os: str, user_email: str,
                               agent_version: str = "2.0.1", model: str = "claude-sonnet-4-5",
                               cwd: str = "/home/dev/src", tool_use_id: str | None = None, turn_id: str | None = None,
                               request: dict[str, Any] | None = None, response: dict[str, Any] | None = None,
                               ) -> dict[str, Any]:
    """A v0.24+ local-agent tool call as Obot's export (or detail endpoint) presents it
    (obot-platform/obot pkg/auditlog/presenter.go presentLocalAgent): the device's own time as
    ``occurredAt`` (client_reported), Obot's as ``recordedAt``."""
    return {
        "id": event_id,
        "eventType": "local_agent_tool_call",
        "timestamp": {"occurredAt": utc_iso(occurred), "recordedAt": utc_iso(recorded), "source": "client_reported"},
        "actor": {"actorType": "device", "id": device_id, "credentialID": credential},
        "action": {"operation": "tools/call", "name": tool, "kind": kind},
        "target": {"targetType": "local_tool", "name": tool},
        "outcome": {"status": "success" if success else "failure", "durationMs": duration_ms},
        "client": provider,
        "details": {
            "trace": {"sessionID": session_id, "idempotencyKey": f"idem-{event_id}",
                      "toolUseID": tool_use_id or f"toolu_{event_id}", "turnID": turn_id or f"t-{event_id}"},
            "network": {"clientIP": "10.1.2.9"},
            "agent": {"provider": provider, "version": agent_version, "model": model},
            "device": {"id": device_id, "hostname": hostname, "os": os},
            "environment": {"cwd": cwd, "gitBranch": "main", "reportedUserEmail": user_email},
            "request": {"body": request if request is not None else {"command": "ls"}, "mutated": False},
            "response": {"body": response if response is not None else {"stdout": "a b"}, "mutated": False},
            "payloadRedacted": False,
        },
    }
