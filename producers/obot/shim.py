"""``POST /api/mcp-audit-logs``: Obot's shim audit endpoint, so a shim's ``--audit-log-send-url``
can point at gateledger directly, or at gateledger in front of the real Obot (tee mode).

Obot v0.15 to v0.23 only. The route appeared in v0.15.0 (obot-platform/obot
``pkg/api/router/router.go``; ``NANOBOT_RUN_AUDIT_LOG_SEND_URL`` set in ``pkg/mcp/docker.go`` /
``kubernetes.go``); v0.24.0 collapsed the shims into Obot (#7124): the variable is no longer set and
audit logs are collected inside Obot (``pkg/api/handlers/mcpgateway/proxy_audit.go``), so from
v0.24 this route receives nothing: use the audit API poller or exports (docs/ingest.md).

Compatible with Obot's handler: a JSON array of shim records with ``Authorization: Bearer
<audit token>``; 401 without a token or with an unknown one; 400 when the body is not an array of
records; records whose ``metadata`` says ``obot.mcp.ignoreAuditLog: "true"`` are skipped, as Obot
skips them; 200 when everything was taken. The shim retries a batch on any answer but 200.

Request and response halves are published as they come, each its own event keyed by MCP server,
session and JSON-RPC id; merging them is the processors' job.

Tee mode (``GATELEDGER_INGEST_OBOT_FORWARD_URL``): (1) the token is checked (known locally, else
by Obot: see ``obot_forward``), (2) the records are published and Kafka acknowledged, (3) the raw
batch is forwarded to Obot unchanged. 200 only when (2) and (3) both succeeded. Kafka is first so
a broker outage never makes Obot store a batch twice (the shim's retry would); an Obot failure
after (2) is answered with Obot's status, the shim retries, and the re-publish carries the same
event ids, so nothing is counted twice downstream.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateledger import jsonutil
from gateledger.topics import Format
from producers import telemetry
from producers.accept import RawRecord, accept
from producers.accept import IngestContext
from producers.ingest.common import (
    STATE,
    BodyTooLarge,
    Caller,
    IngestState,
    bearer_token,
    caller_for,
    lookup_token,
    open_caller,
    publish_or_503,
    read_body,
    reject_body,
    result_response,
    too_large,
    unauthorized,
)
from producers.obot.forward import ObotForwarder

SOURCE = "obot-shim"
FORMAT = Format.OBOT_AUDIT
ROUTE = "/api/mcp-audit-logs"  # Obot's own path, so a shim's send URL only changes host
IGNORE_KEY = "obot.mcp.ignoreAuditLog"  # Obot's own "do not persist" flag
FORWARDER = web.AppKey("obot_forwarder", ObotForwarder)


async def shim_caller(request: web.Request, state: IngestState, token: str | None) -> Caller:
    """The caller of a shim request: a known token, a token Obot accepts (tee), or open mode."""
    forwarder = request.app.get(FORWARDER)
    if token is None:
        if forwarder is None and not state.token_index:
            return open_caller(request, state)
        raise unauthorized("no token provided")
    grant = lookup_token(state, token)
    if grant is not None:
        return caller_for(state, grant, token, request)
    if forwarder is not None:
        if await forwarder.token_valid(token):
            return caller_for(state, None, token)
        raise unauthorized("invalid token")
    if not state.token_index:
        return open_caller(request, state, token)
    raise unauthorized("invalid token")


def _ignored(record: Any) -> bool:
    meta = record.get("metadata") if isinstance(record, dict) else None
    return isinstance(meta, dict) and meta.get(IGNORE_KEY) == "true"


async def submit_audit_logs(request: web.Request) -> web.Response:
    """Handle one shim batch (see the module docstring for the contract)."""
    state = request.app[STATE]
    token = bearer_token(request)
    caller = await shim_caller(request, state, token)
    try:
        body = await read_body(request)
    except BodyTooLarge as exc:
        raise await too_large(request, exc, SOURCE, caller.tenant) from None
    try:
        value = jsonutil.loads(body)
    except jsonutil.JSONDecodeError as exc:
        raise await reject_body(
            request, status=400, reason="invalid_json", message=f"failed to read input: invalid JSON: {exc}",
            raw=body, source=SOURCE, tenant=caller.tenant,
        ) from None
    if not isinstance(value, list):
        raise await reject_body(
            request, status=400, reason="schema",
            message=f"failed to read input: expected a JSON array of audit records, got {type(value).__name__}",
            raw=body, source=SOURCE, tenant=caller.tenant,
        )
    records = [RawRecord(i, value=v) for i, v in enumerate(value) if not _ignored(v)]
    ignored = len(value) - len(records)
    ctx = IngestContext(masker=state.masker, tenant=caller.tenant, install=caller.install)
    result = await publish_or_503(
        request, accept(state.publisher, FORMAT, records, ctx, origin=f"http:{ROUTE}", source=SOURCE)
    )
    if ignored:
        telemetry.IGNORED.labels(source=SOURCE).inc(ignored)
    forwarder = request.app.get(FORWARDER)
    if forwarder is not None and token is not None:
        await forwarder.forward(body, token)
    return result_response(result, ignored=ignored)


# What /healthz says about this route.
HEALTH = {"route": f"POST {ROUTE}", "obot_versions": "v0.15-v0.23",
          "note": "Obot v0.24+ has no shim audit sender; poll GET /api/mcp-audit-logs instead"}


def add_routes(app: web.Application) -> None:
    """Register the shim endpoint."""
    app.router.add_post(ROUTE, submit_audit_logs)
