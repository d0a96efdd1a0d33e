-- One read-only role per tenant, seeing only that tenant's rows in every table and view of $db.
-- Templated with $role (identifier) and $tenant_literal (a quoted SQL string), applied per tenant.
CREATE ROLE IF NOT EXISTS $role $on_cluster;
GRANT $on_cluster gateledger_reader TO $role;
CREATE ROW POLICY IF NOT EXISTS $role $on_cluster ON $db.*
    USING tenant = $tenant_literal TO $role;
