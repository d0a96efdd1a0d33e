-- An interaction's time is its earliest event, so an earlier event arriving after it was emitted
-- (a tool call whose halves merged late, a pre-check read late) moves it. The tables are sorted by
-- (tenant, time, id) and FINAL collapses only rows sharing that key: the interaction views take the
-- newest version per id on top of FINAL (interactions_with_cost always did).

CREATE OR REPLACE VIEW $db.interactions_latest $on_cluster AS
SELECT * FROM $db.interactions FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String})
ORDER BY id, version DESC
LIMIT 1 BY id;

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
