"""Every Kafka topic name, defined once, and what arrives on each raw topic: the registry of upstream sources.

Nothing else spells a topic as a string literal. Every upstream source is listed here once (``SOURCES``):
its raw topic, its wire formats, its envelope types. The producers derive their formats from it
(``producers/accept.py``: each name here is mapped by the folder of its system,
``producers/<system>/formats.py``), the normalize stage derives the raw topics it reads and its dispatch
from it (``stream_processors/normalize/stage.py``, ``dispatch.py``). Adding a gateway is one entry here plus
one folder under ``producers/``, its handlers under ``stream_processors/normalize/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    """Logical topic names; the physical name adds the configured prefix (see ``topic_name``)."""

    # Raw topics: one per upstream source, canonical envelopes as the producers published them.
    RAW_OBOT_MCP = "raw.obot.mcp"
    RAW_OBOT_LLM = "raw.obot.llm"
    RAW_OBOT_WEBHOOK = "raw.obot.webhook"
    RAW_AXONFLOW = "raw.axonflow"
    RAW_CLOUDEVENTS = "raw.cloudevents"
    # Anything rejected anywhere, with the reason and the original bytes.
    DEAD_LETTERS = "dead.letters"

    # Output topics: one per ClickHouse table.
    MCP_CALLS = "mcp.calls"
    LLM_CALLS = "llm.calls"
    POLICY_DECISIONS = "policy.decisions"
    WEBHOOK_DECISIONS = "webhook.decisions"
    INTERACTIONS = "interactions"
    COST_LEDGER = "cost.ledger"
    BUDGET_ALERTS = "budget.alerts"
    FINDINGS = "findings"
    LOCAL_AGENT_TOOL_CALLS = "local_agent.tool_calls"

    # Money state (compacted): latest budget-period snapshots for enforcement, and the notifier's
    # record of alerts already delivered to each webhook.
    BUDGET_STATE = "budget.state"
    NOTIFIER_SENT = "notifier.sent"


# What may arrive on each raw topic: SOURCES below (checked to cover these).
RAW_TOPICS: tuple[Topic, ...] = tuple(t for t in Topic if t.name.startswith("RAW_"))

OUTPUT_TOPICS: tuple[Topic, ...] = (
    Topic.MCP_CALLS,
    Topic.LLM_CALLS,
    Topic.POLICY_DECISIONS,
    Topic.WEBHOOK_DECISIONS,
    Topic.INTERACTIONS,
    Topic.COST_LEDGER,
    Topic.BUDGET_ALERTS,
    Topic.FINDINGS,
    Topic.LOCAL_AGENT_TOOL_CALLS,
)

# Keyed state topics: only the latest record per key matters, so they are compacted.
COMPACTED_TOPICS: tuple[Topic, ...] = (Topic.BUDGET_STATE, Topic.NOTIFIER_SENT)

ALL_TOPICS: tuple[Topic, ...] = (*RAW_TOPICS, Topic.DEAD_LETTERS, *OUTPUT_TOPICS, *COMPACTED_TOPICS)


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is created."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def topic_name(topic: Topic | str, prefix: str = "") -> str:
    """The physical topic name for a logical one."""
    return f"{prefix}{topic}"


# Retention beyond the broker's default (7 days on Apache Kafka): a budget added mid-month counts
# its month's earlier spend from cost.ledger (stream_processors/budgets/backfill.py), so the topic
# keeps a longest period (31 days) plus margin. Cost rows are small.
RETENTION_MS: dict[Topic, int] = {Topic.COST_LEDGER: 35 * 86_400_000}


def topic_specs(prefix: str, partitions: int, replication_factor: int) -> list[TopicSpec]:
    """Specs for every topic gateledger owns (internal processor topics are created by faust)."""
    specs = []
    for t in ALL_TOPICS:
        config = {"cleanup.policy": "compact" if t in COMPACTED_TOPICS else "delete"}
        if t in RETENTION_MS:
            config["retention.ms"] = str(RETENTION_MS[t])
        specs.append(TopicSpec(topic_name(t, prefix), partitions, replication_factor, config))
    return specs


class EventType(StrEnum):
    """Envelope ``type`` values gateledger's producers emit (CloudEvents may carry other types)."""

    OBOT_MCP_CALL = "obot.mcp.call"  # flat / shim MCP audit record (whole exchange or one half)
    OBOT_MCP_AUDIT_EVENT = "obot.mcp.audit_event"  # v0.24+ AuditLogEvent
    # v0.24+ AuditLogEvent with eventType local_agent_tool_call (Claude Code, Codex, Cursor, VS Code)
    OBOT_LOCAL_AGENT_TOOL_CALL = "obot.local_agent.tool_call"
    OBOT_LLM_CALL = "obot.llm.call"  # Obot LLM gateway audit log
    OBOT_WEBHOOK_DECISION = "obot.webhook.decision"  # JSON-RPC message seen by our webhook filter
    AXONFLOW_PRECHECK = "axonflow.precheck"  # pre-check request + response
    AXONFLOW_LLM_AUDIT = "axonflow.llm_audit"  # LLM-call audit request + response
    AXONFLOW_DECIDE = "axonflow.decide"  # POST /api/v1/decide request + verdict
    AXONFLOW_MCP_CHECK = "axonflow.mcp_check"  # POST /api/v1/mcp/check-input|check-output + verdict
    AXONFLOW_AUDIT_ENTRY = "axonflow.audit_entry"  # a row of AxonFlow's own audit trail (the poller)


