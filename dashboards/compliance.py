"""Compliance: what was blocked, rejected or denied, what slipped through, and every interaction to drill into."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards import variables
from dashboards.board import FULL_TABLE, HALF, HALF_TABLE, LIST, STAT, Board
from dashboards.panels import (
    COUNT,
    GOOD_BAD,
    MS,
    NEUTRAL,
    USD,
    bars_per_interval,
    ch_table,
    ch_timeseries,
    link,
    stat_panel,
    table_panel,
)
from dashboards.sql import TENANT, TIME, calls, decisions, latest, latest_page, page_order
from gateledger.tables import VERSIONS, Table

UID = "gateledger-compliance"

# MCP calls per minute at their latest version (calls_per_minute): sum(calls), never count().
MCP_CALLS = calls("mcp", TENANT)
# Findings, most severe first: one page, chosen from the severity and time alone (as the interactions
# below); the most severe standing findings of the range are its candidates (issue 22).
FINDINGS_RANK = "multiIf(severity = 'critical', 0, severity = 'high', 1, severity = 'medium', 2, 3)"
FINDINGS_ORDER = page_order(FINDINGS_RANK)
FINDINGS_PAGE = 500
FINDINGS = latest_page(
    Table.FINDINGS,
    "time, kind, severity, interaction_id, user_id, client_id, description, detected_at",
    FINDINGS_PAGE,
    TIME,
    TENANT,
    last=FINDINGS_RANK,
    sort_columns="severity",
)
# The list shows one page: chosen from the sort columns alone, then only its rows are read whole
# (a month of interactions is millions of rows, each with arrays and strings; issue 22).
INTERACTIONS_LAST = "status = 'ok'"
INTERACTIONS_ORDER = page_order(INTERACTIONS_LAST)
INTERACTIONS_PAGE = 1000
INTERACTIONS = latest_page(
    Table.INTERACTIONS,
    "time, tenant, user_id, client_id, status, approved, block_reason, policies, llm_calls, tool_calls,"
    " webhook_rejections, errors, cost_usd, latency_ms, models, mcp_servers, close_reason",
    INTERACTIONS_PAGE,
    TIME,
    TENANT,
    last=INTERACTIONS_LAST,
    sort_columns="status",
    # the candidates' versions found by id (migration 0176), not by a scan of the range's ids
    versions=VERSIONS[Table.INTERACTIONS],
)
LOCAL_AGENT_CALLS = latest(
    Table.LOCAL_AGENT_TOOL_CALLS,
    "time, occurred_at, device_id, hostname, credential, reported_user, agent_provider, tool_name, tool_kind,"
    " status, session_id",
    TIME,
    TENANT,
)
# The policies that blocked a pre-check; the block reason when the pre-check named none.
BLOCKING_POLICY = (
    "arrayJoin(if(empty(policies), [if(block_reason = '', '(unspecified)', block_reason)], policies))"
)
# Decisions per minute at their latest version (decisions_per_minute): count with sum(decisions), or
# sum(policy_hits) per blocking policy.
DECISIONS = decisions(TENANT)
BLOCKED = f"source = '{Table.POLICY_DECISIONS}' AND outcome = 'blocked'"
REJECTED = f"source = '{Table.WEBHOOK_DECISIONS}' AND outcome = 'rejected'"
DRILL_DOWN = link(
    "Drill into interaction ${__value.raw}",
    "/d/gateledger-compliance/gateledger-compliance?var-interaction=${__value.raw}&${__url_time_range}",
)
FINDING_DESCRIPTIONS = {
    "unaudited_llm_call": "Approved pre-checks with no LLM-call audit before they expired.",
    "orphan_audit": "LLM-call audits whose context id no pre-check issued.",
    "policy_bypass": "An LLM or tool call that ran after a blocked pre-check or a rejected webhook.",
}
# Every row of the interaction being drilled into: matched by the raw event ids the interaction names,
# and by its request id and context ids (empty keys never match); the interaction at its latest version
# (latest(): a withdrawn one shows nothing of its own).
_INTERACTION = latest(Table.INTERACTIONS, "version, event_ids, request_id, context_ids",
                      "id = ${interaction:sqlstring}")
BY_EVENTS = "hasAny(event_ids, ev)"
BY_REQUEST = "(req != '' AND request_id = req)"
BY_CONTEXT = "(context_id != '' AND has(ctx, context_id))"


def _of_interaction(table: Table, *matches: str) -> str:
    """The rows of ``table`` any of ``matches`` finds, with the keys that find them first: each match
    alone reads only the granules its skip index (migration 0083's and 0003's bloom filters) lets
    through, where ClickHouse reads every granule for the three ORed together; the rows are then
    read by their sorting key (every version of an event shares it)."""
    keys = " UNION ALL ".join(f"SELECT tenant, time, id FROM {table} WHERE {TIME} AND {m}" for m in matches)
    return f"({' OR '.join(matches)}) AND (tenant, time, id) IN ({keys})"


# An aggregate (of the one row latest() keeps) answers even when there is none: a scalar subquery may not.
INTERACTION_EVENTS = f"""WITH
  (SELECT argMax(event_ids, version) FROM {_INTERACTION}) AS ev,
  (SELECT argMax(request_id, version) FROM {_INTERACTION}) AS req,
  (SELECT argMax(context_ids, version) FROM {_INTERACTION}) AS ctx
