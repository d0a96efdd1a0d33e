"""The AxonFlow pre-check <-> LLM-call audit join of the normalize stage (one partition).

Both are keyed by ``context_id`` on ``raw.axonflow``, so the join is local. Its state is one entry
``c|<tenant>|<context>``; its timers run on the tenant's watermark. Rows of AxonFlow's own audit
trail meet the tap's exchanges of their context in the same entry (``axonflow_trail.py``).
A mixin of ``NormalizePartition``, which provides the state, the output batch, the settings in
microseconds and the emit helpers. The rows themselves (a pre-check's ``PolicyDecision``, an audit's
``LlmCall``) are built at the end of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gateledger import findings
from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import LlmCall, LlmCallStatus, PolicyDecision
from gateledger.contracts.wire import AxonFlowExchange, LlmCallAuditRequest, PreCheckRequest, PreCheckResponse
from gateledger.money.usage import Tokens, normalize_usage, token_fields
from gateledger.topics import EventType
from stream_processors.common.timeutil import from_us, to_us
from stream_processors.facts import FACTS, gone_fact, interaction_id, llm_fact, policy_fact, root_key
from stream_processors.normalize.axonflow_trail import AuditTrailRows
from stream_processors.normalize.dispatch import handles
from stream_processors.normalize.errors import schema_error
from stream_processors.normalize.keys import NOT_RAISED, RAISED, WITHDRAWN, tenant_of
from stream_processors.normalize.records import decode_context, encode_context


class ContextJoin(AuditTrailRows):
    """Pre-checks and audits of one partition joined by context; unaudited and orphan findings."""

    state: Any
    out: Any
    _raw: bytes
    _retention: int
    _precheck_ttl: int
    _unaudited_grace: int
    _orphan_grace: int
    _gap_fill: int
    _emit_llm: Callable[..., None]
    _schedule: Callable[[str, dict[str, Any], int | None], None]
    _now: Callable[[], datetime]

    @staticmethod
    def _new_context(tenant: str, t_us: int) -> dict[str, Any]:
        """A context's empty join state."""
        return {"pre": None, "aud": None, "held": None, "una": NOT_RAISED, "orph": NOT_RAISED, "last": t_us,
                "tn": tenant}

    def _context(self, key: str) -> dict[str, Any] | None:
        """A context's join state, if any (stored compact: ``records.py``)."""
        value = self.state.get(key)
        return None if value is None else decode_context(value)

    @handles(EventType.AXONFLOW_PRECHECK)
    def _precheck(self, env: Envelope, t_us: int, rcv: int) -> None:
        row = decision_from_precheck(env)
        root = root_key(row.tenant, request_id=row.request_id, trace_id=row.trace_id, context_id=row.context_id,
                        fallback=row.id)
        if not row.context_id:
            self.out.row(row, t_us)
            self.out.internal(FACTS, root, policy_fact(row, root, rcv), t_us)
            return
        key = f"c|{row.tenant}|{row.context_id}"
        st = self._context(key) or self._new_context(row.tenant, t_us)
        if st["pre"] is not None:
            return  # this context's pre-check is already in (a replay)
        exp = to_us(row.expires_at) if row.expires_at else t_us + self._precheck_ttl
        st["pre"] = {"eid": env.id, "t": t_us, "exp": exp, "ok": row.approved, "root": root, "rid": row.request_id,
                     "tid": row.trace_id, "cid": row.client_id, "uid": row.user_id}
        st["last"] = max(st["last"], t_us)
        self.out.row(row, t_us)
        self.out.internal(FACTS, root, policy_fact(row, root, rcv), t_us)
        self._tapped(st, row.tenant, row.context_id, env.id)
        aud = st["aud"]
        if st["held"] is not None:
            held = Envelope.model_validate_json(st["held"]["env"])
            call = call_from_axonflow_audit(held, self._enrichment(st))
            aud["root"] = root
            self._emit_llm(call, st["held"]["rcv"], root)
            st["held"] = None
        elif aud is not None and st["orph"] == RAISED:
            # The audit was declared an orphan and correlated alone; its pre-check existed after all:
            # the call moves (enriched) to the pre-check's interaction, and its fact under its own
            # root is replaced by a tombstone, so that interaction is withdrawn.
            orphan_root = aud["root"]  # the withdrawal names what the finding named
            moved = st.pop("oheld", None)
            if moved is not None:
                held = Envelope.model_validate_json(moved["env"])
                call = call_from_axonflow_audit(held, self._enrichment(st))
                self._emit_llm(call, moved["rcv"], root)
                self.out.internal(FACTS, aud["root"], gone_fact(call.id, call.version, row.tenant, aud["root"],
                                                                to_us(call.time), moved["rcv"]), aud["t"])
                aud["root"] = root
            self.out.row(findings.orphan(
                tenant=row.tenant, context_id=row.context_id, audit_id=aud["eid"], time=from_us(aud["t"]),
                interaction_id=interaction_id(orphan_root), request_id=row.request_id, client_id=row.client_id,
                now=self._now(), retracted=True, evidence=[env.id]), aud["t"])
            st["orph"] = WITHDRAWN
        self._schedule_context(key, st)

    @handles(EventType.AXONFLOW_LLM_AUDIT)
    def _audit(self, env: Envelope, t_us: int, rcv: int) -> None:
        _ex, req = parse_audit(env)
        key = f"c|{env.tenant}|{req.context_id}"
        st = self._context(key) or self._new_context(env.tenant, t_us)
        if st["aud"] is not None:
            return  # the one audit of this context is already in (a replay)
        st["last"] = max(st["last"], t_us)
        self._tapped(st, env.tenant, req.context_id, env.id)
        pre = st["pre"]
        if pre is not None:
            call = call_from_axonflow_audit(env, self._enrichment(st))
            st["aud"] = {"eid": env.id, "t": t_us, "root": pre["root"]}
            self._emit_llm(call, rcv, pre["root"])
            if st["una"] == RAISED and t_us <= pre["exp"]:
                # Recorded in time, delivered late: the unaudited finding was wrong.
                self.out.row(self._unaudited_finding(st, env.tenant, req.context_id, retracted=True,
                                                     evidence=[env.id]), pre["t"])
                st["una"] = WITHDRAWN
        else:
            # Visible at once; re-emitted enriched (version 2) when its pre-check turns up.
            call = call_from_axonflow_audit(env)
            self._emit_llm(call, rcv, fact=False)
            st["aud"] = {"eid": env.id, "t": t_us, "root": None}
            st["held"] = {"env": self._raw.decode("utf-8", "replace"), "rcv": rcv}
        self._schedule_context(key, st)

    def _enrichment(self, st: dict[str, Any]) -> dict[str, Any]:
        pre = st["pre"]
        return {"event_ids": [pre["eid"]], "request_id": pre["rid"], "trace_id": pre["tid"],
                "user_id": pre["uid"], "client_id": pre["cid"]}

    def _unaudited_finding(self, st: dict[str, Any], tenant: str, context_id: str, *, retracted: bool = False,
                           evidence: list[str] | None = None) -> Any:
        pre = st["pre"]
        return findings.unaudited(
            tenant=tenant, context_id=context_id, precheck_id=pre["eid"], time=from_us(pre["t"]),
            expires_at=from_us(pre["exp"]), interaction_id=interaction_id(pre["root"]), request_id=pre["rid"],
            user_id=pre["uid"], client_id=pre["cid"], now=self._now(), retracted=retracted, evidence=evidence or (),
        )

    def _context_next_due(self, st: dict[str, Any]) -> int:
        pre, aud = st["pre"], st["aud"]
        dues = [st["last"] + self._retention]
        if pre is not None and pre["ok"] and st["una"] == NOT_RAISED and (aud is None or aud["t"] > pre["exp"]):
            dues.append(pre["exp"] + self._unaudited_grace)
        if st["held"] is not None:
            dues.append(aud["t"] + self._orphan_grace)
        return min(dues + self._trail_dues(st))

    def _schedule_context(self, key: str, st: dict[str, Any]) -> None:
        old = st.get("due")
        st["due"] = self._context_next_due(st)
        self.state.put(key, encode_context(st))
        self._schedule(key, st, old)

    def _context_due(self, key: str, due: int, wm: int) -> None:
        st = self._context(key)
        if st is None or st.get("due") != due:
            return
        tenant = tenant_of(key, st)
        context_id = key[len(tenant) + 3:]
        pre, aud = st["pre"], st["aud"]
        if pre is not None and pre["ok"] and st["una"] == NOT_RAISED and (aud is None or aud["t"] > pre["exp"]) \
                and wm >= pre["exp"] + self._unaudited_grace:
            evidence = [aud["eid"]] if aud is not None else []
            self.out.row(self._unaudited_finding(st, tenant, context_id, evidence=evidence), pre["t"])
            st["una"] = RAISED
        if st["held"] is not None and wm >= aud["t"] + self._orphan_grace:
            held = Envelope.model_validate_json(st["held"]["env"])
            call = call_from_axonflow_audit(held)
            root = root_key(tenant, request_id=call.request_id, trace_id=call.trace_id, context_id=context_id,
                            fallback=call.id)
            aud["root"] = root
            # Only the fact (and suspect-usage finding): the row itself went out on arrival.
            t = to_us(call.time)
            if findings.is_suspect_usage(call):
                self.out.row(findings.suspect_usage(call, interaction_id=interaction_id(root), now=self._now()), t)
            self.out.internal(FACTS, root, llm_fact(call, root, st["held"]["rcv"]), t)
            self.out.row(findings.orphan(
                tenant=tenant, context_id=context_id, audit_id=aud["eid"], time=from_us(aud["t"]),
                interaction_id=interaction_id(root), request_id=call.request_id, client_id=call.client_id,
                now=self._now()), aud["t"])
            # Kept: a late pre-check still moves the call to its own interaction.
            st["oheld"] = st["held"]
            st["held"] = None
            st["orph"] = RAISED
        if st.get("ent") is not None:
            self._trail_due(st, tenant, context_id, wm)
        if wm >= st["last"] + self._retention:
            self.state.delete(key)
            return
        self._schedule_context(key, st)


