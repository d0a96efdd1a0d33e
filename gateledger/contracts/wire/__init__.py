"""Upstream wire formats, exactly as the upstream systems send them."""

from gateledger.contracts.wire.axonflow import (
    AuditLogEntry,
    AxonFlowExchange,
    BudgetInfo,
    DecideRequest,
    DecideResponse,
    LlmCallAuditRequest,
    LlmCallAuditResponse,
    McpCheckRequest,
    McpCheckResponse,
    PreCheckRequest,
    PreCheckResponse,
    RateLimit,
    TokenUsage,
)
from gateledger.contracts.wire.base import WireModel
from gateledger.contracts.wire.cloudevents import CloudEvent
from gateledger.contracts.wire.mcp import JsonRpcError, JsonRpcMessage
from gateledger.contracts.wire.obot import (
    ObotAuditListPage,
    ObotAuditLogEvent,
    ObotLlmAuditLog,
    ObotMcpAuditRecord,
    ObotShimAuditRecord,
    ObotWebhookStatus,
)

__all__ = [
    "AuditLogEntry",
    "AxonFlowExchange",
    "BudgetInfo",
    "DecideRequest",
    "DecideResponse",
    "McpCheckRequest",
    "McpCheckResponse",
    "CloudEvent",
    "JsonRpcError",
    "JsonRpcMessage",
    "LlmCallAuditRequest",
    "LlmCallAuditResponse",
    "ObotAuditListPage",
    "ObotAuditLogEvent",
    "ObotLlmAuditLog",
    "ObotMcpAuditRecord",
    "ObotShimAuditRecord",
    "ObotWebhookStatus",
    "PreCheckRequest",
    "PreCheckResponse",
    "RateLimit",
    "TokenUsage",
    "WireModel",
]
