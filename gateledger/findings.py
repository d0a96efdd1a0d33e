"""Compliance findings with deterministic ids: one finding per fact, whoever detects it and how often.

Version 1 is the finding; version 2 (``retracted=True``) withdraws it when late evidence disproves
it. A policy-bypass finding carries its interaction's version, so more evidence of the same bypass
replaces the row rather than adding one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateledger.clock import to_utc
from gateledger.contracts.events import Finding, FindingKind, LlmCall, LlmCallStatus
from gateledger.ids import finding_id
from gateledger.money.catalog import Unpriced


def unaudited(*, tenant: str, context_id: str, precheck_id: str, time: datetime, expires_at: datetime,
              interaction_id: str | None, request_id: str | None, user_id: str | None, client_id: str | None,
              now: datetime, retracted: bool = False, evidence: Sequence[str] = ()) -> Finding:
    """An approved pre-check with no LLM-call audit recorded by its ``expires_at``."""
    return Finding(
        id=finding_id(FindingKind.UNAUDITED_LLM_CALL, tenant, context_id),
        version=2 if retracted else 1,
        tenant=tenant,
        time=time,
        kind=FindingKind.UNAUDITED_LLM_CALL,
        severity="high",
        interaction_id=interaction_id,
        context_id=context_id,
        request_id=request_id,
        user_id=user_id,
        client_id=client_id,
        description=(
            f"pre-check {context_id} was approved but no LLM-call audit was recorded by its expiry "
            f"{expires_at.isoformat()}" + (" (retracted: an audit recorded in time arrived late)" if retracted else "")
        ),
        evidence_event_ids=sorted({precheck_id, *evidence}),
        detected_at=now,
        retracted=retracted,
    )


def orphan(*, tenant: str, context_id: str, audit_id: str, time: datetime, interaction_id: str | None,
           request_id: str | None, client_id: str | None, now: datetime, retracted: bool = False,
           evidence: Sequence[str] = ()) -> Finding:
    """An LLM-call audit whose ``context_id`` no pre-check issued."""
    return Finding(
        id=finding_id(FindingKind.ORPHAN_AUDIT, audit_id),
        version=2 if retracted else 1,
        tenant=tenant,
        time=time,
        kind=FindingKind.ORPHAN_AUDIT,
        severity="medium",
        interaction_id=interaction_id,
        context_id=context_id,
        request_id=request_id,
        client_id=client_id,
        description=(
            f"LLM-call audit for context {context_id}, which no pre-check issued"
            + (" (retracted: the pre-check arrived late)" if retracted else "")
        ),
        evidence_event_ids=sorted({audit_id, *evidence}),
        detected_at=now,
        retracted=retracted,
    )


def is_suspect_usage(call: LlmCall) -> bool:
    """A successful LLM call that reports zero tokens (a known Obot defect): never priced as free."""
    return call.status == LlmCallStatus.SUCCESS and call.total_tokens == 0 and call.input_tokens == 0 \
        and call.output_tokens == 0


def _about(call: LlmCall) -> dict[str, Any]:
    """What a finding about one LLM call takes from the call."""
    return {"tenant": call.tenant, "time": call.time, "context_id": call.context_id, "request_id": call.request_id,
            "user_id": call.user_id, "client_id": call.client_id}


def suspect_usage(call: LlmCall, *, interaction_id: str | None, now: datetime) -> Finding:
    """Finding for a successful LLM call with zero tokens."""
    what = "reported zero tokens" if call.tokens_reported else "reported no token usage"
    return Finding(
        id=finding_id(FindingKind.SUSPECT_USAGE, call.id),
        # The call's version: an AxonFlow audit re-emitted under its late pre-check's interaction
        # restates the finding with that interaction.
        version=call.version,
        kind=FindingKind.SUSPECT_USAGE,
        severity="medium",
        interaction_id=interaction_id,
        description=f"successful {call.provider}/{call.model} call {what}; usage cannot be trusted or priced",
        evidence_event_ids=sorted(call.event_ids),
        detected_at=now,
        **_about(call),
    )


def unpriced_model(call: LlmCall, why: Unpriced, detected_at: datetime, interaction_id: str | None = None) -> Finding:
    """The ``unpriced_model`` finding for an LLM call the catalog cannot price (the cost stage's)."""
    return Finding(
        id=finding_id(FindingKind.UNPRICED_MODEL, call.id),
        kind=FindingKind.UNPRICED_MODEL,
        severity="medium",
        interaction_id=interaction_id,
        description=(f"LLM call cannot be priced ({why.reason}): {why.detail}. Its cost row is flagged unpriced; "
                     "add the model to the price catalog (GATELEDGER_PRICES_FILE) and restate."),
        evidence_event_ids=[call.id],
        detected_at=to_utc(detected_at),
        **_about(call),
    )


def policy_bypass(*, tenant: str, interaction_id: str, interaction_version: int, block_key: str,
                  block_event_ids: Sequence[str], offending_event_ids: Sequence[str], time: datetime, what: str,
                  request_id: str | None, user_id: str | None, client_id: str | None, context_id: str | None,
                  now: datetime) -> Finding:
    """Something ran after a block (blocked pre-check or rejected webhook) in the same interaction.

    Its version is the interaction's: re-detected on every re-emission of the interaction, the
    latest evidence wins; withdrawn (``retracted``) if a late event shows the block did not apply.
    """
    evidence = sorted({*block_event_ids, *offending_event_ids})
    return Finding(
        id=finding_id(FindingKind.POLICY_BYPASS, interaction_id, block_key),
        version=interaction_version,
        tenant=tenant,
        time=time,
        kind=FindingKind.POLICY_BYPASS,
        severity="critical",
        interaction_id=interaction_id,
        context_id=context_id,
        request_id=request_id,
        user_id=user_id,
        client_id=client_id,
        description=what,
        evidence_event_ids=evidence,
        detected_at=now,
    )


def is_check_input_block(fact: dict[str, Any]) -> bool:
    """A fact of AxonFlow's MCP check-input refusing a tool call (``allowed: false``)."""
    return fact.get("kind") == "gate" and fact.get("gate") == "mcp_check_input" and not fact.get("ok")


def governs(check: dict[str, Any], call: dict[str, Any]) -> bool:
    """Whether an MCP check names this MCP call's tool (or, naming no tool, its server: connector_type)."""
    if check.get("tool"):
        return call.get("tool") == check["tool"]
    return bool(check.get("server")) and check["server"] in (call.get("server"), call.get("sid"), call.get("tool"))


def untapped(*, tenant: str, entry_event_id: str, context_id: str, time: datetime, client_id: str | None,
             model: str | None, now: datetime, precheck: bool = False, retracted: bool = False,
             evidence: Sequence[str] = ()) -> Finding:
    """An LLM call (or, ``precheck``, the gateway pre-check clearing one) in AxonFlow's own audit trail
    that no tap exchange of its context preceded; ``retracted`` when the tap's record arrived late."""
    what = "approved a pre-check" if precheck else f"audited an LLM call{f' ({model})' if model else ''}"
    return Finding(
        id=finding_id(FindingKind.UNTAPPED_LLM_CALL, tenant, context_id),
        version=2 if retracted else 1,
        tenant=tenant,
        time=time,
        kind=FindingKind.UNTAPPED_LLM_CALL,
        severity="high",
        context_id=context_id,
        client_id=client_id,
        description=(f"AxonFlow {what} for context {context_id} that never passed the gateledger tap"
                     + (" (retracted: the tap's record of the context arrived late)" if retracted else "")),
        evidence_event_ids=sorted({entry_event_id, *evidence}),
        detected_at=now,
        retracted=retracted,
    )
