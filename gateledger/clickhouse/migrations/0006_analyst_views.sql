-- Views for analysts: duplicate-free, latest-version rows for a tenant ('' = every tenant) and a
-- time range [since, until). Usage:
--   SELECT ... FROM gateledger.mcp_calls_latest(tenant = 'acme', since = '2026-11-01', until = '2026-12-01')
-- The range and tenant are parameters so they filter by the primary key (tenant, time, id) BEFORE
-- versions are collapsed: FINAL here merges only the granules of the range, never the whole table
-- (measured on 10M rows: a month in 0.1 s, 11x faster than ORDER BY ... LIMIT 1 BY id). Every
-- version of an event shares tenant, time and id, so collapsing inside the range is exact, and an
-- outer WHERE on any other column applies to the latest version only.

CREATE VIEW IF NOT EXISTS $db.raw_events_latest $on_cluster AS
SELECT * FROM $db.raw_events FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.mcp_calls_latest $on_cluster AS
SELECT * FROM $db.mcp_calls FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.llm_calls_latest $on_cluster AS
SELECT * FROM $db.llm_calls FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.policy_decisions_latest $on_cluster AS
SELECT * FROM $db.policy_decisions FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.webhook_decisions_latest $on_cluster AS
SELECT * FROM $db.webhook_decisions FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.interactions_latest $on_cluster AS
SELECT * FROM $db.interactions FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.cost_ledger_latest $on_cluster AS
SELECT * FROM $db.cost_ledger FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.budget_alerts_latest $on_cluster AS
SELECT * FROM $db.budget_alerts FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.findings_latest $on_cluster AS
SELECT * FROM $db.findings FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.dead_letters_latest $on_cluster AS
SELECT * FROM $db.dead_letters FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

-- Usage per minute with the quantile sketches merged (latencies in ms; NaN where no call had one).
CREATE VIEW IF NOT EXISTS $db.usage_per_minute_v $on_cluster AS
SELECT
    tenant, minute, kind, mcp_server_id, tool_name, provider, model,
    sum(calls) AS calls,
    sum(errors) AS errors,
    sum(denied) AS denied,
    quantilesTDigestIfMerge(0.5, 0.9, 0.95, 0.99)(latency_ms) AS latency_quantiles,
    latency_quantiles[1] AS latency_p50_ms,
    latency_quantiles[2] AS latency_p90_ms,
    latency_quantiles[3] AS latency_p95_ms,
    latency_quantiles[4] AS latency_p99_ms,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(total_tokens) AS total_tokens,
    sum(cost_usd) AS cost_usd
FROM $db.usage_per_minute
WHERE minute >= {since:DateTime64(6, 'UTC')} AND minute < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String})
GROUP BY tenant, minute, kind, mcp_server_id, tool_name, provider, model;

-- Cost per UTC day per budget-scope dimension, merged.
CREATE VIEW IF NOT EXISTS $db.cost_daily_v $on_cluster AS
SELECT
    tenant, day, team, user_id, client_id, mcp_server_id, provider, model,
    sum(entries) AS entries,
    sum(unpriced) AS unpriced,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(cost_usd) AS cost_usd
FROM $db.cost_daily
WHERE day >= toDate({since:DateTime64(6, 'UTC')}) AND day < toDate({until:DateTime64(6, 'UTC')})
  AND ({tenant:String} = '' OR tenant = {tenant:String})
GROUP BY tenant, day, team, user_id, client_id, mcp_server_id, provider, model;

-- Everything one user did in a time range, newest versions only, in one timeline (investigations).
CREATE VIEW IF NOT EXISTS $db.user_activity $on_cluster AS
SELECT time, 'mcp_call' AS activity, id, tenant, concat(if(mcp_server_name != '', mcp_server_name, mcp_server_id), ' / ', method, if(tool_name != '', concat(' ', tool_name), '')) AS what, toString(status) AS outcome, request_id AS correlation
FROM $db.mcp_calls FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
UNION ALL
SELECT time, 'llm_call' AS activity, id, tenant, concat(provider, ' / ', model) AS what, toString(status) AS outcome, request_id AS correlation
FROM $db.llm_calls FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
UNION ALL
SELECT time, 'policy_decision' AS activity, id, tenant, concat('pre-check by ', client_id) AS what, if(approved, 'approved', concat('blocked: ', block_reason)) AS outcome, request_id AS correlation
FROM $db.policy_decisions FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
UNION ALL
SELECT time, 'webhook_decision' AS activity, id, tenant, concat(filter_name, ' on ', method, if(tool_name != '', concat(' ', tool_name), '')) AS what, concat(toString(decision), if(reason != '', concat(': ', reason), '')) AS outcome, request_id AS correlation
FROM $db.webhook_decisions FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
UNION ALL
SELECT time, 'interaction' AS activity, id, tenant, concat(toString(llm_calls), ' LLM call(s), ', toString(tool_calls), ' tool call(s)') AS what, toString(status) AS outcome, request_id AS correlation
FROM $db.interactions FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
UNION ALL
SELECT time, 'cost' AS activity, id, tenant, if(kind = 'llm', concat(provider, ' / ', model), concat(mcp_server_id, ' / ', tool_name)) AS what, concat(toString(total_cost_usd), ' ', currency, if(unpriced, ' (unpriced)', '')) AS outcome, interaction_id AS correlation
FROM $db.cost_ledger FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
UNION ALL
SELECT time, 'finding' AS activity, id, tenant, toString(kind) AS what, concat(toString(severity), ': ', description) AS outcome, request_id AS correlation
FROM $db.findings FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String};
