"""Every ClickHouse table and view name, defined once; the migrations create exactly these.

tests/gateledger/test_tables.py reads gateledger/clickhouse/migrations/ and fails when a migration creates
a name missing here or a name here is created by no migration.
"""

from __future__ import annotations

from enum import StrEnum


class Table(StrEnum):
    """Tables: what the sink lands, its own state, and what the rollups sum into."""

    # One per output topic (the models in gateledger/contracts/events.py name theirs), plus raw.
    RAW_EVENTS = "raw_events"
    DEAD_LETTERS = "dead_letters"
    MCP_CALLS = "mcp_calls"
    LLM_CALLS = "llm_calls"
    POLICY_DECISIONS = "policy_decisions"
    WEBHOOK_DECISIONS = "webhook_decisions"
    INTERACTIONS = "interactions"
    COST_LEDGER = "cost_ledger"
    BUDGET_ALERTS = "budget_alerts"
    FINDINGS = "findings"
    LOCAL_AGENT_TOOL_CALLS = "local_agent_tool_calls"
    # The sink's own state (sinks/clickhouse/batchlog.py, rollups.py).
    SINK_BATCHES = "sink_batches"
    ROLLUP_PRIOR = "rollup_prior"
    ROLLUP_FEED = "rollup_feed"
    LANDING_FEED = "landing_feed"
    DECISION_FEED = "decision_feed"
    # Rollups, filled by the materialized views ``<name>_mv`` from the feeds.
    USAGE_PER_MINUTE = "usage_per_minute"
    COST_DAILY = "cost_daily"
    COST_PER_MINUTE = "cost_per_minute"
    USER_COST_PER_HOUR = "user_cost_per_hour"
    LANDINGS_PER_MINUTE = "landings_per_minute"
    CALLS_PER_MINUTE = "calls_per_minute"
    DECISIONS_PER_MINUTE = "decisions_per_minute"
    INTERACTION_COSTS = "interaction_costs"


# Tables with a ``<name>_latest`` view: each event's latest version only (``FINAL``), per tenant and
# time range; this is what "latest" means wherever gateledger reads events.
LATEST: tuple[Table, ...] = (
    Table.RAW_EVENTS, Table.DEAD_LETTERS, Table.MCP_CALLS, Table.LLM_CALLS, Table.POLICY_DECISIONS,
    Table.WEBHOOK_DECISIONS, Table.INTERACTIONS, Table.COST_LEDGER, Table.BUDGET_ALERTS, Table.FINDINGS,
    Table.LOCAL_AGENT_TOOL_CALLS,
)

# Rollup tables and the materialized view that fills each (``<name>_mv``).
ROLLUPS: tuple[Table, ...] = (
    Table.USAGE_PER_MINUTE, Table.COST_DAILY, Table.COST_PER_MINUTE, Table.USER_COST_PER_HOUR, Table.LANDINGS_PER_MINUTE,
    Table.CALLS_PER_MINUTE, Table.DECISIONS_PER_MINUTE,
)

# Other views: rollups merged for reading (``_v``), and joins for analysts (the budget signals: AxonFlow's
# X-Budget-Warning answers, alone and beside gateledger's own budget alerts, migration 0101).
VIEWS: tuple[str, ...] = ("cost_daily_v", "usage_per_minute_v", "interactions_with_cost", "user_activity",
                          "budget_warnings_latest", "budget_signals_latest")


# Columns of the rollup feeds (migrations 0005, 0080-0082), as the rebuild inserts into them.
ROLLUP_FEED_COLUMNS: tuple[str, ...] = (
    "source", "sign", "tenant", "time", "kind", "mcp_server_id", "tool_name", "provider", "model", "team",
    "user_id", "client_id", "calls", "errors", "denied", "latency_ms", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "total_tokens", "cost_usd", "unpriced", "status",
)
DECISION_FEED_COLUMNS: tuple[str, ...] = (
    "source", "sign", "tenant", "time", "outcome", "user_id", "policies", "block_reason", "filter_name",
    "mcp_server_id", "tool_name",
)


def latest(table: Table) -> str:
    """The view of ``table`` holding each event's latest version (a parameterized view)."""
    if table not in LATEST:
        raise ValueError(f"{table} has no latest view")
    return f"{table}_latest"


def materialized_view(rollup: Table) -> str:
    """The materialized view that fills ``rollup``."""
    if rollup not in ROLLUPS:
        raise ValueError(f"{rollup} is not a rollup")
    return f"{rollup}_mv"


def all_names() -> frozenset[str]:
    """Every table and view name the migrations create."""
    return frozenset({*Table, *(latest(t) for t in LATEST), *(materialized_view(r) for r in ROLLUPS), *VIEWS})
