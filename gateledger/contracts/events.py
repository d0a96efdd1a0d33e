"""Canonical output events: what the stream processors emit and the sink lands, one model per table.

Every model has ``id`` (deterministic), ``version`` (higher wins: re-emissions after late events or
restatements), ``tenant`` and ``time`` (event time, UTC). Money is Decimal; in JSON it travels as a
string so no float ever touches it.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateledger.contracts.wire.base import UtcTime
from gateledger.tables import Table
from gateledger.topics import Topic

Usd = Decimal
"""US dollars, fixed point. Stored as Decimal(38, 12)."""


class OutputEvent(BaseModel):
    """Base of every output event."""

    model_config = ConfigDict(extra="forbid")

    # The output topic and ClickHouse table each model belongs to.
    topic: ClassVar[Topic]
    table: ClassVar[Table]

    id: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    tenant: str = Field(min_length=1)
    # Event time. The tables are sorted by (tenant, time, id), and only rows sharing that key
    # collapse to their latest version. Versions of one id keep their time, except an interaction,
    # whose time is its earliest event (a late earlier event moves it): read interactions through
    # the views, which take the newest version per id.
    time: UtcTime


class McpCallStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


class WebhookStatusEntry(BaseModel):
    """One webhook filter run as recorded by Obot on an MCP call."""

    model_config = ConfigDict(extra="ignore")

    type: str | None = None
    method: str | None = None
    name: str | None = None
    tool: str | None = None
    status: str | None = None
    message: str | None = None


class McpCall(OutputEvent):
    """One MCP exchange (request and response halves merged)."""

    topic = Topic.MCP_CALLS
    table = Table.MCP_CALLS

    source: str
    user_id: str | None = None
    api_key_id: str | None = None
    client_name: str | None = None
    client_version: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    mcp_server_id: str | None = None
    mcp_server_name: str | None = None
    catalog_entry: str | None = None
    workspace_id: str | None = None
    method: str = ""  # mcp.method.name (Obot callType)
    tool_name: str | None = None  # gen_ai.tool.name / resource uri / prompt name (Obot callIdentifier)
    target_type: str | None = None
    status: McpCallStatus = McpCallStatus.UNKNOWN
    http_status: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    session_id: str | None = None
    jsonrpc_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    context_id: str | None = None
    request_mutated: bool = False
    response_mutated: bool = False
    webhook_rejected: bool = False
    webhook_statuses: list[WebhookStatusEntry] = Field(default_factory=list)
    agent_provider: str | None = None
    agent_model: str | None = None
    # Masked JSON text of the bodies; kept for a shorter time than the metadata.
    request_body: str | None = None
    response_body: str | None = None
    complete: bool = True  # False: emitted on timeout with one half missing
    event_ids: list[str] = Field(default_factory=list)


class LlmCallStatus(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    CANCELED = "canceled"


class LlmCall(OutputEvent):
    """One LLM call (AxonFlow LLM-call audit, Obot LLM gateway log, or a custom gateway's event)."""

    topic = Topic.LLM_CALLS
    table = Table.LLM_CALLS

    source: str
    user_id: str | None = None
    client_id: str | None = None  # agent / client application
    api_key_id: str | None = None
    provider: str = ""  # gen_ai.provider.name
    model: str = ""  # gen_ai.request.model
    response_model: str | None = None  # gen_ai.response.model
    input_tokens: int = Field(default=0, ge=0)  # includes cached input tokens (OTel convention)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    tokens_reported: bool = True  # False when upstream sent no usage at all
    latency_ms: int | None = None
    status: LlmCallStatus = LlmCallStatus.SUCCESS
    error: str | None = None
    http_status: int | None = None
    context_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    response_id: str | None = None
    audit_id: str | None = None
    event_ids: list[str] = Field(default_factory=list)
    # How the usage was read when it is not the upstream's own split (migration 0100), e.g. a call
    # filled in from AxonFlow's audit trail; carried into the cost row's pricing_note.
    usage_note: str | None = None


class PolicyDecision(OutputEvent):
    """One AxonFlow governance verdict: a pre-check, a /decide or an MCP check."""

    topic = Topic.POLICY_DECISIONS
    table = Table.POLICY_DECISIONS

    source: str
    context_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    client_id: str | None = None
    user_id: str | None = None
    user_token_hash: str | None = None  # salted hash of the user token: joinable, never the token
    approved: bool
    block_reason: str | None = None
    policies: list[str] = Field(default_factory=list)
    requires_redaction: bool = False
    http_status: int | None = None
    expires_at: UtcTime | None = None
    data_sources: list[str] = Field(default_factory=list)
    mcp_servers: list[str] = Field(default_factory=list)
    agent_framework: str | None = None
    budget_id: str | None = None
    budget_exceeded: bool | None = None
    rate_limit_remaining: int | None = None
    event_ids: list[str] = Field(default_factory=list)
    # Which AxonFlow gate decided: "precheck" (Gateway Mode), "decide" (/api/v1/decide), or
    # "mcp_check_input" / "mcp_check_output" (/api/v1/mcp/check-*); AxonFlow's decision_id with it.
    gate: str = "precheck"
    decision_id: str | None = None
    tool_name: str | None = None  # the MCP tool a check or /decide governs, when named
    budget_warning: str | None = None  # AxonFlow's X-Budget-Warning on this answer


class WebhookDecisionOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    MUTATED = "mutated"


class WebhookDecision(OutputEvent):
    """One webhook-filter verdict on an MCP message (recorded by Obot, or made by gateledger's filter)."""

    topic = Topic.WEBHOOK_DECISIONS
    table = Table.WEBHOOK_DECISIONS

    source: str
    origin: Literal["obot_audit", "gateledger_filter"]
    filter_name: str | None = None
    phase: str | None = None  # request / response
    method: str | None = None
    tool_name: str | None = None
    decision: WebhookDecisionOutcome
    reason: str | None = None
    mcp_server_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    jsonrpc_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    mcp_call_id: str | None = None
    event_ids: list[str] = Field(default_factory=list)


class InteractionStatus(StrEnum):
    OK = "ok"
    BLOCKED = "blocked"  # pre-check denied or webhook rejected, nothing ran after
    ERROR = "error"
    BYPASS = "bypass"  # something ran after a block
    INCOMPLETE = "incomplete"  # closed by timeout with expected parts missing


class Interaction(OutputEvent):
    """One user-level request with everything that happened for it."""

    topic = Topic.INTERACTIONS
    table = Table.INTERACTIONS

    end_time: UtcTime
    request_id: str | None = None
    context_ids: list[str] = Field(default_factory=list)
    trace_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    status: InteractionStatus
    approved: bool | None = None
    block_reason: str | None = None
    policies: list[str] = Field(default_factory=list)
    llm_calls: int = 0
    tool_calls: int = 0
    webhook_rejections: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Usd | None = None
    latency_ms: int = 0
    models: list[str] = Field(default_factory=list)
    mcp_servers: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    complete: bool = False
    close_reason: Literal["complete", "timeout", "late_update"] = "complete"
    event_ids: list[str] = Field(default_factory=list)
    emitted_at: UtcTime
    # A later version with retracted=True withdraws an interaction whose every event turned out to
    # belong to another one (an audit first taken for an orphan, whose pre-check arrived late).
    retracted: bool = False


class CostKind(StrEnum):
    LLM = "llm"
    TOOL = "tool"


class CostEntry(OutputEvent):
    """The cost of one LLM call or one priced tool call, at one price version."""

    topic = Topic.COST_LEDGER
    table = Table.COST_LEDGER

    kind: CostKind
    event_id: str  # the llm_calls / mcp_calls row this prices
    interaction_id: str | None = None
    user_id: str | None = None
    team: str | None = None
    client_id: str | None = None
    mcp_server_id: str | None = None
    tool_name: str | None = None
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    input_cost_usd: Usd = Decimal(0)
    output_cost_usd: Usd = Decimal(0)
    cache_read_cost_usd: Usd = Decimal(0)
    cache_write_cost_usd: Usd = Decimal(0)
    tool_cost_usd: Usd = Decimal(0)
    total_cost_usd: Usd = Decimal(0)
    currency: str = "USD"
    price_version: str
    price_entry: str | None = None  # which catalog entry matched
    unpriced: bool = False
    restated: bool = False
    computed_at: UtcTime
    # Added by the money stage (migration 0030): the catalog's canonical model name, why a row is
    # unpriced (unknown_model, no_price_at_time, no_usage, zero_usage), how it was priced
    # (fallbacks, adjustments, long-context tier), and the MCP server's display name for tool costs.
    priced_model: str | None = None
    unpriced_reason: str | None = None
    pricing_note: str | None = None
    mcp_server_name: str | None = None


class BudgetAlertKind(StrEnum):
    THRESHOLD = "threshold"
    PROJECTED = "projected"


class BudgetAlert(OutputEvent):
    """A budget threshold crossed (or projected to be) in one period. Fires once per (budget, period, kind, threshold)."""

    topic = Topic.BUDGET_ALERTS
    table = Table.BUDGET_ALERTS

    budget_id: str
    budget_name: str
    scope: dict[str, str] = Field(default_factory=dict)
    period_start: UtcTime
    period_end: UtcTime
    kind: BudgetAlertKind
    threshold_pct: int
    spend_usd: Usd
    limit_usd: Usd
    utilization: Decimal
    projected_spend_usd: Usd | None = None
    action: Literal["alert", "block"] = "alert"
    late: bool = False
    triggering_event_id: str | None = None
    fired_at: UtcTime
    period_key: str | None = None  # e.g. month:2026-03 (migration 0030)


class FindingKind(StrEnum):
    UNAUDITED_LLM_CALL = "unaudited_llm_call"
    ORPHAN_AUDIT = "orphan_audit"
    POLICY_BYPASS = "policy_bypass"
    SUSPECT_USAGE = "suspect_usage"
    UNPRICED_MODEL = "unpriced_model"
    UNTAPPED_LLM_CALL = "untapped_llm_call"  # in AxonFlow's audit trail, never through the tap


class Finding(OutputEvent):
    """A compliance finding, naming the events that prove it."""

    topic = Topic.FINDINGS
    table = Table.FINDINGS

    kind: FindingKind
    severity: Literal["low", "medium", "high", "critical"]
    interaction_id: str | None = None
    context_id: str | None = None
    request_id: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    description: str
    evidence_event_ids: list[str] = Field(min_length=1)
    detected_at: UtcTime
    # A later version with retracted=True withdraws a finding that late evidence disproved
    # (e.g. an audit recorded before expires_at that reached us after the deadline).
    retracted: bool = False


class DeadLetter(OutputEvent):
    """Something rejected at some stage, with the reason and the original bytes (masked)."""

    topic = Topic.DEAD_LETTERS
    table = Table.DEAD_LETTERS

    stage: Literal["ingest", "normalize", "correlate", "cost", "budget", "sink", "notify"]
    origin: str  # endpoint, format, or topic the record came from
    reason: str  # short machine-readable code, e.g. invalid_json, schema, too_large
    error: str  # human-readable detail
    original: str  # original bytes as text (invalid UTF-8 escaped), secrets masked
    original_sha256: str
    original_size: int
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    # HTTP refusals (docs/ingest.md "Refusals"): the status answered and the caller's address. A
    # refusal with no trusted body (401, 408, 429, a stranger's bad header) is one letter per caller,
    # route, reason and window (gateledger/refusals.py): ``count`` requests between ``first_at`` and
    # ``last_at``, no body. Every other letter stands for one refused request or record.
    http_status: int | None = Field(default=None, ge=100, le=599)
    caller: str | None = None
    count: int = Field(default=1, ge=1)
    first_at: UtcTime | None = None
    last_at: UtcTime | None = None


class LocalAgentToolCall(OutputEvent):
    """A tool call a local agent (Claude Code, Codex, Cursor, VS Code) reported to Obot (v0.24+).

    ``time`` is Obot's ``recordedAt`` (its own clock); ``occurred_at`` is what the device reported
    and may be skewed or forged (obot-platform/obot pkg/gateway/client/mcpauditlog.go), so it is
    kept apart and never drives watermarks. The actor is the enrolled device.
    """

    topic = Topic.LOCAL_AGENT_TOOL_CALLS
    table = Table.LOCAL_AGENT_TOOL_CALLS

    source: str
    occurred_at: UtcTime | None = None
    time_source: str | None = None  # client_reported
    actor_type: str | None = None  # device (or user / credential / unknown)
    actor_id: str | None = None
    credential: str | None = None  # API key display name (actor.credentialID)
    device_id: str | None = None
    hostname: str | None = None
    os: str | None = None
    reported_user: str | None = None  # client-reported e-mail, masked
    agent_provider: str | None = None
    agent_version: str | None = None
    model: str | None = None
    tool_name: str | None = None
    tool_kind: str | None = None
    target_type: str | None = None
    target_name: str | None = None
    parent_type: str | None = None
    parent_name: str | None = None
    status: McpCallStatus = McpCallStatus.UNKNOWN
    reason: str | None = None
    error: str | None = None
    duration_ms: int | None = None
    session_id: str | None = None
    tool_use_id: str | None = None
    turn_id: str | None = None
    idempotency_key: str | None = None
    client_ip: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    event_ids: list[str] = Field(default_factory=list)


OUTPUT_MODELS: tuple[type[OutputEvent], ...] = (
    McpCall,
    LlmCall,
    PolicyDecision,
    WebhookDecision,
    Interaction,
    CostEntry,
    BudgetAlert,
    Finding,
    DeadLetter,
    LocalAgentToolCall,
)


def model_for_topic(topic: Topic) -> type[OutputEvent]:
    """The output model carried on a topic."""
    for model in OUTPUT_MODELS:
        if model.topic == topic:
            return model
    raise KeyError(topic)

