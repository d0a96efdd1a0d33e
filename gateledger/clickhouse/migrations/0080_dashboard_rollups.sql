-- Rollups the dashboards read instead of scanning a month of raw rows (issue 22). Like 0005 they are
-- fed by the sink, never by the base tables: an MV on a base table would see a re-delivered row and
-- every version of a row.

-- First landings: the sink writes one row per event id the first time any copy or version of it lands
-- (its rollup snapshot held nothing for that id), for raw_events and the tables the delay panel reads.
-- landed_at defaults to the moment this row is inserted, right after the event's own rows landed
-- (the rebuild passes the first copy's inserted_at instead).
CREATE TABLE IF NOT EXISTS $db.landing_feed $on_cluster
(
    output_table LowCardinality(String),
    tenant       String,
    time         DateTime64(6, 'UTC'),
    source       String,
    type         String,
    landed_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = Null;

-- Distinct events and event time → landed delay per minute, per table (and source / type for raw events).
-- Counts are exact (each id once). The delay sketch is a t-digest (as usage_per_minute's latency):
-- a few hundred bytes per state, where a reservoir would keep up to 8192 values per minute and key,
-- i.e. nearly every delay, and merge a month of them as slowly as the raw rows.
CREATE TABLE IF NOT EXISTS $db.landings_per_minute $on_cluster
(
    tenant       LowCardinality(String),
    minute       DateTime('UTC') CODEC(Delta, ZSTD(1)),
    output_table LowCardinality(String),
    source       LowCardinality(String),
    type         LowCardinality(String),
    events       SimpleAggregateFunction(sum, Int64),
    delay_ms     AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Int64)
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(minute)
ORDER BY (output_table, tenant, minute, source, type)
TTL minute + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.landings_per_minute_mv $on_cluster TO $db.landings_per_minute AS
SELECT
    tenant,
    toStartOfMinute(time) AS minute,
    output_table, source, type,
    toInt64(count()) AS events,
    quantilesTDigestState(0.5, 0.95, 0.99)(dateDiff('millisecond', time, landed_at)) AS delay_ms
FROM $db.landing_feed
GROUP BY tenant, minute, output_table, source, type;

-- Cost per minute per user and every dimension a cost panel groups or filters by, latest version of
-- each cost entry (the signed changes of rollup_feed, as cost_daily). kind is the feed's: 'llm' or
-- 'mcp' (= the ledger's 'tool'). last_time: the newest event time seen under the key (for "team" =
-- the user's latest team, and last seen).
CREATE TABLE IF NOT EXISTS $db.cost_per_minute $on_cluster
(
    tenant        LowCardinality(String),
    minute        DateTime('UTC') CODEC(Delta, ZSTD(1)),
    kind          LowCardinality(String),
    user_id       String,
    team          LowCardinality(String),
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
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, kind, user_id, team, mcp_server_id, tool_name, provider, model, unpriced)
TTL minute + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.cost_per_minute_mv $on_cluster TO $db.cost_per_minute AS
SELECT
    tenant,
    toStartOfMinute(time) AS minute,
    kind, user_id, team, mcp_server_id, tool_name, provider, model,
    toUInt8(unpriced) AS unpriced,
    sum(sign) AS entries,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cost_usd) AS cost_usd,
    -- a superseded version keeps its event's time, so +1 rows alone give the newest time exactly
    maxIf(time, sign > 0) AS last_time
FROM $db.rollup_feed
WHERE source = 'cost_ledger'
GROUP BY tenant, minute, kind, user_id, team, mcp_server_id, tool_name, provider, model, unpriced;
