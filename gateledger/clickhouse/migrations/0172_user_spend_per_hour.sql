-- Spend per user and hour, without the model and MCP server (issue 22). The "who spends" panels rank
-- users over the whole range; user_cost_per_hour keeps a row per user, hour, team, server and model
-- (the panels' filters), so a month of 1000+ users summed millions of rows even with no filter set.
-- With the model and server filters on All the panels read this instead: a row per user, team and
-- hour. Fed like user_cost_per_hour from the sink's signed rollup_feed (+1 for a cost entry new or
-- newer than what the ledger held, -1 for the version it supersedes; the feed's insert and the views'
-- inserts deduplicated by the flush token), so sums stay exact under re-delivery and restatement.
CREATE TABLE IF NOT EXISTS $db.user_spend_per_hour $on_cluster
(
    tenant    LowCardinality(String),
    hour      DateTime('UTC') CODEC(Delta, ZSTD(1)),
    user_id   String,
    team      LowCardinality(String),
    entries   SimpleAggregateFunction(sum, Int64),
    cost_usd  SimpleAggregateFunction(sum, Decimal(38, 12)),
    last_time SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, user_id, team)
TTL hour + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.user_spend_per_hour_mv $on_cluster TO $db.user_spend_per_hour AS
SELECT
    tenant,
    toStartOfHour(time) AS hour,
    user_id, team,
    sum(sign) AS entries,
    sum(sign * cost_usd) AS cost_usd,
    -- a superseded version keeps its event's time, so +1 rows alone give the newest time exactly
    maxIf(time, sign > 0) AS last_time
FROM $db.rollup_feed
WHERE source = 'cost_ledger'
GROUP BY tenant, hour, user_id, team;

-- What the ledger held before this migration: the same sums, from user_cost_per_hour (the sink
-- applies migrations before it consumes, so nothing lands twice).
INSERT INTO $db.user_spend_per_hour
SELECT tenant, hour, user_id, team, sum(entries), sum(cost_usd), max(last_time)
FROM $db.user_cost_per_hour
GROUP BY tenant, hour, user_id, team;
