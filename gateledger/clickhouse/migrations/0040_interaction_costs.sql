-- Cost per interaction (issue 5, phase 2). Every cost row carries the interaction id the
-- correlate stage gives its call (same root-key rule), so cost per interaction is a join on the
-- latest version of each cost row: restatements and re-priced call versions replace, duplicates
-- collapse. Parameters as for the <table>_latest views: tenant ('' = every tenant) and [since, until)
-- on the interaction's start time. Cost rows are read up to a day past `until`: an interaction's
-- calls happen after its start (at most interaction_timeout_s, default 5 minutes, for it to close).

CREATE VIEW IF NOT EXISTS $db.interaction_costs $on_cluster AS
SELECT
    interaction_id,
    tenant,
    sum(total_cost_usd) AS cost_usd,
    sumIf(total_cost_usd, kind = 'llm') AS llm_cost_usd,
    sumIf(total_cost_usd, kind = 'tool') AS tool_cost_usd,
    count() AS cost_rows,
    countIf(unpriced) AS unpriced_rows,
    groupUniqArray(price_version) AS price_versions
FROM $db.cost_ledger FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')} + INTERVAL 1 DAY
  AND ({tenant:String} = '' OR tenant = {tenant:String})
  AND interaction_id != ''
GROUP BY interaction_id, tenant;

CREATE VIEW IF NOT EXISTS $db.interactions_with_cost $on_cluster AS
SELECT
    i.id AS id, i.version AS version, i.tenant AS tenant, i.time AS time, i.end_time AS end_time,
    i.request_id AS request_id, i.user_id AS user_id, i.client_id AS client_id, i.status AS status,
    i.llm_calls AS llm_calls, i.tool_calls AS tool_calls, i.input_tokens AS input_tokens,
    i.output_tokens AS output_tokens, i.total_tokens AS total_tokens, i.models AS models,
    i.mcp_servers AS mcp_servers, i.tools AS tools, i.complete AS complete,
    -- NULL: no cost row for this interaction (nothing priced ran); unpriced rows make it a lower bound.
    if(c.cost_rows > 0, c.cost_usd, NULL) AS cost_usd,
    c.llm_cost_usd AS llm_cost_usd, c.tool_cost_usd AS tool_cost_usd,
    c.cost_rows AS cost_rows, c.unpriced_rows AS unpriced_rows
FROM
(
    SELECT * FROM $db.interactions FINAL
    WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
      AND ({tenant:String} = '' OR tenant = {tenant:String})
    ORDER BY id, version DESC
    LIMIT 1 BY id
) AS i
LEFT JOIN
(
    SELECT
        interaction_id, sum(total_cost_usd) AS cost_usd, sumIf(total_cost_usd, kind = 'llm') AS llm_cost_usd,
        sumIf(total_cost_usd, kind = 'tool') AS tool_cost_usd, count() AS cost_rows, countIf(unpriced) AS unpriced_rows
    FROM $db.cost_ledger FINAL
    WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')} + INTERVAL 1 DAY
      AND ({tenant:String} = '' OR tenant = {tenant:String})
      AND interaction_id != ''
    GROUP BY interaction_id
) AS c ON c.interaction_id = i.id;
