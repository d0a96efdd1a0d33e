-- AxonFlow's budget warnings as facts beside gateledger's own budget state. A warn-action budget
-- over its limit makes AxonFlow approve with an X-Budget-Warning header (platform/agent/
-- gateway_handlers.go, issue #1082); the tap records it on the PolicyDecision (budget_warning,
-- migration 0070). budget_warnings_latest: one row per warned answer. budget_signals_latest:
-- gateledger's budget alerts and AxonFlow's warnings in one list, `origin` telling them apart.
CREATE VIEW IF NOT EXISTS $db.budget_warnings_latest $on_cluster AS
SELECT id, tenant, time, gate, approved, budget_id, budget_warning AS warning, client_id, user_id, context_id,
       request_id, trace_id
FROM $db.policy_decisions FINAL
WHERE budget_warning != ''
  AND time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});

CREATE VIEW IF NOT EXISTS $db.budget_signals_latest $on_cluster AS
SELECT 'gateledger' AS origin, tenant, time, budget_id, budget_name, toString(kind) AS kind, threshold_pct,
       CAST(spend_usd AS Nullable(Decimal(38, 12))) AS spend_usd,
       CAST(limit_usd AS Nullable(Decimal(38, 12))) AS limit_usd, toString(action) AS action, '' AS message,
       '' AS client_id, triggering_event_id AS event_id
FROM $db.budget_alerts FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String})
UNION ALL
SELECT 'axonflow' AS origin, tenant, time, budget_id, '' AS budget_name, 'axonflow_warning' AS kind,
       toUInt16(0) AS threshold_pct, CAST(NULL AS Nullable(Decimal(38, 12))) AS spend_usd,
       CAST(NULL AS Nullable(Decimal(38, 12))) AS limit_usd, 'warn' AS action, budget_warning AS message,
       toString(client_id) AS client_id, id AS event_id
FROM $db.policy_decisions FINAL
WHERE budget_warning != ''
  AND time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});