# -- the rows of a pre-check and of an audit ------------------------------------------------------

def _strs(v: Any) -> list[str]:
    if isinstance(v, list):
        return [str(x) for x in v if x is not None and not isinstance(x, dict | list)]
    return []


def decision_from_precheck(env: Envelope) -> PolicyDecision:
    """A PolicyDecision from an ``axonflow.precheck`` envelope (request + response + HTTP status)."""
    try:
        ex = AxonFlowExchange.model_validate(env.data)
        req = PreCheckRequest.model_validate(ex.request)
        resp = PreCheckResponse.model_validate(ex.response or {})
    except ValidationError as exc:
        raise schema_error("AxonFlow pre-check", exc) from None
    ctx = req.context or {}
    # No verdict in the body: the HTTP status is the verdict (402 budget block, 403 denied...).
    approved = resp.approved if resp.approved is not None else 200 <= ex.status < 300
    budget = resp.budget_info
    user = ctx.get("user_id") or ctx.get("user")
    return PolicyDecision(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        context_id=resp.context_id,
        request_id=env.request_id,
        trace_id=env.trace_id,
        client_id=req.client_id,
        user_id=str(user) if user else env.subject,
        user_token_hash=req.user_token,  # the producer replaced the token with its salted hash
        approved=bool(approved),
        block_reason=resp.block_reason,
        policies=list(resp.policies or []),
        requires_redaction=bool(resp.requires_redaction),
        http_status=ex.status,
        expires_at=resp.expires_at,
        data_sources=list(req.data_sources or []),
        mcp_servers=_strs(ctx.get("mcp_servers")),
        agent_framework=str(ctx["agent_framework"]) if ctx.get("agent_framework") else None,
        budget_id=budget.budget_id if budget else None,
        budget_exceeded=budget.exceeded if budget else None,
        rate_limit_remaining=resp.rate_limit.remaining if resp.rate_limit else None,
        event_ids=[env.id],
        budget_warning=ex.budget_warning,
    )


