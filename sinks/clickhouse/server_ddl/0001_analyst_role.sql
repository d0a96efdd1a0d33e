-- Applied only on a ClickHouse server (chDB has no access control), after the migrations.
-- Idempotent, like the migrations; templated with $db, $on_cluster and $service_user.

-- What every analyst may do: read gateledger's tables and views, change query settings (readonly = 2,
-- so clients and parameterized views work), nothing else. The sink's internal state is not theirs.
CREATE SETTINGS PROFILE IF NOT EXISTS gateledger_reader_profile $on_cluster
    SETTINGS readonly = 2, max_execution_time = 600, max_result_rows = 10000000;
CREATE ROLE IF NOT EXISTS gateledger_reader $on_cluster SETTINGS PROFILE 'gateledger_reader_profile';
GRANT $on_cluster SELECT ON $db.* TO gateledger_reader;
REVOKE $on_cluster SELECT ON $db.sink_batches FROM gateledger_reader;
REVOKE $on_cluster SELECT ON $db.rollup_prior FROM gateledger_reader;
REVOKE $on_cluster SELECT ON $db.schema_migrations FROM gateledger_reader;

-- The read-only analyst of every tenant.
CREATE ROLE IF NOT EXISTS gateledger_analyst $on_cluster;
GRANT $on_cluster gateledger_reader TO gateledger_analyst;

-- Once any row policy exists on a table, users it does not name see no rows of it. The per-tenant
-- roles get their own policies (0002); the unrestricted analyst and the sink's service account see
-- every row.
CREATE ROW POLICY IF NOT EXISTS gateledger_unrestricted $on_cluster ON $db.*
    USING 1 TO gateledger_analyst, $service_user;
