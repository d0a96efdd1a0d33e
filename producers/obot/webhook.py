"""The Obot webhook filter: ``POST /v1/obot/webhook`` (and ``/v1/obot/webhook/{name}[/{scope...}]``).

How current Obot calls a filter (obot-platform/mcp-images ``http-webhook-mcp-converter/server.js``,
the default since about v0.15; facts checked in docs/ingest.md): the body is the raw JSON-RPC
message (``{jsonrpc, id, method, params, result, error}``), signed with ``X-Obot-Signature-256`` =
the **bare hex** HMAC-SHA256 of the body with the filter's secret (the in-gateway code up to v0.14
sent ``sha256=<hex>``; both are accepted). Only ``Content-Type`` and the signature are sent:
``X-Obot-Mcp-Server-Id`` / ``X-Obot-User-Id`` are gone, so the enforcement scope comes from the
filter URL's path (``/v1/obot/webhook/<name>/server/<mcp server id>/user/<user id>``, either part
optional; one filter URL per server or team), or from those headers when an older Obot sends them.
Any 2xx accepts and the body of a 2xx is not read; on anything else the MCP client sees
``Webhook returned error: <status> <body>``. A response delivery carries its request's ``method``
(obot-platform/obot ``pkg/api/handlers/mcpgateway/proxy_hooks.go``): it is recognised by its
``result`` / ``error``, labelled ``phase: response`` and never budget-blocked.

Per delivery: verify the signature (401 if missing or wrong, compared in constant time), validate
the message (400 + dead letter if invalid), ask the decision policy, publish the message with the
decision under ``data._gateledger`` and wait for Kafka's acknowledgement, then answer 200 (accept)
or the policy's status (reject). If Kafka does not acknowledge, the answer is 503: the filter
fails closed, because a call gateledger cannot record is a call it cannot account for.

Extension point: ``DecisionPolicy``. The default accepts everything. The budget stage plugs in a
policy that rejects calls whose budget is exhausted, by passing ``decision_policy=`` to
``build_app`` (or by installing one under ``POLICY`` on the application). A policy that raises
rejects the call (fail closed) and the error is recorded as the reason.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from gateledger import jsonutil
from gateledger.clock import utcnow
from gateledger.contracts.wire import JsonRpcMessage
from gateledger.topics import Format
from producers import telemetry
from producers.accept import IngestContext
from producers.ingest.common import (
    STATE,
    TENANT_HINT,
    BodyTooLarge,
    HttpError,
    publish_or_503,
    read_body,
    reject_body,
    too_large,
    verify_hmac_sha256,
)
from producers.accept import get_format
from producers.obot.replay import ReplayWindow, Seen

log = logging.getLogger(__name__)

SOURCE = "obot-webhook"
FORMAT = Format.OBOT_WEBHOOK
ROUTE = "/v1/obot/webhook"
SIGNATURE_HEADER = "X-Obot-Signature-256"
# Callers (the simulator, replays) may name a delivery so a re-sent delivery keeps its event id.
DELIVERY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class WebhookDelivery:
    """One message Obot asked the filter about."""

    message: dict[str, Any]
    filter_name: str
    tenant: str
    install: str
    mcp_server_id: str | None
    user_id: str | None
    signed: bool
    phase: str = "request"  # or "response": a result / error (it carries the request's method too)


@dataclass(frozen=True)
class Decision:
    """A filter verdict. ``status`` is what Obot receives: any 2xx accepts, anything else rejects."""

    accept: bool
    reason: str | None = None
    policy: str = "default"
    status: int = 200
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def reject(cls, reason: str, policy: str, status: int = 403, **details: Any) -> Decision:
        """A rejecting verdict."""
        return cls(False, reason, policy, status, details)


class DecisionPolicy(Protocol):
    """Decides whether a delivery is accepted. Must be fast: Obot waits for the answer."""

    name: str

    async def decide(self, delivery: WebhookDelivery) -> Decision:
        """The verdict for one delivery."""
        ...


class AcceptAll:
    """The default policy: gateledger only records; it never blocks."""

    name = "accept-all"

    async def decide(self, delivery: WebhookDelivery) -> Decision:
        """Accept."""
        return Decision(True, policy=self.name)


POLICY = web.AppKey("webhook_policy", DecisionPolicy)
REPLAYS = web.AppKey("webhook_replays", ReplayWindow)


async def _decide(policy: DecisionPolicy, delivery: WebhookDelivery) -> Decision:
    try:
        decision = await policy.decide(delivery)
    except Exception as exc:  # a broken policy must not let calls through unrecorded
        log.exception("webhook decision policy %s failed", getattr(policy, "name", policy))
        return Decision.reject(f"decision policy failed: {exc.__class__.__name__}", getattr(policy, "name", "?"), 500)
    if decision.accept and not 200 <= decision.status < 300:
        # Obot accepts on any 2xx (server.js: response.ok); anything else would turn an accept into a block.
        decision = Decision(True, decision.reason, decision.policy, 200, decision.details)
    elif not decision.accept and 200 <= decision.status < 300:
        decision = Decision(False, decision.reason, decision.policy, 403, decision.details)
    return decision


SCOPE_KEYS = {"server": "mcp_server_id", "user": "user_id"}


def path_scope(tail: str) -> dict[str, str]:
    """``server/<id>/user/<id>`` from a filter URL's path (HTTP 404 for anything else)."""
    parts = [p for p in tail.split("/") if p]
    if len(parts) % 2 or any(k not in SCOPE_KEYS for k in parts[::2]) or len(set(parts[::2])) != len(parts) // 2:
        raise HttpError(404, f"a filter scope is server/<id> and/or user/<id>, not {tail!r}", reason="not_found")
    return {SCOPE_KEYS[k]: v for k, v in zip(parts[::2], parts[1::2], strict=True)}


