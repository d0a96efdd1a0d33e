-- MCP and LLM calls per hour (issue 22): calls_per_minute's columns, an hour per row. The latency
-- panels merged a month of per-minute sketches (43,200 minutes per key); at an hourly interval, and
-- for the panels that do not group by time, the hours lying wholly inside the range come from here
-- (dashboards/sql.py: calls()).
-- The latency sketch is the minute tier's own (quantilesIf: a reservoir of up to 8192 values): an
-- hour's state holds the same values as its minutes' merged, so the panels' percentiles are unchanged
-- wherever they were exact (at most 8192 timed calls under a panel's bucket and key: the reservoir
-- keeps every value and interpolates exactly as quantile() over the base rows). Beyond 8192 both
-- tiers were and are samples of 8192 values (docs/dashboards.md, "Latency percentiles").
-- Fed like calls_per_minute from the sink's signed rollup_feed: counts and sums exact under
-- re-delivery and new versions, the sketch fed by +1 rows only (a sketch cannot subtract).
CREATE TABLE IF NOT EXISTS $db.calls_per_hour $on_cluster
(
    tenant              LowCardinality(String),
    hour                DateTime('UTC') CODEC(Delta, ZSTD(1)),
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
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, kind, mcp_server_id, tool_name, provider, model, status)
TTL hour + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.calls_per_hour_mv $on_cluster TO $db.calls_per_hour AS
SELECT
    f.tenant AS tenant,
    toStartOfHour(f.time) AS hour,
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
GROUP BY tenant, hour, kind, mcp_server_id, tool_name, provider, model, status;

-- What landed before this migration: the minutes' sums and sketches merged per hour (the sink applies
-- migrations before it consumes, so nothing lands twice).
INSERT INTO $db.calls_per_hour
SELECT tenant, toStartOfHour(minute) AS hour, kind, mcp_server_id, tool_name, provider, model, status,
       sum(calls), sum(timed_calls), sum(timed_output_tokens), sum(latency_sum_ms),
       quantilesIfMergeState(0.5, 0.95, 0.99)(latency_state), max(last_time)
FROM $db.calls_per_minute
GROUP BY tenant, hour, kind, mcp_server_id, tool_name, provider, model, status;
