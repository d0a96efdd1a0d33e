"""Statuses from upstream facts, exactly as wire-formats.md says."""

from __future__ import annotations

from gateledger.contracts.events import LlmCallStatus, McpCallStatus

_MCP_STATUSES = {s.value for s in McpCallStatus}


def mcp_status(http_status: int | None, error: str | None, webhook_rejected: bool = False) -> McpCallStatus:
    """MCP outcome (wire-formats.md section 2).

    401/403 -> denied; 408/504 -> timeout; an error or >= 400 -> failure; other > 0 -> success;
    none -> unknown. A call rejected by a webhook filter is a failure (as Obot reports it).
    """
    if webhook_rejected:
        return McpCallStatus.FAILURE
    if http_status in (401, 403):
        return McpCallStatus.DENIED
    if http_status in (408, 504):
        return McpCallStatus.TIMEOUT
    if error or (http_status is not None and http_status >= 400):
        return McpCallStatus.FAILURE
    if http_status is not None and http_status > 0:
        return McpCallStatus.SUCCESS
    return McpCallStatus.UNKNOWN


def obot_outcome(status: str | None) -> McpCallStatus | None:
    """Obot's own AuditLogEvent ``outcome.status``, when it is one we know."""
    if status and status.lower() in _MCP_STATUSES:
        return McpCallStatus(status.lower())
    return None


def llm_status(outcome: str | None, http_status: int | None, error: str | None) -> LlmCallStatus:
    """LLM call status from an upstream outcome word, else from the HTTP status and error text."""
    word = (outcome or "").lower()
    if word in ("success", "succeeded", "ok"):
        return LlmCallStatus.SUCCESS
    if word in ("canceled", "cancelled"):
        return LlmCallStatus.CANCELED
    if word in ("error", "failure", "failed"):
        return LlmCallStatus.ERROR
    if error or (http_status is not None and http_status >= 400):
        return LlmCallStatus.ERROR
    return LlmCallStatus.SUCCESS