SELECT time, record, id, who, what, outcome, detail, cost_usd FROM (
  SELECT time, 'policy decision' AS record, id, user_id AS who, arrayStringConcat(policies, ', ') AS what,
    if(approved, 'approved', 'blocked') AS outcome, block_reason AS detail, CAST(NULL, 'Nullable(Decimal(38, 12))') AS cost_usd
  FROM {latest(Table.POLICY_DECISIONS, "time, user_id, policies, approved, block_reason", TIME, _of_interaction(Table.POLICY_DECISIONS, BY_EVENTS, BY_REQUEST, BY_CONTEXT))}
  UNION ALL
  SELECT time, 'llm call', id, user_id, concat(provider, '/', model), toString(status), error, NULL
  FROM {latest(Table.LLM_CALLS, "time, user_id, provider, model, status, error", TIME, _of_interaction(Table.LLM_CALLS, BY_EVENTS, BY_REQUEST, BY_CONTEXT))}
  UNION ALL
  SELECT time, 'mcp call', id, user_id, concat(mcp_server_id, ' ', method, ' ', tool_name), toString(status), error, NULL
  FROM {latest(Table.MCP_CALLS, "time, user_id, mcp_server_id, method, tool_name, status, error", TIME, _of_interaction(Table.MCP_CALLS, BY_EVENTS, BY_REQUEST))}
  UNION ALL
  SELECT time, 'webhook decision', id, user_id, concat(filter_name, ' ', phase, ' ', tool_name), toString(decision), reason, NULL
  FROM {latest(Table.WEBHOOK_DECISIONS, "time, user_id, filter_name, phase, tool_name, decision, reason", TIME, _of_interaction(Table.WEBHOOK_DECISIONS, BY_EVENTS, BY_REQUEST))}
  UNION ALL
  SELECT time, 'cost', id, user_id, concat(toString(kind), ' ', provider, ' ', model, tool_name), price_version, if(unpriced, 'unpriced', ''), total_cost_usd
  FROM {latest(Table.COST_LEDGER, "time, user_id, kind, provider, model, tool_name, price_version, unpriced, total_cost_usd", TIME, "interaction_id = ${interaction:sqlstring}")}
  UNION ALL
  SELECT time, 'finding', id, user_id, toString(kind), toString(severity), description, NULL
  FROM {latest(Table.FINDINGS, "time, user_id, kind, severity, description", TIME, "interaction_id = ${interaction:sqlstring}")}
)
ORDER BY time, record"""


def build() -> dashboard.Dashboard:
    """The compliance dashboard."""
    b = Board(
        UID,
        "gateledger · Compliance",
        description="Blocked pre-checks, webhook rejections, authorization denials, unaudited calls, orphan audits "
        "and policy bypasses, with a drill-down into any interaction.",
        tags=["gateledger", "compliance"],
        time_from="now-7d",
        refresh="5m",
        variables=[variables.tenant(), variables.interaction()],
    )
    _in_range(b)
    _over_time(b)
    _details(b)
    _interaction(b)
    return b.build()


def _in_range(b: Board) -> None:
    """The row "In the time range"."""
    b.row("In the time range")
    b.add(
        stat_panel(
            "Blocked pre-checks",
            ch_table(f"SELECT sumIf(decisions, {BLOCKED}) AS blocked FROM {DECISIONS}"),
            unit=COUNT,
            steps=NEUTRAL,
            description="AxonFlow pre-checks that denied the request.",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Webhook rejections",
            ch_table(f"SELECT sumIf(decisions, {REJECTED}) AS rejected FROM {DECISIONS}"),
            unit=COUNT,
            steps=NEUTRAL,
            description="MCP messages a webhook filter rejected.",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Authorization denials",
            ch_table(f"SELECT sumIf(calls, status = 'denied') AS denied FROM {MCP_CALLS}"),
            unit=COUNT,
            steps=NEUTRAL,
            description=f"MCP calls the gateway denied ({Table.MCP_CALLS}.status = denied).",
        ),
        STAT,
    )
    for title, kind in (
        ("Unaudited LLM calls", "unaudited_llm_call"),
        ("Orphan audits", "orphan_audit"),
        ("Policy bypasses", "policy_bypass"),
    ):
        b.add(
            stat_panel(
                title,
                ch_table(f"SELECT sumIf(decisions, source = '{Table.FINDINGS}' AND outcome = '{kind}') AS findings FROM {DECISIONS}"),
                unit=COUNT,
                steps=GOOD_BAD,
                description=FINDING_DESCRIPTIONS[kind],
            ),
            STAT,
        )


def _over_time(b: Board) -> None:
    """The row "Over time"."""
    b.row("Over time")
    b.add(
        bars_per_interval(
            "Blocked pre-checks by policy",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t, policy, sum(policy_hits) AS blocked\n"
                f"FROM {DECISIONS}\nWHERE {BLOCKED}\nGROUP BY t, policy HAVING blocked > 0 ORDER BY t"
            ),
            unit=COUNT,
            description="Denied pre-checks per interval, by the policy that denied them.",
        ),
        HALF,
    )
    b.add(
        bars_per_interval(
            "Webhook rejections by filter",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t, if(filter_name = '', '(unnamed)', filter_name) AS filter,"
                " sum(decisions) AS rejected\n"
                f"FROM {DECISIONS}\nWHERE {REJECTED}\nGROUP BY t, filter HAVING rejected > 0 ORDER BY t"
            ),
            unit=COUNT,
            description="MCP messages rejected per interval, by webhook filter.",
        ),
        HALF,
    )
    b.add(
        bars_per_interval(
            "Authorization denials by server",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t, mcp_server_id AS server, sum(calls) AS denied\n"
                f"FROM {MCP_CALLS}\nWHERE status = 'denied'\nGROUP BY t, server HAVING denied > 0 ORDER BY t"
            ),
            unit=COUNT,
            description="MCP calls denied per interval, by server.",
        ),
        HALF,
    )
    b.add(
        bars_per_interval(
            "Findings by kind",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t, outcome AS kind, sum(decisions) AS findings\n"
                f"FROM {DECISIONS}\nWHERE source = '{Table.FINDINGS}'\nGROUP BY t, kind HAVING findings > 0 ORDER BY t"
            ),
            unit=COUNT,
            description="Unaudited LLM calls, orphan audits, policy bypasses, suspect usage and unpriced models.",
        ),
        HALF,
    )


def _details(b: Board) -> None:
    """The row "Details"."""
    b.row("Details")
    b.add(
        table_panel(
            "Blocked pre-checks by policy and reason",
            ch_table(
                "SELECT policy, block_reason, sum(hits) AS blocked, countIf(hits > 0) AS users, max(last) AS last_seen\n"
                "FROM (SELECT policy, block_reason, user_id, sum(policy_hits) AS hits, max(last_time) AS last\n"
                f"  FROM {DECISIONS} WHERE {BLOCKED} GROUP BY policy, block_reason, user_id)\n"
                "GROUP BY policy, block_reason HAVING blocked > 0 ORDER BY blocked DESC"
            ),
            description="Which policies block, why, and how many users they stop.",
            sort_by="blocked",
        ),
        HALF_TABLE,
    )
    b.add(
        table_panel(
            "Denials and rejections by tool",
            ch_table(
                "SELECT server, tool, sum(denied) AS denied, sum(rejected) AS rejected, max(last_seen) AS last_seen FROM (\n"
                "  SELECT mcp_server_id AS server, tool_name AS tool, sum(calls) AS denied, 0 AS rejected, max(last_time) AS last_seen\n"
                f"  FROM {MCP_CALLS} WHERE status = 'denied' GROUP BY server, tool HAVING denied > 0\n"
                "  UNION ALL\n"
                "  SELECT mcp_server_id, tool_name, 0, sum(decisions) AS n, max(last_time)\n"
                f"  FROM {DECISIONS} WHERE {REJECTED} GROUP BY mcp_server_id, tool_name HAVING n > 0\n"
                ") GROUP BY server, tool ORDER BY denied + rejected DESC"
            ),
            description="Tools whose calls the gateway denied or a webhook filter rejected.",
        ),
        HALF_TABLE,
    )
    b.add(
        table_panel(
            "Findings",
            ch_table(
                "SELECT time, kind, severity, user_id, client_id, description, interaction_id, detected_at\n"
                f"FROM {FINDINGS}\n"
                f"ORDER BY {FINDINGS_ORDER} LIMIT {FINDINGS_PAGE}"
            ),
            description="Every compliance finding, most severe first; click an interaction to drill into it.",
            links={"interaction_id": DRILL_DOWN},
        ),
        FULL_TABLE,
    )
    b.add(
        table_panel(
            "Local agent tool calls by device",
            ch_table(
                "SELECT device_id, any(hostname) AS hostname, any(credential) AS credential,"
                " any(reported_user) AS reported_user, agent_provider, tool_name, tool_kind, count() AS calls,\n"
                "  countIf(status != 'success') AS not_ok, max(time) AS last_recorded, max(occurred_at) AS last_reported\n"
                f"FROM {LOCAL_AGENT_CALLS}\n"
                "GROUP BY device_id, agent_provider, tool_name, tool_kind ORDER BY calls DESC LIMIT 500"
            ),
            description="Who ran which local tool on which device: tool calls Claude Code, Codex, Cursor or VS Code "
            "reported to Obot (v0.24+). last_recorded is Obot's clock; last_reported is the device's own.",
        ),
        FULL_TABLE,
    )
    b.add(
        table_panel(
            "Interactions",
            ch_table(
                "SELECT time, id AS interaction_id, tenant, user_id, client_id, status, approved, block_reason,\n"
                "  arrayStringConcat(policies, ', ') AS policies, llm_calls, tool_calls, webhook_rejections, errors,\n"
                "  cost_usd, latency_ms, arrayStringConcat(models, ', ') AS models,"
                " arrayStringConcat(mcp_servers, ', ') AS servers, close_reason\n"
                f"FROM {INTERACTIONS}\n"
                f"ORDER BY {INTERACTIONS_ORDER} LIMIT {INTERACTIONS_PAGE}"
            ),
            description="Every user-level request (blocked, bypassing, failing and incomplete first); click an id to "
            "see all its records below.",
            column_units={"cost_usd": USD, "latency_ms": MS},
            links={"interaction_id": DRILL_DOWN},
        ),
        LIST,
    )


def _interaction(b: Board) -> None:
    """The row "Interaction $interaction"."""
    b.row("Interaction $interaction")
    b.add(
        table_panel(
            "Everything recorded for interaction $interaction",
            ch_table(INTERACTION_EVENTS),
            description="Policy decisions, LLM calls, MCP calls, webhook decisions, costs and findings of the selected "
            "interaction, in time order. Set the interaction id above or click one in a table.",
            column_units={"cost_usd": USD},
        ),
        LIST,
    )
