"""Every Kafka topic name, defined once. Nothing else spells a topic as a string literal."""

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


# What may arrive on each raw topic is listed in gateledger/sources.py (checked to cover these).
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
