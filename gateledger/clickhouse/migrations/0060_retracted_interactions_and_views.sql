-- Late evidence changes conclusions (issue 16). An interaction can be withdrawn by a later version
-- (gateledger.contracts.events.Interaction.retracted) when every event it held turned out to belong
-- to another interaction (an audit taken for an orphan whose pre-check arrived late); a finding is
-- withdrawn by a later version with retracted = true (migration 0020). The views show what stands:
-- the newest version per id, and nothing withdrawn.
ALTER TABLE $db.interactions $on_cluster ADD COLUMN IF NOT EXISTS retracted Bool DEFAULT false;

CREATE OR REPLACE VIEW $db.interactions_latest $on_cluster AS
SELECT * FROM (
    SELECT * FROM $db.interactions FINAL
    WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
      AND ({tenant:String} = '' OR tenant = {tenant:String})
    ORDER BY id, version DESC
    LIMIT 1 BY id
)
WHERE NOT retracted;

CREATE OR REPLACE VIEW $db.findings_latest $on_cluster AS
SELECT * FROM (
    SELECT * FROM $db.findings FINAL
    WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
      AND ({tenant:String} = '' OR tenant = {tenant:String})
    ORDER BY id, version DESC
    LIMIT 1 BY id
)
WHERE NOT retracted;

CREATE OR REPLACE VIEW $db.user_activity $on_cluster AS
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
FROM (SELECT * FROM $db.interactions FINAL
      WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
        AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
      ORDER BY id, version DESC
      LIMIT 1 BY id)
WHERE NOT retracted
UNION ALL
SELECT time, 'cost' AS activity, id, tenant, if(kind = 'llm', concat(provider, ' / ', model), concat(mcp_server_id, ' / ', tool_name)) AS what, concat(toString(total_cost_usd), ' ', currency, if(unpriced, ' (unpriced)', '')) AS outcome, interaction_id AS correlation
FROM $db.cost_ledger FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String}
UNION ALL
SELECT time, 'finding' AS activity, id, tenant, toString(kind) AS what, concat(toString(severity), ': ', description) AS outcome, request_id AS correlation
FROM $db.findings FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND user_id = {user:String} AND NOT retracted;

CREATE OR REPLACE VIEW $db.interactions_with_cost $on_cluster AS
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
) AS c ON c.interaction_id = i.id
WHERE NOT i.retracted;