class Format(StrEnum):
    """Names of the wire formats (``gateledger ingest --format``, ``POST /v1/ingest/{format}``)."""

    OBOT_AUDIT = "obot-audit"
    OBOT_AUDIT_EVENT = "obot-audit-event"
    OBOT_LLM = "obot-llm"
    OBOT_EXPORT = "obot-export"
    OBOT_WEBHOOK = "obot-webhook"
    AXONFLOW_PRECHECK = "axonflow-precheck"
    AXONFLOW_LLM_CALL = "axonflow-llm-call"
    AXONFLOW_GOVERNANCE = "axonflow-governance"
    AXONFLOW_AUDIT_ENTRY = "axonflow-audit-entry"
    CLOUDEVENTS = "cloudevents"


@dataclass(frozen=True)
class Source:
    """One raw topic and what may arrive on it."""

    topic: Topic
    system: str  # the folder under producers/ that maps its formats
    formats: tuple[Format, ...]  # the formats whose records are published here
    # Envelope types the normalize stage accepts here; empty: the record names its own (CloudEvents).
    types: tuple[EventType, ...]


SOURCES: tuple[Source, ...] = (
    Source(Topic.RAW_OBOT_MCP, "obot", (Format.OBOT_AUDIT, Format.OBOT_AUDIT_EVENT, Format.OBOT_EXPORT),
           (EventType.OBOT_MCP_CALL, EventType.OBOT_MCP_AUDIT_EVENT, EventType.OBOT_LOCAL_AGENT_TOOL_CALL)),
    # An export holds MCP or LLM records: obot-export lands on either topic.
    Source(Topic.RAW_OBOT_LLM, "obot", (Format.OBOT_LLM, Format.OBOT_EXPORT), (EventType.OBOT_LLM_CALL,)),
    Source(Topic.RAW_OBOT_WEBHOOK, "obot", (Format.OBOT_WEBHOOK,), (EventType.OBOT_WEBHOOK_DECISION,)),
    Source(Topic.RAW_AXONFLOW, "axonflow",
           (Format.AXONFLOW_PRECHECK, Format.AXONFLOW_LLM_CALL, Format.AXONFLOW_GOVERNANCE,
            Format.AXONFLOW_AUDIT_ENTRY),
           (EventType.AXONFLOW_PRECHECK, EventType.AXONFLOW_LLM_AUDIT, EventType.AXONFLOW_DECIDE,
            EventType.AXONFLOW_MCP_CHECK, EventType.AXONFLOW_AUDIT_ENTRY)),
    Source(Topic.RAW_CLOUDEVENTS, "cloudevents", (Format.CLOUDEVENTS,), ()),
)

RAW_SOURCE: dict[Topic, Source] = {s.topic: s for s in SOURCES}
if set(RAW_SOURCE) != set(RAW_TOPICS) or len(RAW_SOURCE) != len(SOURCES):
    raise RuntimeError("gateledger/topics.py: every raw topic needs exactly one source")


def topics_of(fmt: Format | str) -> tuple[Topic, ...]:
    """The raw topics records of format ``fmt`` may be published to."""
    return tuple(s.topic for s in SOURCES if fmt in s.formats)


def formats_of(system: str) -> tuple[Format, ...]:
    """The formats the folder ``producers/<system>/`` maps, in registry order."""
    return tuple(dict.fromkeys(f for s in SOURCES if s.system == system for f in s.formats))
