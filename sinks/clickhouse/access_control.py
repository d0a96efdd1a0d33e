"""Server-only DDL: a read-only analyst role and per-tenant row policies (``server_ddl/*.sql``).

chDB has no users, grants or row policies, so this is applied only when the target is a ClickHouse
server, by the sink at start-up (``GATELEDGER_SINK_APPLY_SERVER_DDL``) after the migrations. Every
statement is idempotent. Tenants listed in ``GATELEDGER_SINK_ANALYST_TENANTS`` get a role each
(``gateledger_tenant_<name>``) that sees only that tenant's rows; grant it to a user with
``GRANT gateledger_tenant_acme TO alice``.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from string import Template

from clickhouse_connect.driver.client import Client

from gateledger.clickhouse.migrate import template_vars
from gateledger.clickhouse.sqlsplit import split_statements
from gateledger.settings import ClickHouseSettings
from sinks.clickhouse.settings import SinkSettings

_SAFE = re.compile(r"[^A-Za-z0-9_]")


def quote_identifier(name: str) -> str:
    """A backtick-quoted identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tenant_role(tenant: str) -> str:
    """The role name of a tenant: readable, and distinct even when two names sanitize alike."""
    safe = _SAFE.sub("_", tenant)
    if safe != tenant or not tenant:
        safe += "_" + hashlib.sha256(tenant.encode()).hexdigest()[:8]
    return f"gateledger_tenant_{safe}"


def _template(name: str) -> str:
    return (resources.files("sinks.clickhouse") / "server_ddl" / name).read_text()


def render_server_ddl(ch: ClickHouseSettings, tenants: list[str], analyst_user: str = "",
                      analyst_password: str = "") -> list[str]:
    """The statements for this server, in order (the analyst login only when both are given)."""
    base = template_vars(ch) | {"service_user": quote_identifier(ch.username)}
    statements = split_statements(Template(_template("0001_analyst_role.sql")).substitute(base))
    tenant_sql = Template(_template("0002_tenant_role.sql"))
    for tenant in tenants:
        values = base | {"role": quote_identifier(tenant_role(tenant)), "tenant_literal": quote_literal(tenant)}
        statements += split_statements(tenant_sql.substitute(values))
    if analyst_user and analyst_password:
        values = base | {"user": quote_identifier(analyst_user), "password": quote_literal(analyst_password)}
        statements += split_statements(Template(_template("0003_analyst_login.sql")).substitute(values))
    return statements


def apply_server_ddl(client: Client, ch: ClickHouseSettings, tenants: list[str], analyst_user: str = "",
                     analyst_password: str = "") -> list[str]:
    """Create or confirm the roles, policies and analyst login; returns the statements run."""
    statements = render_server_ddl(ch, tenants, analyst_user, analyst_password)
    for stmt in statements:
        client.command(stmt)
    return statements


def apply_from_settings(client: Client, ch: ClickHouseSettings, sink: SinkSettings) -> int:
    """Apply the server DDL as the sink settings configure it; returns how many statements ran."""
    return len(apply_server_ddl(client, ch, parse_tenants(sink.analyst_tenants), sink.analyst_user,
                                sink.analyst_password.get_secret_value()))


def parse_tenants(value: str) -> list[str]:
    """Tenants from a comma-separated setting."""
    return [t.strip() for t in value.split(",") if t.strip()]