def parse_audit(env: Envelope) -> tuple[AxonFlowExchange, LlmCallAuditRequest]:
    """The exchange and request of an ``axonflow.llm_audit`` envelope."""
    try:
        ex = AxonFlowExchange.model_validate(env.data)
        req = LlmCallAuditRequest.model_validate(ex.request)
    except ValidationError as exc:
        raise schema_error("AxonFlow LLM-call audit", exc) from None
    return ex, req


def audit_refused(ex: AxonFlowExchange) -> str | None:
    """Why AxonFlow did not accept an LLM-call audit (a non-2xx answer, or ``success: false``), else None."""
    resp = ex.response or {}
    if 200 <= ex.status < 300 and resp.get("success") is not False:
        return None
    why = resp.get("error") if isinstance(resp.get("error"), str) else None
    return f"audit refused by AxonFlow: HTTP {ex.status}" + (f" ({why})" if why else "")


def call_from_axonflow_audit(env: Envelope, enrich: dict[str, Any] | None = None) -> LlmCall:
    """An LlmCall from an AxonFlow audit; ``enrich`` carries its pre-check's keys once joined."""
    ex, req = parse_audit(env)
    meta = req.metadata or {}
    refused = audit_refused(ex)
    failed = bool(meta.get("error")) or refused is not None
    usage = req.token_usage.model_dump(exclude_none=True) if req.token_usage else None
    tokens = normalize_usage(usage)
    if refused is not None:
        # The usage is only the client's claim in an audit AxonFlow did not accept (it stays in the
        # raw exchange): no tokens counted, nothing billed (a failed call without usage is free).
        tokens = Tokens()
    extra = enrich or {}
    ids = [env.id, *extra.get("event_ids", [])]
    request_id = extra.get("request_id") or (str(meta["request_id"]) if meta.get("request_id") else None)
    return LlmCall(
        id=env.id,
        version=len(ids),
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        user_id=extra.get("user_id"),
        client_id=req.client_id or extra.get("client_id"),
        provider=req.provider,
        model=req.model,
        **token_fields(tokens),
        latency_ms=req.latency_ms,
        status=LlmCallStatus.ERROR if failed else LlmCallStatus.SUCCESS,
        error=refused or (str(meta.get("error_message") or meta.get("error")) if failed else None),
        context_id=req.context_id,
        request_id=request_id,
        trace_id=extra.get("trace_id") or env.trace_id,
        session_id=env.session_id,
        audit_id=(env.data or {}).get("audit_id") if isinstance(env.data, dict) else None,
        event_ids=sorted(ids),
    )
