-- MCP and LLM calls per minute for the SRE panels (issue 22): signed counts per status, so error rates
-- are exact under re-delivery and new versions like every rollup_feed sum, and latency sketches of the
-- panels' own kind (quantiles: a reservoir, exact up to 8192 calls per minute and key, so the panels'
-- percentiles are unchanged) fed by +1 rows only, as usage_per_minute's (a sketch cannot
-- subtract: a superseded version's latency stays in it). last_time: when a call with that key last happened.
ALTER TABLE $db.rollup_feed $on_cluster ADD COLUMN IF NOT EXISTS status LowCardinality(String) DEFAULT '';

CREATE TABLE IF NOT EXISTS $db.calls_per_minute $on_cluster
(
    tenant              LowCardinality(String),
    minute              DateTime('UTC') CODEC(Delta, ZSTD(1)),
    kind                LowCardinality(String),
    mcp_server_id       LowCardinality(String),
    tool_name           LowCardinality(String),
    provider            LowCardinality(String),
    model               LowCardinality(String),
    status              LowCardinality(String),
    calls               SimpleAggregateFunction(sum, Int64),
    timed_calls         SimpleAggregateFunction(sum, Int64),
    timed_output_tokens SimpleAggregateFunction(sum, Int64),
    latency_sum_ms      SimpleAggregateFunction(sum, Float64),
    latency_state       AggregateFunction(quantilesIf(0.5, 0.95, 0.99), Float64, UInt8),
    last_time           SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, kind, mcp_server_id, tool_name, provider, model, status)
TTL minute + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.calls_per_minute_mv $on_cluster TO $db.calls_per_minute AS
SELECT
    f.tenant AS tenant,
    toStartOfMinute(f.time) AS minute,
    f.kind AS kind, f.mcp_server_id AS mcp_server_id, f.tool_name AS tool_name, f.provider AS provider,
    f.model AS model, f.status AS status,
    -- the source's columns named with f.: the aliases below reuse their names
    sum(f.sign * f.calls) AS calls,
    sumIf(f.sign * f.calls, f.latency_ms IS NOT NULL) AS timed_calls,
    sumIf(f.sign * f.output_tokens, f.latency_ms IS NOT NULL) AS timed_output_tokens,
    sumIf(f.sign * ifNull(f.latency_ms, 0), f.latency_ms IS NOT NULL) AS latency_sum_ms,
    quantilesIfState(0.5, 0.95, 0.99)(ifNull(f.latency_ms, 0), f.sign > 0 AND f.latency_ms IS NOT NULL) AS latency_state,
    -- versions keep their event's time: the newest time under a key, from +1 rows alone
    maxIf(f.time, f.sign > 0) AS last_time
FROM $db.rollup_feed AS f
WHERE f.source IN ('mcp_calls', 'llm_calls')
GROUP BY tenant, minute, kind, mcp_server_id, tool_name, provider, model, status;
