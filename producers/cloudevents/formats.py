"""CloudEvents 1.0 (structured mode) from custom gateways, as envelopes."""

from __future__ import annotations

from typing import Any

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.wire import CloudEvent
from gateledger.correlation import trace_id_from_traceparent
from gateledger.ids import tenant_id
from gateledger.topics import Format, Topic
from producers.accept import FormatFn, IngestContext, InvalidRecord, Published, validate



def cloudevent(record: Any, ctx: IngestContext) -> Published:
    """A CloudEvent (structured mode) from a custom gateway."""
    ce = validate(CloudEvent, record)
    extras = ce.model_extra or {}

    def ext(*names: str) -> str | None:
        for n in names:
            v = extras.get(n)
            if isinstance(v, str) and v:
                return v
        return None

    data = ce.data if isinstance(ce.data, dict) else {}
    request_id = ext("requestid", "request_id") or (data.get("request_id") if isinstance(data, dict) else None)
    tenant = ext("tenant", "tenantid") or ctx.tenant
    if ctx.tenant_locked and tenant != ctx.tenant:
        raise InvalidRecord("tenant_mismatch", f"event names tenant {tenant!r}; the caller's token is for {ctx.tenant!r}")
    env = Envelope(
        # CloudEvents promises source + id are unique (per producer, so per tenant: two tenants'
        # gateways may both be "/gateway" numbering events 1, 2, 3...).
        id=tenant_id(tenant, "cloudevent", ce.source, ce.id),
        source=ce.source,
        type=ce.type,
        time=ce.time or ctx.received_at,
        received_at=ctx.received_at,
        tenant=tenant,
        subject=ce.subject,
        request_id=request_id,
        context_id=ext("contextid", "context_id"),
        trace_id=trace_id_from_traceparent(ext("traceparent")),
        session_id=ext("sessionid", "session_id"),
        data=ctx.masker.mask(ce.wire_dict()),
    )
    return Published(env, Topic.RAW_CLOUDEVENTS, request_id or env.context_id or env.id)


FORMATS: dict[Format, FormatFn] = {Format.CLOUDEVENTS: cloudevent}
