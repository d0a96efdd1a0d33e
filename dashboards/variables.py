"""Template variables shared by the dashboards: tenant, MCP server, model (multi-value, with All).

Their option queries are panel-like SQL too, so the tests expand and run them like panels.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.models import dashboard

from dashboards.datasources import CLICKHOUSE
from dashboards.sql import TENANT, TIME, calls, landings, where
from gateledger.tables import Table

ALL_OPTION = dashboard.VariableOption(selected=True, text="All", value="$__all")

_HAS_SERVER = "mcp_server_id != ''"
_HAS_MODEL = "model != ''"

# Option queries, by variable name. Two columns: the plugin takes the first as value, the second as text.
OPTION_SQL: dict[str, str] = {
    "tenant": f"SELECT DISTINCT tenant FROM {landings((Table.RAW_EVENTS,))} ORDER BY tenant",
    # The servers from the calls rollup; each one's name from its calls at the moment it was last called.
    "server": (
        "SELECT mcp_server_id, if(argMax(mcp_server_name, time) = '', mcp_server_id, argMax(mcp_server_name, time)) AS name "
        f"FROM {Table.MCP_CALLS} WHERE {where(TIME, TENANT, _HAS_SERVER)} AND time IN ("
        f"SELECT max(last_time) FROM {calls('mcp', TENANT, _HAS_SERVER)} GROUP BY mcp_server_id) "
        "GROUP BY mcp_server_id ORDER BY name"
    ),
    "model": f"SELECT DISTINCT model FROM {calls('llm', TENANT, _HAS_MODEL)} ORDER BY model",
}

LABELS = {"tenant": "Tenant", "server": "MCP server", "model": "Model"}


def query_variable(name: str) -> dash_b.QueryVariable:
    """A multi-value ClickHouse query variable defaulting to All, refreshed when the time range changes."""
    return (
        dash_b.QueryVariable(name)
        .label(LABELS[name])
        .datasource(CLICKHOUSE)
        .query(OPTION_SQL[name])
        .definition(OPTION_SQL[name])
        .multi(True)
        .include_all(True)
        .current(ALL_OPTION)
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
    )


def tenant() -> dash_b.QueryVariable:
    """The tenant(s) every panel is filtered to."""
    return query_variable("tenant")


def server() -> dash_b.QueryVariable:
    """MCP server(s), by server id."""
    return query_variable("server")


def model() -> dash_b.QueryVariable:
    """LLM model(s) as requested."""
    return query_variable("model")


def interaction() -> dash_b.TextBoxVariable:
    """One interaction id to drill into (set by the links of the interactions table)."""
    return dash_b.TextBoxVariable("interaction").label("Interaction id").default_value("")
