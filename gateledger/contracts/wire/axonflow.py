"""AxonFlow Gateway Mode wire formats (snake_case). See shared/reference/wire-formats.md, section 5."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gateledger.contracts.wire.base import UtcTime, WireModel


class PreCheckRequest(WireModel):
    """``POST /api/policy/pre-check`` request body."""

    user_token: str | None = None
    client_id: str
    query: str
    data_sources: list[str] | None = None
    context: dict[str, Any] | None = None


class RateLimit(WireModel):
    limit: int | None = None
    remaining: int | None = None
    reset_at: UtcTime | None = None


class BudgetInfo(WireModel):
    budget_id: str | None = None
    budget_name: str | None = None
    used_usd: float | str | None = None
    limit_usd: float | str | None = None
    percentage: float | None = None
    exceeded: bool | None = None
    action: str | None = None


class PreCheckResponse(WireModel):
    """``POST /api/policy/pre-check`` response body."""

    context_id: str | None = None
    approved: bool | None = None
    requires_redaction: bool | None = None
    approved_data: Any = None
    policies: list[str] | None = None
    rate_limit: RateLimit | None = None
    budget_info: BudgetInfo | None = None
    expires_at: UtcTime | None = None
    block_reason: str | None = None
    trace_id: str | None = None


class TokenUsage(WireModel):
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    total_tokens: int | None = Field(default=None, ge=0)


class LlmCallAuditRequest(WireModel):
    """``POST /api/audit/llm-call`` request body."""

    context_id: str
    provider: str
    model: str
    client_id: str | None = None
    response_summary: str | None = None
    token_usage: TokenUsage | None = None
    latency_ms: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None


class LlmCallAuditResponse(WireModel):
    """``POST /api/audit/llm-call`` response body."""

    success: bool | None = None
    audit_id: str | None = None
    error: str | None = None


class AxonFlowExchange(WireModel):
    """What the AxonFlow tap records for one proxied call: request, response and HTTP facts.

    This is gateledger's own shape (AxonFlow has no such record); the request and response
    inside keep AxonFlow's exact field names.
    """

    path: str
    method: str = "POST"
    status: int
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    started_at: UtcTime
    finished_at: UtcTime
    tenant_header: str | None = None
