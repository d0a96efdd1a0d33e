"""MCP JSON-RPC messages as an Obot webhook filter receives them.

Rules from the MCP schema, modelcontextprotocol/modelcontextprotocol ``schema/2025-11-25/schema.ts``
(the same in 2025-06-18): ``JSONRPC_VERSION = "2.0"``; ``RequestId = string | number``;
``JSONRPCRequest`` / ``JSONRPCNotification`` carry a ``method`` and optional ``params`` (with an
optional ``_meta`` object, ``RequestParams``); ``JSONRPCResultResponse`` a ``result``;
``JSONRPCErrorResponse`` an ``error`` (``Error``: ``code: number``, ``message: string``, optional
``data``). ``_meta`` keys: ``docs/specification/2025-11-25/basic/index.mdx`` ("General fields: _meta").
Lenient on purpose (an audit records what was sent): a result without an ``id`` is accepted, and an
error's ``message`` may be missing.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from gateledger.contracts.wire.base import IdStr, WireModel


class JsonRpcError(WireModel):
    """schema.ts ``Error`` (``code`` required there); Obot's Go structs write it ``omitempty``
    (nanobot-ai/nanobot pkg/mcp/message.go), so an error may come without a code."""

    code: int | None = None
    message: str = ""
    data: Any = None


class JsonRpcMessage(WireModel):
    """A JSON-RPC 2.0 request, result or error (the raw body Obot POSTs to a webhook filter)."""

    jsonrpc: str
    id: IdStr | None = None
    method: str | None = None
    params: dict[str, Any] | None = None
    result: Any = None
    error: JsonRpcError | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> JsonRpcMessage:
        if self.jsonrpc != "2.0":  # schema.ts: jsonrpc: typeof JSONRPC_VERSION ("2.0")
            raise ValueError("jsonrpc must be '2.0'")
        # schema.ts: a message is a request / notification (method), a result response or an error response.
        if self.method is None and "result" not in self.model_fields_set and self.error is None:
            raise ValueError("a JSON-RPC message needs a method, a result or an error")
        return self

    def is_response(self) -> bool:
        """A result or an error: Obot's response hook deliveries also carry the request's ``method``."""
        return "result" in self.model_fields_set or self.error is not None

    def meta(self) -> dict[str, Any]:
        """``params._meta`` (protocol version, client info, trace context), or {}."""
        meta = (self.params or {}).get("_meta")
        return meta if isinstance(meta, dict) else {}


# Protocol housekeeping, not a user's request (schema.ts: lifecycle, listing, ping, logging; every
# ``notifications/*`` too): recorded as MCP calls, never part of an interaction. The processors
# decide with it and the embedded stack's re-drive (which must not re-send what was fully handled)
# reads it, so it is spelled here once.
HOUSEKEEPING_METHODS = frozenset({
    "initialize", "ping", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "roots/list",
    "logging/setLevel",
})
HOUSEKEEPING_PREFIX = "notifications/"
