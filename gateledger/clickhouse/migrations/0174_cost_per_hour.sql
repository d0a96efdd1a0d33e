-- Cost per hour without the user (issue 22). cost_per_minute keeps the user and team, so with 1000+
-- users a minute holds nearly one row per cost entry and the money panels summed ~14M rows for a
-- month. This keeps every dimension those panels group or filter by (kind, MCP server, tool,
-- provider, model, unpriced) and nothing else: a month is hours × dimensions. A panel reads the
-- hours lying wholly inside its range from here, the other whole minutes from cost_per_minute and the
-- partial minutes at the edges from the ledger (dashboards/sql.py: costs()), so its sums are the same.
-- Fed like cost_per_minute from the sink's signed rollup_feed (+1 for a cost entry new or newer than
-- what the ledger held, -1 for the version it supersedes; the feed's insert and the views' inserts
-- deduplicated by the flush token), so sums stay exact under re-delivery and restatement.
CREATE TABLE IF NOT EXISTS $db.cost_per_hour $on_cluster
(
    tenant        LowCardinality(String),
    hour          DateTime('UTC') CODEC(Delta, ZSTD(1)),
    kind          LowCardinality(String),
    mcp_server_id LowCardinality(String),
    tool_name     LowCardinality(String),
    provider      LowCardinality(String),
    model         LowCardinality(String),
    unpriced      UInt8,
    entries       SimpleAggregateFunction(sum, Int64),
    input_tokens  SimpleAggregateFunction(sum, Int64),
    output_tokens SimpleAggregateFunction(sum, Int64),
    cost_usd      SimpleAggregateFunction(sum, Decimal(38, 12)),
    last_time     SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, kind, mcp_server_id, tool_name, provider, model, unpriced)
TTL hour + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.cost_per_hour_mv $on_cluster TO $db.cost_per_hour AS
SELECT
    tenant,
    toStartOfHour(time) AS hour,
    kind, mcp_server_id, tool_name, provider, model,
    toUInt8(unpriced) AS unpriced,
    sum(sign) AS entries,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cost_usd) AS cost_usd,
    -- a superseded version keeps its event's time, so +1 rows alone give the newest time exactly
    maxIf(time, sign > 0) AS last_time
FROM $db.rollup_feed
WHERE source = 'cost_ledger'
GROUP BY tenant, hour, kind, mcp_server_id, tool_name, provider, model, unpriced;

-- What the ledger held before this migration: the same sums, from cost_per_minute (the sink applies
-- migrations before it consumes, so nothing lands twice).
INSERT INTO $db.cost_per_hour
SELECT tenant, toStartOfHour(minute) AS hour, kind, mcp_server_id, tool_name, provider, model, unpriced,
       sum(entries), sum(input_tokens), sum(output_tokens), sum(cost_usd), max(last_time)
FROM $db.cost_per_minute
GROUP BY tenant, hour, kind, mcp_server_id, tool_name, provider, model, unpriced;
