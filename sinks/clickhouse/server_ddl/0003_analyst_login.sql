-- The analysts' and Grafana's login: read-only, every tenant. Applied only when a user and password
-- are configured; templated with $user (identifier) and $password (a quoted SQL string).
-- ALTER after CREATE, so a changed password (secret rotation) takes effect on the next apply.
CREATE USER IF NOT EXISTS $user $on_cluster IDENTIFIED WITH sha256_password BY $password;
ALTER USER $user $on_cluster IDENTIFIED WITH sha256_password BY $password;
GRANT $on_cluster gateledger_analyst TO $user;
ALTER USER $user $on_cluster DEFAULT ROLE gateledger_analyst;
