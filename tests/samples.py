"""One realistic upstream record per wire format, with fixed values the test modules rely on.

Fixtures, not traffic (that is producers/simulator): the AxonFlow exchanges, the JSON-RPC message and
the local-agent export are shaped by the simulator's record builders (producers/simulator/records.py);
the other Obot records and the CloudEvent are spelled here (v0.23 flat records and v0.24 audit events
are formats the simulator does not produce).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateledger.masking import Masker
from producers.accept import IngestContext
from producers.simulator.records import (
    AUDIT_PATH,
    CHECK_INPUT_PATH,
    PRECHECK_PATH,
    audit_request,
    audit_response,
    audit_trail_row,
    axonflow_exchange,
    governance_exchange,
    obot_local_agent_tool_call,
    precheck_request,
    precheck_response,
    token_usage,
    tool_call_message,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
PRECHECK_AT = datetime(2026, 11, 20, 10, 14, 57, tzinfo=UTC)
AUDIT_AT = datetime(2026, 11, 20, 10, 14, 59, tzinfo=UTC)
RECEIVED_AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def ctx(**kw: Any) -> IngestContext:
    """The context the format tests put a sample through: a fixed salt, received at ``RECEIVED_AT``."""
    kw.setdefault("received_at", RECEIVED_AT)
    return IngestContext(masker=Masker(salt=b"s"), **kw)


def obot_flat(**over: Any) -> dict[str, Any]:
    """A v0.23-style flat MCP audit record (whole exchange) as Obot's list API returned it."""
    rec = {
        "id": 1042,
        "createdAt": "2026-11-20T10:15:00.123Z",
        "userID": "user-7",
        "apiKey": "ok1-abc…",
        "mcpID": "ms1abc",
        "mcpServerDisplayName": "GitHub",
        "mcpServerCatalogEntryName": "github",
        "client": {"name": "Cursor", "version": "1.7.2"},
        "clientIP": "10.1.2.3",
        "callType": "tools/call",
        "callIdentifier": "search_issues",
        "requestMutated": False,
        "responseMutated": False,
        "responseReceived": True,
        "encrypted": False,
        "requestBody": {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {
                "name": "search_issues",
                "arguments": {"q": "bug"},
                "_meta": {"request_id": "req-1", "traceparent": TRACEPARENT},
            },
        },
        "responseBody": {"jsonrpc": "2.0", "id": 7, "result": {"content": [], "isError": False}},
        "responseStatus": 200,
        "error": "",
        "processingTimeMs": 87,
        "sessionID": "sess-1",
        "requestID": "7",
        "userAgent": "Cursor/1.7.2",
        "requestHeaders": {"Authorization": "[REDACTED]", "Accept": "application/json"},
        "responseHeaders": {"Content-Type": "application/json"},
        "webhookStatuses": [{"type": "request", "method": "tools/call", "name": "dlp", "tool": "search_issues",
                             "status": "ok", "message": ""}],
        "someFutureField": {"kept": True},
    }
    rec.update(over)
    return rec


def obot_shim(**over: Any) -> dict[str, Any]:
    """What the shim POSTs to /api/mcp-audit-logs: user in subject, server identity in metadata."""
    rec = obot_flat()
    for k in ("id", "userID", "mcpID", "mcpServerDisplayName", "mcpServerCatalogEntryName", "client"):
        rec.pop(k)
    rec.update(
        subject="user-7",
        metadata={"mcpID": "ms1abc", "mcpServerDisplayName": "GitHub", "mcpServerCatalogEntryName": "github",
                  "userID": "user-7"},
        clientName="Cursor",
        clientVersion="1.7.2",
    )
    rec.update(over)
    return rec


def obot_audit_event(**over: Any) -> dict[str, Any]:
    """A v0.24+ AuditLogEvent as the detail endpoint / JSONL export returns it."""
    rec = {
        "id": "1042",
        "eventType": "mcp_call",
        "timestamp": {"occurredAt": "2026-11-20T10:15:00.123Z", "recordedAt": "2026-11-20T10:15:00.300Z",
                      "source": "server"},
        "actor": {"actorType": "user", "id": "user-7", "credentialID": "cred-1"},
        "action": {"operation": "tools/call", "name": "search_issues", "kind": "tool"},
        "target": {"targetType": "mcp_tool", "id": "search_issues", "name": "search_issues",
                   "parent": {"targetType": "mcp_server", "id": "ms1abc", "name": "GitHub"}},
        "outcome": {"status": "success", "httpStatus": 200, "durationMs": 87},
        "details": {
            "trace": {"sessionID": "sess-1", "requestID": "7"},
            "network": {"clientIP": "10.1.2.3"},
            "client": {"name": "Cursor", "version": "1.7.2", "userAgent": "Cursor/1.7.2"},
            "agent": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            "scope": {"mcpServerCatalogEntryName": "github"},
            "request": {"headers": {"Authorization": "[REDACTED]"},
                        "body": obot_flat()["requestBody"]},
            "response": {"body": obot_flat()["responseBody"]},
            "webhookStatuses": [],
        },
    }
    rec.update(over)
    return rec


