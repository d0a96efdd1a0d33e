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
    USER_SPEND_PER_HOUR = "user_spend_per_hour"
    COST_PER_HOUR = "cost_per_hour"
    LANDINGS_PER_MINUTE = "landings_per_minute"
    DELAYS_PER_MINUTE = "delays_per_minute"
    DELAYS_PER_HOUR = "delays_per_hour"
    CALLS_PER_MINUTE = "calls_per_minute"
    CALLS_PER_HOUR = "calls_per_hour"
    DECISIONS_PER_MINUTE = "decisions_per_minute"
    INTERACTION_COSTS = "interaction_costs"
    # Every version of every interaction by id, filled by ``<name>_mv`` on the base table (migration 0176).
    INTERACTION_VERSIONS = "interaction_versions"


# Tables with a ``<name>_latest`` view (analysts'): each event at its latest version (newest() below),
# per tenant and time range.
LATEST: tuple[Table, ...] = (
    Table.RAW_EVENTS, Table.DEAD_LETTERS, Table.MCP_CALLS, Table.LLM_CALLS, Table.POLICY_DECISIONS,
    Table.WEBHOOK_DECISIONS, Table.INTERACTIONS, Table.COST_LEDGER, Table.BUDGET_ALERTS, Table.FINDINGS,
    Table.LOCAL_AGENT_TOOL_CALLS,
)

# What "latest" means wherever gateledger reads events (analyst views, dashboards, restatement): among the
# rows read, the newest version of each id; and of a table whose events a later version can withdraw, only
# the ids whose newest version stands. raw_events has no versions: any copy of an id is the event.
# FINAL is a faster way to the same rows, not another meaning: it collapses rows sharing the sorting key
# (tenant, time, id), which every version of an event shares except in TIME_MOVES; a view over one of
# those takes the newest version per id on top of FINAL (migration 0050). tests/gateledger/clickhouse/
# test_latest.py checks every ``<name>_latest`` view against newest() on planted versions.
NEWEST_PER_ID = "ORDER BY version DESC LIMIT 1 BY id"
# Tables with a ``retracted`` column (migrations 0020, 0060).
WITHDRAWABLE: tuple[Table, ...] = (Table.INTERACTIONS, Table.FINDINGS)
# Tables where a later version of an event can carry another time: an interaction's time is its earliest
# event, and a late earlier event moves it (migration 0050). (A finding keeps the time of what it is
# about; its view takes the newest version per id to read withdrawal from it, migration 0060.)
TIME_MOVES: tuple[Table, ...] = (Table.INTERACTIONS,)


def withdrawable(table: str) -> bool:
    """Whether ``table`` (a Table, or ``database.<Table>``) has events a later version can withdraw."""
    return table.rsplit(".", 1)[-1] in WITHDRAWABLE


def newest(table: str, columns: str, where: str = "1") -> str:
    """A subquery of ``id, columns``: the rows of ``table`` (a Table, or ``database.<Table>``) matching
    ``where``, at their latest version."""
    name = table.rsplit(".", 1)[-1]
    if name not in LATEST or name == Table.RAW_EVENTS:
        raise ValueError(f"{table} has no versioned events")
    if not withdrawable(table):
        return f"(SELECT id, {columns} FROM {table} WHERE {where} {NEWEST_PER_ID})"
    # Withdrawal is read from the newest version, or an older standing one would come back.
    return (f"(SELECT id, {columns} FROM (SELECT id, {columns}, retracted FROM {table} WHERE {where}"
            f" {NEWEST_PER_ID}) WHERE NOT retracted)")


def final(table: str) -> str:
    """``table`` (a Table, or ``database.<Table>``) read FINAL: each event at its latest version, as newest()
    keeps them, the fast way over a whole table; withdrawn events stay (add ``NOT retracted`` where a table
    has them). Refused for TIME_MOVES, whose versions FINAL does not all collapse."""
    if table.rsplit(".", 1)[-1].strip("`") in TIME_MOVES:
        raise ValueError(f"{table}: an event's versions can differ in time, FINAL keeps more than its latest")
    return f"{table} FINAL"


# Rollup tables and the materialized view that fills each (``<name>_mv``).
ROLLUPS: tuple[Table, ...] = (
    Table.USAGE_PER_MINUTE, Table.COST_DAILY, Table.COST_PER_MINUTE, Table.USER_COST_PER_HOUR, Table.LANDINGS_PER_MINUTE,
    Table.CALLS_PER_MINUTE, Table.DECISIONS_PER_MINUTE, Table.DELAYS_PER_MINUTE, Table.DELAYS_PER_HOUR,
    Table.USER_SPEND_PER_HOUR, Table.COST_PER_HOUR, Table.CALLS_PER_HOUR,
)
# Tables a materialized view ``<name>_mv`` fills from a base table's own rows (each version kept, nothing
# summed: a re-delivered row is the same row), and the base table each follows.
VERSIONS: dict[Table, Table] = {Table.INTERACTIONS: Table.INTERACTION_VERSIONS}

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
    """The materialized view that fills ``rollup`` (or a table of VERSIONS)."""
    if rollup not in ROLLUPS and rollup not in VERSIONS.values():
        raise ValueError(f"{rollup} is not a rollup")
    return f"{rollup}_mv"


def all_names() -> frozenset[str]:
    """Every table and view name the migrations create."""
    return frozenset({*Table, *(latest(t) for t in LATEST), *(materialized_view(r) for r in (*ROLLUPS, *VERSIONS.values())),
                      *VIEWS})
