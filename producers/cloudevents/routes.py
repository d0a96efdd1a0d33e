"""``POST /v1/cloudevents``: CloudEvents 1.0 over HTTP from custom gateways.

Modes (by Content-Type, as the CloudEvents HTTP binding defines them):
- structured, ``application/cloudevents+json``: the body is one event;
- batch, ``application/cloudevents-batch+json``: the body is a JSON array of events;
- binary: attributes in ``ce-*`` headers, the body is the event's ``data`` (JSON when the content
  type is JSON, text for ``text/*``, otherwise carried as ``data_base64``);
- plain ``application/json`` (a lenient extra): one event object or an array of them.

gateledger reads these extension attributes: ``tenant``, ``requestid``, ``contextid``,
``sessionid``, ``traceparent``. With bearer tokens configured, an event may only name the tenant
its token speaks for.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from gateledger import jsonutil
from gateledger.topics import Format
from producers.accept import RawRecord, accept
from producers.accept import IngestContext
from producers.ingest.common import (
    STATE,
    BodyTooLarge,
    authenticate,
    publish_or_503,
    read_body,
    reject_body,
    result_response,
    too_large,
)

SOURCE = "cloudevents"
FORMAT = Format.CLOUDEVENTS
ROUTE = "/v1/cloudevents"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def binary_event(headers: Any, content_type: str, body: bytes) -> dict[str, Any]:
    """The structured form of a binary-mode event (``ce-*`` headers + body as data)."""
    event: dict[str, Any] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("ce-") and len(lower) > 3:
            event[lower[3:]] = value
    if content_type:
        event["datacontenttype"] = content_type
    if body:
        if _is_json(content_type):
            event["data"] = jsonutil.loads(body)
        elif content_type.startswith("text/"):
            event["data"] = body.decode("utf-8", "replace")
        else:
            event["data_base64"] = base64.b64encode(body).decode()
    return event


async def ingest_cloudevents(request: web.Request) -> web.Response:
    """Accept events in any of the modes above."""
    state = request.app[STATE]
    caller = authenticate(request)
    try:
        body = await read_body(request)
    except BodyTooLarge as exc:
        raise await too_large(request, exc, SOURCE, caller.tenant) from None
    ctype = request.content_type.lower()

    async def bad(reason: str, message: str) -> Exception:
        return await reject_body(request, status=400, reason=reason, message=message, raw=body, source=SOURCE,
                                 tenant=caller.tenant)

    binary = "ce-specversion" in request.headers and ctype not in (STRUCTURED, BATCH)
    try:
        value = binary_event(request.headers, ctype, body) if binary else jsonutil.loads(body)
    except jsonutil.JSONDecodeError as exc:
        raise await bad("invalid_json", f"invalid JSON: {exc}") from None
    if ctype == BATCH and not isinstance(value, list):
        raise await bad("schema", f"{BATCH} needs a JSON array of events")
    if ctype == STRUCTURED and not isinstance(value, dict):
        raise await bad("schema", f"{STRUCTURED} needs one event object (use {BATCH} for arrays)")
    items = value if isinstance(value, list) else [value]
    records = [RawRecord(i, value=v) for i, v in enumerate(items)]
    ctx = IngestContext(
        masker=state.masker,
        tenant=caller.tenant,
        install=caller.install,
        tenant_locked=caller.locked,
    )
    result = await publish_or_503(
        request, accept(state.publisher, FORMAT, records, ctx, origin=f"http:{request.path}", source=SOURCE)
    )
    return result_response(result)


def add_routes(app: web.Application) -> None:
    """Register the CloudEvents endpoint."""
    app.router.add_post(ROUTE, ingest_cloudevents)
