-- Rollups by materialized views. They are fed by the sink, not by the base tables: a base-table MV
-- would count a processor's re-emitted duplicate or a superseded version twice. For every batch the
-- sink writes into rollup_feed one +1 row per event that is new or newer than what the table held,
-- and a -1 row for the version it supersedes; sums are therefore exact. Quantile sketches only take
-- +1 rows (a sketch cannot subtract): a superseded version's latency stays in the sketch.
CREATE TABLE IF NOT EXISTS $db.rollup_feed $on_cluster
(
    source            LowCardinality(String),
    sign              Int8,
    tenant            String,
    time              DateTime64(6, 'UTC'),
    kind              LowCardinality(String),
    mcp_server_id     String,
    tool_name         String,
    provider          String,
    model             String,
    team              String,
    user_id           String,
    client_id         String,
    calls             Int64,
    errors            Int64,
    denied            Int64,
    latency_ms        Nullable(Float64),
    input_tokens      Int64,
    output_tokens     Int64,
    cache_read_tokens Int64,
    cache_write_tokens Int64,
    total_tokens      Int64,
    cost_usd          Decimal(38, 12),
    unpriced          Int64
)
ENGINE = Null;

-- Usage per minute per tenant / MCP server / tool / model: calls, errors, latency quantiles, tokens, cost.
-- kind 'mcp' rows carry server and tool, kind 'llm' rows provider and model; a cost row lands on the
-- key of the call it prices.
CREATE TABLE IF NOT EXISTS $db.usage_per_minute $on_cluster
(
    tenant             LowCardinality(String),
    minute             DateTime('UTC') CODEC(Delta, ZSTD(1)),
    kind               LowCardinality(String),
    mcp_server_id      LowCardinality(String),
    tool_name          LowCardinality(String),
    provider           LowCardinality(String),
    model              LowCardinality(String),
    calls              SimpleAggregateFunction(sum, Int64),
    errors             SimpleAggregateFunction(sum, Int64),
    denied             SimpleAggregateFunction(sum, Int64),
    latency_ms         AggregateFunction(quantilesTDigestIf(0.5, 0.9, 0.95, 0.99), Float64, UInt8),
    input_tokens       SimpleAggregateFunction(sum, Int64),
    output_tokens      SimpleAggregateFunction(sum, Int64),
    cache_read_tokens  SimpleAggregateFunction(sum, Int64),
    cache_write_tokens SimpleAggregateFunction(sum, Int64),
    total_tokens       SimpleAggregateFunction(sum, Int64),
    cost_usd           SimpleAggregateFunction(sum, Decimal(38, 12))
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, kind, mcp_server_id, tool_name, provider, model)
TTL minute + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.usage_per_minute_mv $on_cluster TO $db.usage_per_minute AS
SELECT
    tenant,
    toStartOfMinute(time) AS minute,
    kind, mcp_server_id, tool_name, provider, model,
    sum(sign * calls) AS calls,
    sum(sign * errors) AS errors,
    sum(sign * denied) AS denied,
    quantilesTDigestIfState(0.5, 0.9, 0.95, 0.99)(ifNull(latency_ms, 0), sign > 0 AND latency_ms IS NOT NULL) AS latency_ms,
    sumIf(sign * input_tokens, source != 'cost_ledger') AS input_tokens,
    sumIf(sign * output_tokens, source != 'cost_ledger') AS output_tokens,
    sumIf(sign * cache_read_tokens, source != 'cost_ledger') AS cache_read_tokens,
    sumIf(sign * cache_write_tokens, source != 'cost_ledger') AS cache_write_tokens,
    sumIf(sign * total_tokens, source != 'cost_ledger') AS total_tokens,
    -- tokens come from the calls; cost rows carry only money here (cost_daily keeps their tokens)
    sum(sign * cost_usd) AS cost_usd
FROM $db.rollup_feed
GROUP BY tenant, minute, kind, mcp_server_id, tool_name, provider, model;

-- Cost per UTC day per budget-scope dimension (tenant, team, user, client, MCP server, model).
CREATE TABLE IF NOT EXISTS $db.cost_daily $on_cluster
(
    tenant             LowCardinality(String),
    day                Date,
    team               LowCardinality(String),
    user_id            String,
    client_id          LowCardinality(String),
    mcp_server_id      LowCardinality(String),
    provider           LowCardinality(String),
    model              LowCardinality(String),
    entries            SimpleAggregateFunction(sum, Int64),
    unpriced           SimpleAggregateFunction(sum, Int64),
    input_tokens       SimpleAggregateFunction(sum, Int64),
    output_tokens      SimpleAggregateFunction(sum, Int64),
    cache_read_tokens  SimpleAggregateFunction(sum, Int64),
    cache_write_tokens SimpleAggregateFunction(sum, Int64),
    cost_usd           SimpleAggregateFunction(sum, Decimal(38, 12))
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, team, user_id, client_id, mcp_server_id, provider, model)
TTL day + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.cost_daily_mv $on_cluster TO $db.cost_daily AS
SELECT
    tenant,
    toDate(time) AS day,
    team, user_id, client_id, mcp_server_id, provider, model,
    sum(sign) AS entries,
    sum(sign * unpriced) AS unpriced,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cache_read_tokens) AS cache_read_tokens,
    sum(sign * cache_write_tokens) AS cache_write_tokens,
    sum(sign * cost_usd) AS cost_usd
FROM $db.rollup_feed
WHERE source = 'cost_ledger'
GROUP BY tenant, day, team, user_id, client_id, mcp_server_id, provider, model;
