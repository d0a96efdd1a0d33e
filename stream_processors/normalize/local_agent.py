"""Obot local-agent tool calls (v0.24+ ``AuditLogEvent``, ``local_agent_tool_call``) -> ``LocalAgentToolCall``.

Field meanings from obot-platform/obot ``pkg/auditlog/presenter.go`` (``presentLocalAgent``): the
actor is the enrolled device (``actor.actorType: device``), ``actor.credentialID`` the API key's
display name, ``action.name`` / ``action.kind`` the tool and its kind, ``client`` the agent
provider, ``timestamp.occurredAt`` the device's own time (``source: client_reported``) and
``timestamp.recordedAt`` Obot's. Device, agent and environment details come with the detail view or
an export (the poller fetches them); hostname, cwd and the reported e-mail only for auditors.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import LocalAgentToolCall
from gateledger.contracts.wire import ObotAuditLogEvent
from stream_processors.normalize.errors import schema_error
from stream_processors.normalize.outcome import obot_outcome


def _str(v: Any) -> str | None:
    return str(v) if v not in (None, "") else None


def _event(data: Any) -> ObotAuditLogEvent:
    try:
        return ObotAuditLogEvent.model_validate(data)
    except ValidationError as exc:
        raise schema_error("Obot AuditLogEvent", exc) from None


def call_from_local_agent_event(env: Envelope) -> LocalAgentToolCall:
    """A LocalAgentToolCall from an ``obot.local_agent.tool_call`` envelope."""
    ev = _event(env.data)
    d = ev.details
    trace = d.trace if d else None
    agent = d.agent if d else None
    device = d.device if d and isinstance(d.device, dict) else {}
    extra = (d.model_extra or {}) if d else {}
    environment = extra.get("environment") if isinstance(extra.get("environment"), dict) else {}
    target, outcome, actor = ev.target, ev.outcome, ev.actor
    parent = target.parent if target else None
    return LocalAgentToolCall(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        occurred_at=ev.timestamp.occurredAt if ev.timestamp else None,
        time_source=ev.timestamp.source if ev.timestamp else None,
        actor_type=actor.actorType if actor else None,
        actor_id=actor.id if actor else None,
        credential=actor.credentialID if actor else None,
        device_id=_str(device.get("id")) or (actor.id if actor and actor.actorType == "device" else None),
        hostname=_str(device.get("hostname")),
        os=_str(device.get("os")),
        reported_user=_str(environment.get("reportedUserEmail")),
        agent_provider=(agent.provider if agent else None) or _str(ev.client),
        agent_version=agent.version if agent else None,
        model=(agent.model or agent.modelID) if agent else None,
        tool_name=ev.action.name if ev.action else None,
        tool_kind=ev.action.kind if ev.action else None,
        target_type=target.targetType if target else None,
        target_name=target.name if target else None,
        parent_type=parent.targetType if parent else None,
        parent_name=parent.name if parent else None,
        status=obot_outcome(outcome.status if outcome else None) or "unknown",
        reason=outcome.reason if outcome else None,
        error=outcome.error if outcome else None,
        duration_ms=outcome.durationMs if outcome else None,
        session_id=trace.sessionID if trace else None,
        tool_use_id=trace.toolUseID if trace else None,
        turn_id=trace.turnID if trace else None,
        idempotency_key=trace.idempotencyKey if trace else None,
        client_ip=d.network.clientIP if d and d.network else None,
        cwd=_str(environment.get("cwd")),
        git_branch=_str(environment.get("gitBranch")),
        event_ids=[env.id],
    )
