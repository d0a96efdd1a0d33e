"""Reading correlation keys out of upstream payloads (used by producers and processors alike)."""

from __future__ import annotations

import re
from typing import Any

# Keys under which callers propagate an application-level request id (MCP params._meta,
# tool arguments, AxonFlow pre-check context), in order of preference.
REQUEST_ID_KEYS = (
    "io.gateledger/requestId",
    "io.gateledger/request_id",
    "request_id",
    "requestId",
    "x-request-id",
    "X-Request-ID",
)
TRACEPARENT_KEYS = ("traceparent", "io.opentelemetry/traceparent")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def _first_str(mapping: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(mapping, dict):
        return None
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def trace_id_from_traceparent(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a W3C traceparent, or None when it is malformed or all zeros."""
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent.strip().lower())
    if not m or m.group(1) == "0" * 32:
        return None
    return m.group(1)


def mcp_message_keys(message: Any) -> tuple[str | None, str | None]:
    """(request_id, trace_id) carried by an MCP JSON-RPC message in ``params._meta`` or tool arguments."""
    if not isinstance(message, dict):
        return None, None
    params = message.get("params")
    if not isinstance(params, dict):
        return None, None
    meta = params.get("_meta")
    request_id = _first_str(meta, REQUEST_ID_KEYS) or _first_str(params.get("arguments"), REQUEST_ID_KEYS)
    trace_id = trace_id_from_traceparent(_first_str(meta, TRACEPARENT_KEYS))
    return request_id, trace_id


def context_keys(context: Any) -> tuple[str | None, str | None]:
    """(request_id, trace_id) from an AxonFlow pre-check ``context`` object."""
    return _first_str(context, REQUEST_ID_KEYS), trace_id_from_traceparent(_first_str(context, TRACEPARENT_KEYS))
