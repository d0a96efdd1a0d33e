-- Pre-check and webhook decisions, and findings (outcome = kind), per minute for the compliance
-- panels (issue 22). Fed by the sink like
-- rollup_feed (+1 for an event new or newer than what the table held, -1 for the version it
-- supersedes), so counts are exact under re-delivery and new versions.
CREATE TABLE IF NOT EXISTS $db.decision_feed $on_cluster
(
    source        LowCardinality(String),
    sign          Int8,
    tenant        String,
    time          DateTime64(6, 'UTC'),
    outcome       String,
    user_id       String,
    policies      Array(String),
    block_reason  String,
    filter_name   String,
    mcp_server_id String,
    tool_name     String
)
ENGINE = Null;

-- One row per minute and policy that blocked (a pre-check naming several policies counts once in
-- decisions and once per policy in policy_hits; one naming none is filed under its block reason).
-- user_id is kept for blocked pre-checks only (how many users a policy stops).
CREATE TABLE IF NOT EXISTS $db.decisions_per_minute $on_cluster
(
    tenant        LowCardinality(String),
    minute        DateTime('UTC') CODEC(Delta, ZSTD(1)),
    source        LowCardinality(String),
    outcome       LowCardinality(String),
    policy        LowCardinality(String),
    block_reason  String,
    filter_name   LowCardinality(String),
    mcp_server_id LowCardinality(String),
    tool_name     LowCardinality(String),
    user_id       String,
    decisions     SimpleAggregateFunction(sum, Int64),
    policy_hits   SimpleAggregateFunction(sum, Int64),
    last_time     SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, source, outcome, policy, block_reason, filter_name, mcp_server_id, tool_name, user_id)
TTL minute + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.decisions_per_minute_mv $on_cluster TO $db.decisions_per_minute AS
SELECT
    tenant, minute, source, outcome, policy, block_reason, filter_name, mcp_server_id, tool_name, user_id,
    sumIf(sign, first) AS decisions,
    sum(sign) AS policy_hits,
    maxIf(time, sign > 0) AS last_time
FROM
(
    SELECT
        f.tenant AS tenant, toStartOfMinute(f.time) AS minute, f.time AS time, f.sign AS sign, f.source AS source,
        f.outcome AS outcome, hit.1 AS policy, hit.2 = 1 AS first, f.block_reason AS block_reason,
        f.filter_name AS filter_name, f.mcp_server_id AS mcp_server_id, f.tool_name AS tool_name,
        if(f.outcome = 'blocked', f.user_id, '') AS user_id
    FROM $db.decision_feed AS f
    ARRAY JOIN arrayMap((p, i) -> (p, i),
        if(f.source = 'policy_decisions' AND empty(f.policies),
           [if(f.block_reason = '', '(unspecified)', f.block_reason)],
           if(f.source = 'policy_decisions', f.policies, [''])) AS named,
        arrayEnumerate(named)) AS hit
)
GROUP BY tenant, minute, source, outcome, policy, block_reason, filter_name, mcp_server_id, tool_name, user_id;
