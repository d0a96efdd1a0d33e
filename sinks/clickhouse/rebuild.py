"""Rebuilding the rollups from the base tables (``python -m sinks.clickhouse.rebuild``).

The sink keeps the rollups exact as it lands rows. Two situations need a rebuild instead: a replay of
a topic from the beginning after its batch ranges and deduplication entries expired (the rollups would
count it again), and a change to a rollup's definition. Stop the sink, run this, start the sink: it
empties the rollups and feeds every event once, at its latest version, through the same rollup_feed
the sink uses, and each event's first landing through landing_feed. The SQL mirrors ``rollups.ROLLUP_SOURCES``; a test holds them equal.
"""

from __future__ import annotations

import argparse
import logging

from clickhouse_connect.driver.client import Client

from gateledger.clickhouse.client import connect
from gateledger.settings import ClickHouseSettings, Settings
from gateledger.tables import DECISION_FEED_COLUMNS, ROLLUP_FEED_COLUMNS, ROLLUPS, Table, final, withdrawable
from sinks.clickhouse.rollups import DECISION_FEED_TABLE, FEED_TABLE, LANDING_TABLE, ROLLUP_SOURCES

log = logging.getLogger(__name__)

FEED_COLUMNS = ", ".join(ROLLUP_FEED_COLUMNS)

# Per source table, the feed's columns after (source, sign), over each event at its latest version.
_FEEDS = {
    Table.MCP_CALLS: "tenant, time, 'mcp', mcp_server_id, tool_name, '', '', '', user_id, client_name, 1,"
                     " status IN ('failure', 'timeout'), status = 'denied', duration_ms, 0, 0, 0, 0, 0, 0, 0, status",
    Table.LLM_CALLS: "tenant, time, 'llm', '', '', provider, model, '', user_id, client_id, 1,"
                     " status NOT IN ('success', ''), 0, latency_ms, input_tokens, output_tokens, cache_read_tokens,"
                     " cache_write_tokens, total_tokens, 0, 0, status",
    Table.COST_LEDGER: "tenant, time, if(kind = 'llm', 'llm', 'mcp'), mcp_server_id, tool_name, provider, model, team,"
                       " user_id, client_id, 0, 0, 0, NULL, input_tokens, output_tokens, cache_read_tokens,"
                       " cache_write_tokens, input_tokens + output_tokens, total_cost_usd, unpriced, ''",
}
_DECISION_FEEDS = {
    Table.POLICY_DECISIONS: "tenant, time, if(approved, 'approved', 'blocked'), user_id, policies, block_reason,"
                            " '', '', ''",
    Table.WEBHOOK_DECISIONS: "tenant, time, decision, user_id, [], '', filter_name, mcp_server_id, tool_name",
    Table.FINDINGS: "tenant, time, kind, '', [], '', '', '', ''",
}


def _select(table: Table, columns: str) -> str:
    """The feed rows of ``table``'s events (``{db}`` left to fill): FINAL, the fast way to each event's latest
    version over a whole table (gateledger/tables.py), and nothing withdrawn."""
    standing = " WHERE NOT retracted" if withdrawable(table) else ""
    return f"SELECT '{table}', 1, {columns} FROM {final(f'{{db}}.{table}')}{standing}"


_SELECTS = {table: _select(table, columns) for table, columns in _FEEDS.items()}
_DECISION_SELECTS = {table: _select(table, columns) for table, columns in _DECISION_FEEDS.items()}
DECISION_COLUMNS = ", ".join(DECISION_FEED_COLUMNS)


def truncate_statement(database: str, table: str, ch: ClickHouseSettings | None = None) -> str:
    """Empty a table on every node that stores it (a Distributed table stores nothing itself)."""
    if ch is not None and ch.cluster and ch.sharded:
        return f"TRUNCATE TABLE `{database}`.`{table}_local` ON CLUSTER '{ch.cluster}'"
    if ch is not None and ch.cluster:
        return f"TRUNCATE TABLE `{database}`.`{table}` ON CLUSTER '{ch.cluster}'"
    return f"TRUNCATE TABLE `{database}`.`{table}`"


def rebuild_rollups(client: Client, database: str, ch: ClickHouseSettings | None = None) -> dict[str, int]:
    """Empty the rollups and feed every event once at its latest version; returns events fed per table."""
    settings = {"async_insert": 0, "insert_deduplicate": 0}
    for table in ROLLUPS:
        client.command(truncate_statement(database, table, ch))
    fed = {}
    for table, select in _SELECTS.items():
        client.command(f"INSERT INTO `{database}`.{FEED_TABLE} ({FEED_COLUMNS}) {select.format(db=f'`{database}`')}",
                       settings=settings)
        (n,), = client.query(f"SELECT count() FROM {final(f'`{database}`.`{table}`')}").result_rows
        fed[table] = int(n)
        log.info("fed %d %s event(s) into the rollups", n, table)
    for table, select in _DECISION_SELECTS.items():
        client.command(f"INSERT INTO `{database}`.{DECISION_FEED_TABLE} ({DECISION_COLUMNS}) "
                       f"{select.format(db=f'`{database}`')}", settings=settings)
        log.info("fed %s into the decision rollup", table)
    for table, source in ROLLUP_SOURCES.items():
        source_type = ", ".join(f"any(`{f}`)" for f in source.landing_fields) or "'', ''"
        client.command(
            f"INSERT INTO `{database}`.{LANDING_TABLE} (output_table, tenant, time, source, type, landed_at) "
            f"SELECT '{table}', tenant, time, {source_type}, min(inserted_at) "
            f"FROM `{database}`.`{table}` GROUP BY tenant, time, id", settings=settings)
        log.info("fed the first landings of %s", table)  # each event once, as compute_landings does
    return fed


def main(argv: list[str] | None = None) -> None:
    """CLI: rebuild the rollups of the configured database (stop the sink first)."""
    argparse.ArgumentParser(prog="python -m sinks.clickhouse.rebuild", description=__doc__).parse_args(argv)
    logging.basicConfig(level="INFO", format="%(message)s")
    settings = Settings()
    client = connect(settings.clickhouse, settings.core)
    try:
        print(rebuild_rollups(client, settings.clickhouse.database, settings.clickhouse))
    finally:
        client.close()


if __name__ == "__main__":
    main()