def obot_local_agent_event(**over: Any) -> dict[str, Any]:
    """A v0.24+ local-agent tool call as an export line or the detail endpoint returns it (the shape is
    the simulator's, producers/simulator/records.py)."""
    rec = obot_local_agent_tool_call(
        2042, occurred=datetime(2026, 11, 20, 10, 13, 59, 500000, tzinfo=UTC),
        recorded=datetime(2026, 11, 20, 10, 15, 2, tzinfo=UTC), device_id="dev-42", credential="ci key (ok_****3)",
        tool="Bash", kind="shell", provider="claude_code", success=True, duration_ms=310, session_id="cc-sess-1",
        hostname="alice-mbp", os="darwin", user_email="alice@example.com", cwd="/home/alice/src",
        tool_use_id="toolu_01", turn_id="t-3",
    )
    rec.update(over)
    return rec


def obot_llm(**over: Any) -> dict[str, Any]:
    """An Obot LLM gateway audit log record."""
    rec = {
        "id": "llm-9001",
        "createdAt": "2026-11-20T10:14:58Z",
        "duration": 1430,
        "userID": "user-7",
        "apiKeyID": "key-3",
        "apiKeyName": "cursor-key",
        "modelProvider": "openai",
        "modelID": "gpt-4o",
        "targetModel": "gpt-4o-2024-08-06",
        "requestPath": "/v1/chat/completions",
        "requestMethod": "POST",
        "requestHeaders": {"Authorization": "Bearer sk-proj-abcdefghijklmnopqrstuvwxyz012345"},
        "requestBody": {"model": "gpt-4o", "messages": [{"role": "user", "content": "mail me at a.b@example.com"}]},
        "responseStatus": 200,
        "outcome": "success",
        "inputTokens": 1200,
        "outputTokens": 300,
        "requestID": "req-1",
        "clientSessionID": "sess-1",
        "clientIP": "10.1.2.3",
    }
    rec.update(over)
    return rec


def webhook_message(**over: Any) -> dict[str, Any]:
    """The JSON-RPC message Obot POSTs to an HTTP webhook filter."""
    rec = tool_call_message(7, "search_issues", {"q": "bug"}, {"request_id": "req-1", "traceparent": TRACEPARENT})
    rec.update(over)
    return rec


def precheck(**over: Any) -> dict[str, Any]:
    """An AxonFlow pre-check exchange as the tap records it."""
    rec = axonflow_exchange(
        PRECHECK_PATH, "acme", PRECHECK_AT, PRECHECK_AT + timedelta(milliseconds=20),
        precheck_request("utok-secret-value-123", "support-bot", "What is the status of ticket 42?",
                         {"request_id": "req-1", "traceparent": TRACEPARENT, "tenant_id": "acme"},
                         data_sources=["jira"]),
        precheck_response("ctx-1", True, ["pii_detection"], PRECHECK_AT + timedelta(minutes=5), trace_id="axf-trace-1"))
    rec.update(over)
    return rec


def llm_audit(**over: Any) -> dict[str, Any]:
    """An AxonFlow LLM-call audit exchange."""
    rec = axonflow_exchange(
        AUDIT_PATH, "acme", AUDIT_AT, AUDIT_AT + timedelta(milliseconds=10),
        audit_request("ctx-1", "support-bot", "openai", "gpt-4o", token_usage(1200, 300), 1430, {},
                      response_summary="Ticket 42 is open"),
        audit_response("aud-1"))
    rec.update(over)
    return rec


def mcp_check_input(**over: Any) -> dict[str, Any]:
    """An AxonFlow MCP check-input exchange (a block: 403, allowed false) as the tap records it."""
    at = PRECHECK_AT + timedelta(seconds=1)
    rec = governance_exchange(CHECK_INPUT_PATH, "acme", at, at + timedelta(milliseconds=4), TRACEPARENT,
                              tool="delete_repo", server="github", allowed=False, decision_id="dec-1",
                              statement="DROP TABLE repos", block_reason="SQL injection detected",
                              operation="execute", policies_evaluated=12)
    rec.update(over)
    return rec


def axonflow_audit_entry(**over: Any) -> dict[str, Any]:
    """A row of AxonFlow's audit trail as POST /api/v1/audit/search lists it (audit_logger.go columns)."""
    rec = audit_trail_row("aud-1", "ctx-1", AUDIT_AT + timedelta(milliseconds=200), "support-bot", "acme", "openai",
                          "gpt-4o", 1500, user_id=7, user_email="alice@example.com", response_time_ms=1430,
                          cost=0.0075)
    rec.update(over)
    return rec


def cloudevent(**over: Any) -> dict[str, Any]:
    """A CloudEvent from a custom gateway."""
    rec = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "acme/gateway",
        "type": "gateledger.llm.call",
        "time": "2026-11-20T10:15:00Z",
        "tenant": "acme",
        "requestid": "req-1",
        "data": {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5},
    }
    rec.update(over)
    return rec


ALL_FORMATS: dict[str, Any] = {
    "obot-audit": obot_flat,
    "obot-audit-event": obot_audit_event,
    "obot-llm": obot_llm,
    "obot-export": obot_local_agent_event,
    "obot-webhook": webhook_message,
    "axonflow-precheck": precheck,
    "axonflow-llm-call": llm_audit,
    "axonflow-governance": mcp_check_input,
    "axonflow-audit-entry": axonflow_audit_entry,
    "cloudevents": cloudevent,
}
