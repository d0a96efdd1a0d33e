-- Spend per user and hour (issue 22): the "who spends" panels rank users over the whole range, and at
-- a month of 1000+ users the per-minute cost rollup holds a row per user and minute they spent in. Fed
-- like cost_per_minute from the sink's signed rollup_feed (+1 for a cost entry new or newer than what
-- the ledger held, -1 for the version it supersedes), so sums are exact under re-delivery and
-- restatement without any sink change. Only the dimensions those panels filter by are kept.
CREATE TABLE IF NOT EXISTS $db.user_cost_per_hour $on_cluster
(
    tenant        LowCardinality(String),
    hour          DateTime('UTC') CODEC(Delta, ZSTD(1)),
    user_id       String,
    team          LowCardinality(String),
    mcp_server_id LowCardinality(String),
    model         LowCardinality(String),
    entries       SimpleAggregateFunction(sum, Int64),
    cost_usd      SimpleAggregateFunction(sum, Decimal(38, 12)),
    last_time     SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, user_id, team, mcp_server_id, model)
TTL hour + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.user_cost_per_hour_mv $on_cluster TO $db.user_cost_per_hour AS
SELECT
    tenant,
    toStartOfHour(time) AS hour,
    user_id, team, mcp_server_id, model,
    sum(sign) AS entries,
    sum(sign * cost_usd) AS cost_usd,
    -- a superseded version keeps its event's time, so +1 rows alone give the newest time exactly
    maxIf(time, sign > 0) AS last_time
FROM $db.rollup_feed
WHERE source = 'cost_ledger'
GROUP BY tenant, hour, user_id, team, mcp_server_id, model;