async def handle_delivery(request: web.Request) -> web.Response:
    """One webhook-filter delivery (see the module docstring)."""
    state = request.app[STATE]
    settings = state.settings
    name = request.match_info.get("name", "default")
    scope = path_scope(request.match_info.get("scope", ""))
    if name == "default":
        secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
        tenant, install = settings.default_tenant, settings.install
        if secret is None:
            # Unsigned (loopback) filter: the caller may name the tenant, as on the other open endpoints.
            tenant = request.headers.get(TENANT_HINT, "").strip() or tenant
    else:
        target = settings.webhook_filters.get(name)
        if target is None:
            raise HttpError(404, f"no webhook filter named {name!r}", reason="not_found")
        secret = target.secret.get_secret_value().encode()
        tenant, install = target.tenant, target.install or settings.install
    try:
        body = await read_body(request)
    except BodyTooLarge as exc:
        if secret is not None:
            # Its signature cannot be checked without reading it all: refused unread, and not
            # dead-lettered (the dead-letter topic must not be writable by unauthenticated callers).
            telemetry.REJECTED.labels(source=SOURCE, reason="too_large").inc()
            raise HttpError(413, f"request body exceeds {settings.max_body_bytes} bytes", reason="too_large") from None
        raise await too_large(request, exc, SOURCE, tenant) from None
    if secret is not None and not verify_hmac_sha256(secret, body, request.headers.get(SIGNATURE_HEADER)):
        telemetry.REJECTED.labels(source=SOURCE, reason="bad_signature").inc()
        raise HttpError(401, f"missing or invalid {SIGNATURE_HEADER}", reason="bad_signature")
    replays = request.app[REPLAYS]
    replay_key = ReplayWindow.key(request.path, body) if secret is not None and not request.headers.get(DELIVERY_HEADER) \
        else None
    if replay_key is not None and (seen := replays.get(replay_key)) is not None:
        # The same signed bytes again within the window: the first verdict, nothing recorded twice.
        telemetry.WEBHOOK_REPLAYS.labels(filter=name).inc()
        return web.json_response({**seen.payload, "replay": True}, status=seen.status)
    try:
        message = jsonutil.loads(body)
    except jsonutil.JSONDecodeError as exc:
        raise await reject_body(request, status=400, reason="invalid_json", message=f"invalid JSON: {exc}",
                                raw=body, source=SOURCE, tenant=tenant) from None
    delivery = WebhookDelivery(
        message=message,
        filter_name=name,
        tenant=tenant,
        install=install,
        mcp_server_id=scope.get("mcp_server_id") or request.headers.get("X-Obot-Mcp-Server-Id") or None,
        user_id=scope.get("user_id") or request.headers.get("X-Obot-User-Id") or None,
        signed=secret is not None,
        phase="response" if isinstance(message, dict) and {"result", "error"} & message.keys() else "request",
    )
    ctx = IngestContext(
        masker=state.masker,
        tenant=tenant,
        install=install,
        received_at=utcnow(),
        delivery_id=request.headers.get(DELIVERY_HEADER)
        or (replays.delivery_id(replay_key) if replay_key is not None else uuid.uuid4().hex),
        subject=delivery.user_id,
    )
    if not isinstance(message, dict):
        raise await reject_body(request, status=400, reason="schema",
                                message=f"expected a JSON-RPC message object, got {type(message).__name__}",
                                raw=body, source=SOURCE, tenant=tenant)
    try:
        JsonRpcMessage.model_validate(message)  # validate before asking the policy about it
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5])
        raise await reject_body(request, status=400, reason="schema", message=f"not a valid JSON-RPC message: {errs}",
                                raw=body, source=SOURCE, tenant=tenant) from None
    decision = await _decide(request.app[POLICY], delivery)
    ctx.annotations = {
        "filter": name,
        "decision": "accepted" if decision.accept else "rejected",
        "status": decision.status,
        "reason": decision.reason,
        "policy": decision.policy,
        "phase": delivery.phase,
        "signature_check": "verified" if delivery.signed else "unsigned",
        "mcp_server_id": delivery.mcp_server_id,
        "user_id": delivery.user_id,
        **({"details": decision.details} if decision.details else {}),
    }
    published = get_format(FORMAT)(message, ctx)
    await publish_or_503(request, state.publisher.publish([published], source=SOURCE))
    telemetry.WEBHOOK_DECISIONS.labels(filter=name, decision=ctx.annotations["decision"]).inc()
    payload = {k: v for k, v in asdict(decision).items() if k != "details" and v is not None}
    if replay_key is not None:
        replays.remember(replay_key, Seen(decision.status, payload, ctx.delivery_id or ""))
    return web.json_response(payload, status=decision.status)


def add_routes(app: web.Application, policy: DecisionPolicy | None = None) -> None:
    """Register the filter endpoints with a decision policy (default: accept everything)."""
    app[POLICY] = policy or AcceptAll()
    app[REPLAYS] = ReplayWindow(app[STATE].settings.webhook_replay_window_s)
    app.router.add_post(ROUTE, handle_delivery)
    app.router.add_post(ROUTE + "/{name}", handle_delivery)
    app.router.add_post(ROUTE + "/{name}/{scope:.+}", handle_delivery)
