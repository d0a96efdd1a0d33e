"""Cost and budgets: where the money goes, how fast, and which budgets are about to run out."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards import variables
from dashboards.board import HALF, HALF_TABLE, STAT, Board
from dashboards.panels import (
    COUNT,
    GOOD_BAD,
    PERCENT,
    USD,
    USD_PER_HOUR,
    UTILIZATION,
    bargauge_panel,
    bars_per_interval,
    ch_table,
    ch_timeseries,
    link,
    prom,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from dashboards.sql import (
    ANY_INTERVAL,
    HOURLY_INTERVAL,
    ROLLUP_INTERVAL,
    TENANT,
    TIME,
    any_of_if_set,
    costs,
    latest,
    user_costs,
    user_costs_over_time,
)
from gateledger.tables import Table

UID = "gateledger-cost"
# Each filter narrows its own dimension: choosing a model keeps tool costs (which have none), choosing
# a server keeps LLM costs not attributed to a server.
SERVER = any_of_if_set("mcp_server_id", "server")
MODEL = any_of_if_set("model", "model")

# Columns of the cost ledger's newest version per cost entry (a restatement supersedes the original).
COST_COLUMNS = (
    "time, tenant, kind, event_id, interaction_id, user_id, team, client_id, mcp_server_id, tool_name,"
    " provider, model, input_tokens, output_tokens, total_cost_usd, unpriced"
)
# The ledger's entries summed per minute and dimension (cost_per_minute), filtered by every variable:
# what every money panel reads.
# Count entries with sum(entries), never count(). Whole hours come from cost_per_hour (a row per hour and
# dimension, no user): in the panels over time when the interval is whole hours, always in the others.
COSTS = costs(TENANT, MODEL, SERVER, hours=HOURLY_INTERVAL)
COSTS_IN_RANGE = costs(TENANT, MODEL, SERVER, hours=ANY_INTERVAL)
# The same entries per user (whole hours from user_cost_per_hour): what ranks users over the range.
# With no model or server chosen, whole hours come from user_spend_per_hour (a row per user and hour).
UNFILTERED = "$__conditionalAll(0, $model) AND $__conditionalAll(0, $server)"
USER_COSTS = user_costs(TENANT, MODEL, SERVER, unfiltered=UNFILTERED)
# The same per minute, or per hour at an hourly interval: the top spenders' series.
USER_COSTS_OVER_TIME = user_costs_over_time(TENANT, MODEL, SERVER, unfiltered=UNFILTERED)
# The entries at the moment each unpriced model or tool was last used (point lookups on the sorting
# key): the interaction to link to.
LAST_UNPRICED = latest(
    Table.COST_LEDGER, "time, kind, provider, model, mcp_server_id, tool_name, unpriced, interaction_id", TIME, TENANT,
    MODEL, SERVER,
    f"time IN (SELECT max(last_time) FROM {COSTS_IN_RANGE} WHERE unpriced = 1 GROUP BY kind, provider, model, mcp_server_id, tool_name)",
)
BUDGET_ALERTS = latest(
    Table.BUDGET_ALERTS,
    "time, budget_id, budget_name, kind, threshold_pct, spend_usd, limit_usd, utilization, projected_spend_usd,"
    " period_start, period_end, action, late, fired_at",
    TIME,
    TENANT,
)
INTERACTION_LINK = link(
    "Open interaction ${__value.raw}",
    "/d/gateledger-compliance/gateledger-compliance?var-interaction=${__value.raw}&${__url_time_range}",
)
RANGE_HOURS = "greatest(dateDiff('second', $__fromTime, $__toTime), 1) / 3600"


def build() -> dashboard.Dashboard:
    """The cost and budgets dashboard."""
    b = Board(
        UID,
        "gateledger · Cost and budgets",
        description="Spend by tenant, model, MCP server and user; budget utilization, burn rate and projected "
        "exhaustion; unpriced usage.",
        tags=["gateledger", "cost", "budgets"],
        time_from="now-7d",
        refresh="5m",
        variables=[variables.tenant(), variables.server(), variables.model()],
    )
    _spend_in_range(b)
    _spend_over_time(b)
    _budgets(b)
    _spenders_and_unpriced(b)
    return b.build()


def _spend_in_range(b: Board) -> None:
    """The row "Spend in the time range"."""
    b.row("Spend in the time range")
    b.add(
        stat_panel(
            "Total spend",
            ch_table(f"SELECT sum(cost_usd) AS spend_usd FROM {COSTS_IN_RANGE}"),
            unit=USD,
            decimals=2,
            description="All priced LLM and tool calls (latest price version of each entry).",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "LLM spend",
            ch_table(f"SELECT sumIf(cost_usd, kind = 'llm') AS llm_spend_usd FROM {COSTS_IN_RANGE}"),
            unit=USD,
            decimals=2,
            description="Cost of LLM calls.",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "MCP tool spend",
            ch_table(f"SELECT sumIf(cost_usd, kind = 'tool') AS tool_spend_usd FROM {COSTS_IN_RANGE}"),
            unit=USD,
            decimals=2,
            description="Cost of priced MCP tool calls.",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Burn rate",
            ch_table(f"SELECT toFloat64(sum(cost_usd)) / ({RANGE_HOURS}) AS usd_per_hour FROM {COSTS_IN_RANGE}"),
            unit=USD_PER_HOUR,
            decimals=2,
            description="Average spend per hour over the time range (USD/h).",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Unpriced calls",
            ch_table(f"SELECT sumIf(entries, unpriced = 1) AS unpriced_calls FROM {COSTS_IN_RANGE}"),
            unit=COUNT,
            steps=GOOD_BAD,
            description="Calls whose model or tool has no price in the catalog: their "
            "cost is unknown, never zero. Add them to the price catalog and restate.",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Budgets at or over limit",
            prom("count(gateledger_budget_utilization_ratio >= 1) or vector(0)", "budgets", instant=True),
            unit=COUNT,
            steps=GOOD_BAD,
            description="Budgets whose spend in the current period reached the limit.",
        ),
        STAT,
    )


def _spend_over_time(b: Board) -> None:
    """The row "Spend over time"."""
    b.row("Spend over time")
    b.add(
        bars_per_interval(
            "Spend by tenant",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, tenant, sum(cost_usd) AS spend_usd\nFROM {COSTS}\n"
                "GROUP BY t, tenant ORDER BY t"
            ),
            unit=USD,
            description="USD per interval, by tenant.",
        ),
        HALF,
    )
    b.add(
        bars_per_interval(
            "Spend by model",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, provider, model, sum(cost_usd) AS spend_usd\n"
                f"FROM {COSTS}\nWHERE kind = 'llm'\nGROUP BY t, provider, model ORDER BY t"
            ),
            unit=USD,
            description="USD of LLM calls per interval, by model.",
        ),
        HALF,
    )
    b.add(
        bars_per_interval(
            "Spend by MCP server",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, mcp_server_id AS server, sum(cost_usd) AS spend_usd\n"
                f"FROM {COSTS}\nWHERE mcp_server_id != ''\nGROUP BY t, server ORDER BY t"
            ),
            unit=USD,
            description="USD attributed to each MCP server (priced tool calls and LLM calls made for them).",
        ),
        HALF,
    )
    b.add(
        bars_per_interval(
            "Spend by user (top 10)",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, user_id, sum(cost_usd) AS spend_usd\nFROM {USER_COSTS_OVER_TIME}\n"
                "WHERE user_id IN (\n"
                f"  SELECT user_id FROM {USER_COSTS} WHERE user_id != '' GROUP BY user_id ORDER BY sum(cost_usd) DESC LIMIT 10)\n"
                "GROUP BY t, user_id ORDER BY t"
            ),
            unit=USD,
            description="USD per interval for the ten biggest spenders of the time range.",
        ),
        HALF,
    )


def _budgets(b: Board) -> None:
    """The row "Budgets"."""
    b.row("Budgets")
    b.add(
        bargauge_panel(
            "Budget utilization (current period)",
            prom(
                "max by (budget_name) (gateledger_budget_utilization_ratio)", "{{budget_name}}", instant=True
            ),
            unit=PERCENT,
            steps=UTILIZATION,
            max_value=1,
            description="Spend / limit per budget, live from the budget processor (thresholds 50/80/100 %).",
        ),
        HALF,
    )
    b.add(
        bargauge_panel(
            "Projected utilization at period end",
            prom(
                "max by (budget_name) (gateledger_budget_projected_utilization_ratio)",
                "{{budget_name}}",
                instant=True,
            ),
            unit=PERCENT,
            steps=UTILIZATION,
            max_value=1.5,
            description="Where each budget ends its period at the current burn rate; over 100 % means it will run out.",
        ),
        HALF,
    )
    b.add(
        timeseries_panel(
            "Burn rate by budget (USD/h)",
            prom("clamp_min(deriv(gateledger_budget_spend_usd[1h]) * 3600, 0)", "{{budget_name}}"),
            unit=USD_PER_HOUR,
            description="Rate of spend of each budget over the last hour (resets at period start).",
        ),
        HALF,
    )
    b.add(
        timeseries_panel(
            "Burn rate by tenant (USD/h)",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, tenant, sum(cost_usd) * 3600 / $__interval_s AS usd_per_hour\n"
                f"FROM {COSTS}\nGROUP BY t, tenant ORDER BY t"
            ),
            min_interval=ROLLUP_INTERVAL,
            unit=USD_PER_HOUR,
            description="Spend rate per tenant from the cost ledger (USD/h), by interval.",
        ),
        HALF,
    )
    b.add(
        table_panel(
            "Budget alerts fired",
            ch_table(
                "SELECT fired_at, budget_name, budget_id, kind, threshold_pct, spend_usd, limit_usd, utilization,\n"
                "  projected_spend_usd, period_start, period_end, action, late\n"
                f"FROM {BUDGET_ALERTS}\nORDER BY fired_at DESC LIMIT 200"
            ),
            description="Every threshold crossed (once per budget, period and threshold) and every projected-exhaustion "
            "warning. late = the crossing came from an event that arrived after its period.",
            column_units={
                "spend_usd": USD,
                "limit_usd": USD,
                "projected_spend_usd": USD,
                "utilization": PERCENT,
            },
            column_steps={"utilization": UTILIZATION},
        ),
        HALF_TABLE,
    )
    b.add(
        table_panel(
            "Projected exhaustion",
            ch_table(
                "SELECT budget_name, budget_id, period_end, limit_usd, spend_usd, projected_spend_usd,\n"
                "  toFloat64(projected_spend_usd) / toFloat64(limit_usd) AS projected_utilization,\n"
                "  fired_at + toIntervalSecond(toInt64((toFloat64(limit_usd) - toFloat64(spend_usd))\n"
                "    / greatest(toFloat64(spend_usd) / greatest(dateDiff('second', period_start, fired_at), 1), 1e-12)))"
                " AS exhausted_at\n"
                f"FROM {BUDGET_ALERTS}\nWHERE kind = 'projected' AND limit_usd > 0\n"
                "ORDER BY fired_at DESC LIMIT 1 BY budget_id, period_start"
            ),
            description="Budgets the burn rate says will run out before the period ends, and when (linear projection "
            "from the period start to the warning).",
            column_units={
                "limit_usd": USD,
                "spend_usd": USD,
                "projected_spend_usd": USD,
                "projected_utilization": PERCENT,
            },
            column_steps={"projected_utilization": UTILIZATION},
        ),
        HALF_TABLE,
    )


def _spenders_and_unpriced(b: Board) -> None:
    """The row "Who spends, and what is unpriced"."""
    b.row("Who spends, and what is unpriced")
    b.add(
        table_panel(
            "Top spenders",
            ch_table(
                "SELECT user_id, tenant, argMaxIf(team, last_time, entries > 0) AS team, sum(entries) AS calls,"
                " sum(cost) AS spend_usd,\n"
                "  toFloat64(spend_usd) / toFloat64(sum(spend_usd) OVER ()) AS share\n"
                "FROM (SELECT user_id, tenant, team, sum(entries) AS entries, sum(cost_usd) AS cost, max(last_time) AS last_time\n"
                f"  FROM {USER_COSTS} WHERE user_id != '' GROUP BY user_id, tenant, team)\n"
                "GROUP BY user_id, tenant HAVING calls > 0 ORDER BY spend_usd DESC LIMIT 25"
            ),
            description="Users by spend in the time range, with their share of the total shown here.",
            column_units={"spend_usd": USD, "share": PERCENT},
            sort_by="spend_usd",
        ),
        HALF_TABLE,
    )
    b.add(
        table_panel(
            "Unpriced usage",
            ch_table(
                "SELECT kind, provider, model, server, tool, n AS calls, input_tokens, output_tokens, last_seen, latest_interaction\n"
                "FROM (SELECT kind, provider, model, mcp_server_id AS server, tool_name AS tool, sum(entries) AS n,\n"
                "    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, max(last_time) AS last_seen\n"
                f"  FROM {COSTS_IN_RANGE} WHERE unpriced = 1 GROUP BY kind, provider, model, server, tool HAVING n > 0) AS u\n"
                "LEFT JOIN (SELECT toString(kind) AS kind, provider, model, mcp_server_id AS server, tool_name AS tool,\n"
                "    argMax(interaction_id, time) AS latest_interaction\n"
                f"  FROM {LAST_UNPRICED} WHERE unpriced GROUP BY kind, provider, model, server, tool) AS i\n"
                "  USING (kind, provider, model, server, tool)\n"
                "ORDER BY calls DESC"
            ),
            description="What ran without a price: add these to the price catalog, then `gateledger costs restate`.",
            links={"latest_interaction": INTERACTION_LINK},
            sort_by="calls",
        ),
        HALF_TABLE,
    )
