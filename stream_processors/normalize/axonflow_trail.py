"""Rows of AxonFlow's own audit trail (the audit poller's) against the tap's records of their context.

A row the tap saw nothing of is an ``untapped_llm_call``, withdrawn if the tap's record of the
context arrives later; an LLM row whose call the tap never recorded fills that gap as an
``LlmCall``. The row lives in its context's join state (``c|<tenant>|<context>``, key ``ent``) and
is decided on the tenant's watermark by the join's timer. A mixin of ``ContextJoin``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateledger import findings
from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import LlmCall, LlmCallStatus
from gateledger.contracts.wire import AuditLogEntry
from gateledger.money.usage import Tokens, token_fields
from stream_processors.common.timeutil import from_us
from stream_processors.normalize import governance
from stream_processors.normalize.keys import NOT_NEEDED, NOT_RAISED, RAISED, WITHDRAWN


class AuditTrailRows:
    """The one deciding trail row of each context: its untapped finding and its gap-filled call."""

    state: Any
    out: Any
    _raw: bytes
    _orphan_grace: int
    _gap_fill: int
    _emit_llm: Callable[..., None]
    _now: Callable[[], datetime]
    _schedule_context: Callable[[str, dict[str, Any]], None]
    _new_context: Callable[[str, int], dict[str, Any]]
    _context: Callable[[str], dict[str, Any] | None]

    def _trail_row(self, env: Envelope, entry: Any, t_us: int, rcv: int) -> None:
        """A row of AxonFlow's audit trail, decided on the tenant's watermark (whichever arrives first).

        At the row's time + ``orphan_grace_s``, if the tap saw nothing of its context: an
        ``untapped_llm_call`` (withdrawn if the tap's record arrives later). At its time +
        ``audit_gap_fill_s`` (default the retention), if the tap never recorded the LLM call itself:
        the row fills the gap as an ``LlmCall`` (``call_from_audit_entry``) — only once the
        tap's record could no longer join, since a filled call is not taken back.
        """
        if not env.context_id or entry.blocked():
            return  # not a gateway-plane row (nothing of the tap's to compare with), or it cleared no call
        key = f"c|{env.tenant}|{env.context_id}"
        st = self._context(key) or self._new_context(env.tenant, t_us)
        if st["aud"] is not None:
            return  # the tap recorded the call itself: no finding and nothing to fill
        fill = entry.is_llm_call()
        if st["pre"] is not None and not fill:
            return  # the tap saw this context and the row shows no call to fill
        ent = st.get("ent")
        if ent is not None and (ent["u"] in (RAISED, WITHDRAWN) or (not fill and ent.get("env")) or
                                (bool(ent.get("env")) == fill and (ent["t"], ent["eid"]) <= (t_us, env.id))):
            return  # one row per context decides: an LLM row over a pre-check row, else the earliest
        st["ent"] = {"eid": env.id, "t": t_us, "cid": entry.client_id, "m": entry.model,
                     "u": NOT_RAISED if st["pre"] is None else NOT_NEEDED,
                     "pc": int(entry.is_gateway_precheck() and not fill),
                     "env": self._raw.decode("utf-8", "replace") if fill else None, "rcv": rcv}
        st["last"] = max(st["last"], t_us)
        self._schedule_context(key, st)

    def _trail_dues(self, st: dict[str, Any]) -> list[int]:
        """When the context's trail row has something to decide (its finding, its filled call)."""
        dues = []
        if _untapped_pending(st):
            dues.append(st["ent"]["t"] + self._orphan_grace)
        if _fill_pending(st):
            dues.append(st["ent"]["t"] + self._gap_fill)
        return dues

    def _trail_due(self, st: dict[str, Any], tenant: str, context_id: str, wm: int) -> None:
        """What of the context's trail row is due at ``wm``: its finding, its filled call."""
        ent = st["ent"]
        if _untapped_pending(st) and wm >= ent["t"] + self._orphan_grace:
            self.out.row(self._untapped_finding(ent, tenant, context_id), ent["t"])
            ent["u"] = RAISED
        if _fill_pending(st) and wm >= ent["t"] + self._gap_fill:
            row = Envelope.model_validate_json(ent["env"])
            call = call_from_audit_entry(row, governance.parse_entry(row))
            if call is not None:
                self._emit_llm(call, ent["rcv"])
            ent["env"] = None
        if st["aud"] is not None:
            ent["env"] = None  # the tap's own audit arrived: nothing to fill

    def _tapped(self, st: dict[str, Any], tenant: str, context_id: str | None, event_id: str) -> None:
        """The tap's record of a context arrived: an untapped finding raised before it is withdrawn."""
        ent = st.get("ent")
        if ent is not None and ent["u"] == RAISED:
            withdrawal = self._untapped_finding(ent, tenant, context_id or "", retracted=True, evidence=[event_id])
            self.out.row(withdrawal, ent["t"])
            ent["u"] = WITHDRAWN

    def _untapped_finding(self, ent: dict[str, Any], tenant: str, context_id: str, *, retracted: bool = False,
                          evidence: list[str] | None = None) -> Any:
        return findings.untapped(tenant=tenant, entry_event_id=ent["eid"], context_id=context_id,
                                 time=from_us(ent["t"]), client_id=ent["cid"], model=ent["m"], now=self._now(),
                                 retracted=retracted, evidence=evidence or (), precheck=bool(ent.get("pc")))


def _untapped_pending(st: dict[str, Any]) -> bool:
    """An audit-trail row of this context waits for the tap's record (none in yet, no finding raised)."""
    ent = st.get("ent")
    return ent is not None and ent["u"] == NOT_RAISED and st["pre"] is None and st["aud"] is None


def _fill_pending(st: dict[str, Any]) -> bool:
    """An LLM row of the trail waits to fill a call the tap did not record (the one check of the tap's audit)."""
    ent = st.get("ent")
    return ent is not None and bool(ent.get("env")) and st["aud"] is None


# How a gap-filled call is priced, on the call and its cost row: audit_logger.go's AuditEntry has
# ``tokens_used`` only.
AUDIT_TRAIL_USAGE_NOTE = ("from AxonFlow's audit trail, which has only tokens_used (no prompt/completion split): "
                          "all of it priced at the output rate, an upper bound")


def call_from_audit_entry(env: Envelope, entry: AuditLogEntry) -> LlmCall | None:
    """The LLM call a row of AxonFlow's audit trail shows, else None.

    Only rows of an LLM call (a provider and a model: the orchestrator's ``LogSuccessfulRequest`` /
    ``LogFailedRequest``, audit_logger.go) and not blocked. Whether the tap recorded the call itself
    (then it is already an ``LlmCall``, never a second one) is the join's to check
    (``axonflow_trail._fill_pending``): only a gap is filled from here. The row's
    ``tokens_used`` is a total; it is counted as output tokens so that the price (and every budget
    it counts in) is an upper bound rather than an under-count; AxonFlow's own ``cost`` stays in
    the raw row.
    """
    if not entry.is_llm_call() or entry.blocked():
        return None
    failed = (entry.policy_decision or "").lower() == "error"
    total = entry.tokens_used or 0
    note = AUDIT_TRAIL_USAGE_NOTE
    if entry.cost is not None:
        note += f"; AxonFlow estimated {entry.cost} USD"
    return LlmCall(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        user_id=entry.user_email or None,
        client_id=entry.client_id or None,
        provider=entry.provider or "",
        model=entry.model or "",
        **token_fields(Tokens(0, total, 0, 0, total, entry.tokens_used is not None)),
        latency_ms=entry.response_time_ms if entry.response_time_ms is not None else entry.latency_ms,
        status=LlmCallStatus.ERROR if failed else LlmCallStatus.SUCCESS,
        error=(entry.error_message or "failed (AxonFlow's audit trail)") if failed else None,
        context_id=env.context_id,
        request_id=entry.request_id or None,
        trace_id=env.trace_id,
        usage_note=note,
        event_ids=[env.id],
    )
