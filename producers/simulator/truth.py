"""Ground truth of a simulation: what really happened, so downstream tests can assert exact expectations.

Every interaction is listed with its pre-check verdict, LLM call (tokens, failure), tool calls
(webhook rejections, errors) and which of its records a fault touched. Besides that: the Obot LLM
gateway calls (with the zero-token ones flagged), orphan audits, deliberately dropped audits,
malformed records (each becomes exactly one dead letter) and duplicate / late / reordered counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from gateledger import jsonutil


@dataclass
class ToolCallTruth:
    server: str
    mcp_id: str
    tool: str
    jsonrpc_id: int
    session_id: str
    time: datetime
    outcome: str  # ok | error | rejected (by the DLP webhook filter recorded in the audit)
    as_halves: bool  # reported by the shim as a request half and a response half
    ran_anyway: bool = False  # fault: rejected by the webhook filter, and it ran all the same


@dataclass
class LlmTruth:
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    failed: bool
    via: str  # axonflow | cloudevents


@dataclass
class InteractionTruth:
    request_id: str
    tenant: str
    user: str
    agent: str
    time: datetime
    trace_id: str
    context_id: str | None  # AxonFlow context id (None: custom gateway, no pre-check)
    precheck: str | None  # approved | blocked | budget_blocked | require_approval | None
    block_reason: str | None = None
    llm: LlmTruth | None = None
    audit_dropped: bool = False  # fault: approved pre-check whose audit was never sent
    bypass: bool = False  # fault: an LLM audit after a blocked pre-check
    late: bool = False  # fault: some of its records were delivered hours late
    tool_calls: list[ToolCallTruth] = field(default_factory=list)
    session_id: str | None = None

    @property
    def blocked(self) -> bool:
        """True when the pre-check did not approve."""
        return self.precheck not in (None, "approved")


@dataclass
class ObotLlmTruth:
    id: str
    tenant: str
    user: str
    model: str
    input_tokens: int
    output_tokens: int
    outcome: str  # success | error | canceled
    time: datetime

    @property
    def suspect_zero_tokens(self) -> bool:
        """A successful call that reports zero tokens (the upstream defect to flag, not price as free)."""
        return self.outcome == "success" and self.input_tokens == 0 and self.output_tokens == 0


@dataclass
class MalformedTruth:
    fmt: str
    reason: str  # invalid_json | schema
    tenant: str


@dataclass
class GroundTruth:
    seed: int
    start: datetime
    tenants: list[str]
    interactions: list[InteractionTruth] = field(default_factory=list)
    obot_llm_calls: list[ObotLlmTruth] = field(default_factory=list)
    orphan_audits: list[str] = field(default_factory=list)  # context ids no pre-check issued
    malformed: list[MalformedTruth] = field(default_factory=list)
    # Distinct valid records per format (what the raw topics hold once duplicates collapse).
    distinct: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    reordered: Counter[str] = field(default_factory=Counter)

    @property
    def dropped_audits(self) -> list[str]:
        """Context ids of approved pre-checks whose audit was deliberately never sent."""
        return [i.context_id for i in self.interactions if i.audit_dropped and i.context_id]

    def interaction(self, request_id: str) -> InteractionTruth:
        """One interaction by request id."""
        return next(i for i in self.interactions if i.request_id == request_id)

    def summary(self) -> dict[str, Any]:
        """Counts worth printing or asserting."""
        inter = self.interactions
        return {
            "interactions": len(inter),
            "blocked_prechecks": sum(1 for i in inter if i.blocked),
            "llm_calls": sum(1 for i in inter if i.llm is not None),
            "failed_llm_calls": sum(1 for i in inter if i.llm is not None and i.llm.failed),
            "tool_calls": sum(len(i.tool_calls) for i in inter),
            "webhook_rejections": sum(1 for i in inter for t in i.tool_calls if t.outcome == "rejected"),
            "tool_errors": sum(1 for i in inter for t in i.tool_calls if t.outcome == "error"),
            "obot_llm_calls": len(self.obot_llm_calls),
            "zero_token_suspects": sum(1 for c in self.obot_llm_calls if c.suspect_zero_tokens),
            "dropped_audits": len(self.dropped_audits),
            "orphan_audits": len(self.orphan_audits),
            "bypasses": sum(1 for i in inter if i.bypass),
            "malformed": len(self.malformed),
            "distinct": dict(sorted(self.distinct.items())),
            "duplicates": dict(sorted(self.duplicates.items())),
            "late": dict(sorted(self.late.items())),
            "reordered": dict(sorted(self.reordered.items())),
        }

    def to_json(self) -> bytes:
        """The whole truth as JSON (times RFC 3339)."""
        counters = ("distinct", "duplicates", "late", "reordered")
        # asdict() would rebuild a Counter from its items (counting tuples): copy those as dicts.
        data = {k: v for k, v in asdict(self).items() if k not in counters}
        data.update({k: dict(getattr(self, k)) for k in counters})
        data["summary"] = self.summary()
        return jsonutil.dumps(data)
