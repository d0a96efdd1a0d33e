"""Grafana-managed alert rules on the budget ledger (``budget_alerts`` in ClickHouse), and on AxonFlow's own
budget warnings (``policy_decisions.budget_warning``).

Why both these and the Prometheus rules: the Prometheus rules watch the live budget gauges, which
describe the *current* period. A late event can cross a threshold in an *earlier* period; the
budget processor records that crossing (``late = true``) in ``budget_alerts``, and only a rule on
the ledger sees it. These rules fire for every threshold-100 % or projected-exhaustion row fired in
the last 15 minutes, labelled by budget, and resolve by themselves afterwards; the processor fires
each row once, so nothing here repeats an alert.

The same rules are written two ways: the provisioning file Grafana reads at start
(``dashboards/provisioning/alerting/gateledger-budgets.yaml``, generated) and the JSON the
provisioning HTTP API takes (``gateledger dashboards push``).
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.models import alerting as alerting_m

from dashboards.clickhouse_query import ClickHouse, QueryType
from dashboards.datasources import CLICKHOUSE_UID, EXPRESSION, EXPRESSION_UID, FOLDER_TITLE, FOLDER_UID
from dashboards.sql import latest
from gateledger.tables import Table

GROUP = "gateledger-budgets"
INTERVAL_S = 60
WINDOW_S = 15 * 60
RECEIVER = "gateledger-notifier"
# Contact point the rules notify: gateledger's notifier takes Alertmanager-style webhooks (Grafana's
# webhook payload is a superset of Alertmanager's).
NOTIFIER_URL = "http://gateledger-notifier:8490/alertmanager"
COST_DASHBOARD = "gateledger-cost"

_FIRED = latest(
    Table.BUDGET_ALERTS,
    "budget_id, budget_name, kind, threshold_pct, spend_usd, limit_usd, projected_spend_usd, late, fired_at",
    "$__timeFilter(fired_at)",
)

# refId A of each rule: one row per budget (string columns become alert labels, the number its value).
LIMIT_REACHED_SQL = (
    "SELECT budget_id, argMax(budget_name, fired_at) AS budget_name, toFloat64(max(threshold_pct)) / 100 AS utilization,\n"
    "  toString(max(late)) AS late\n"
    f"FROM {_FIRED}\n"
    "WHERE kind = 'threshold' AND threshold_pct >= 100\n"
    "GROUP BY budget_id"
)
PROJECTED_SQL = (
    "SELECT budget_id, argMax(budget_name, fired_at) AS budget_name,\n"
    "  max(toFloat64(projected_spend_usd) / toFloat64(limit_usd)) AS projected_utilization\n"
    f"FROM {_FIRED}\n"
    "WHERE kind = 'projected' AND limit_usd > 0 AND projected_spend_usd IS NOT NULL\n"
    "GROUP BY budget_id"
)

# AxonFlow's own budget warnings (X-Budget-Warning, recorded on the PolicyDecision by the tap) beside
# gateledger's budget alerts: one row per tenant and client warned in the window. Only the events with
# a warning in some version are collapsed to their newest version (found by the sorting key, which every
# version of a decision shares): a warning is rare, and the newest version of any other event has none.
_WARNED = (f"(tenant, time, id) IN (SELECT tenant, time, id FROM {Table.POLICY_DECISIONS}"
           " WHERE $__timeFilter(time) AND budget_warning != '')")
AXONFLOW_WARNING_SQL = (
    "SELECT tenant, client_id, argMax(budget_warning, time) AS warning, toFloat64(count()) AS warnings\n"
    f"FROM {latest(Table.POLICY_DECISIONS, 'tenant, client_id, budget_warning, time', f'$__timeFilter(time) AND {_WARNED}')}\n"
    "WHERE budget_warning != ''\n"
    "GROUP BY tenant, client_id"
)


def _rule(
    uid: str, title: str, sql: str, threshold: float, *, severity: str, summary: str, description: str
) -> alerting.Rule:
    query = (
        alerting.Query("A")
        .datasource_uid(CLICKHOUSE_UID)
        .relative_time_range(alerting_m.RelativeTimeRange(from_val=WINDOW_S, to=0))
        .model(ClickHouse(sql, QueryType.TABLE).ref_id("A"))
    )
    condition = (
        alerting.Query("B")
        .datasource_uid(EXPRESSION_UID)
        .relative_time_range(alerting_m.RelativeTimeRange(from_val=0, to=0))
        .model(
            expr.TypeThreshold()
            .ref_id("B")
            .datasource(EXPRESSION)
            .expression("A")
            .conditions(
                [
                    expr.ExprTypeThresholdConditions().evaluator(
                        expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([threshold])
                    )
                ]
            )
        )
    )
    return (
        alerting.Rule(title)
        .uid(uid)
        .org_id(1)
        .folder_uid(FOLDER_UID)
        .rule_group(GROUP)
        .queries([query, condition])
        .condition("B")
        .for_val("0s")
        .no_data_state("OK")
        .exec_err_state("Error")
        .is_paused(False)
        .labels({"severity": severity, "category": "budget", "origin": "grafana-ledger"})
        .annotations(
            {
                "summary": summary,
                "description": description,
                "__dashboardUid__": COST_DASHBOARD,
            }
        )
        .notification_settings(
            alerting.NotificationSettings()
            .receiver(RECEIVER)
            .group_by(["alertname", "grafana_folder", "budget_id"])
        )
    )


def rules() -> list[alerting_m.Rule]:
    """The budget rules, as the provisioning API models them."""
    return [
        _rule(
            "gateledger-budget-limit-reached",
            "Budget limit reached (ledger)",
            LIMIT_REACHED_SQL,
            0.999,
            severity="critical",
            summary="Budget {{ $labels.budget_name }} reached 100 % of its limit",
            description="The budget processor recorded a 100 % threshold crossing for budget "
            "{{ $labels.budget_id }} (late={{ $labels.late }}). Spend is at or over the limit; budgets with "
            "action=block are now refusing calls.",
        ).build(),
        _rule(
            "gateledger-budget-projected-exhaustion",
            "Budget projected to run out (ledger)",
            PROJECTED_SQL,
            1.0,
            severity="warning",
            summary="Budget {{ $labels.budget_name }} will run out before its period ends",
            description="At the current burn rate budget {{ $labels.budget_id }} ends its period at "
            "{{ $values.A.Value | humanizePercentage }} of its limit.",
        ).build(),
        _rule(
            "gateledger-axonflow-budget-warning",
            "AxonFlow budget warning",
            AXONFLOW_WARNING_SQL,
            0.0,
            severity="warning",
            summary="AxonFlow warned about a budget of tenant {{ $labels.tenant }}",
            description="AxonFlow answered {{ $values.A.Value }} call(s) of client {{ $labels.client_id }} with "
            "X-Budget-Warning: {{ $labels.warning }}. Compare with gateledger's own budget state "
            "(budget_signals_latest).",
        ).build(),
    ]


def rule_group() -> dict[str, Any]:
    """The rule group as ``PUT /api/v1/provisioning/folder/{folderUid}/rule-groups/{group}`` takes it."""
    return {
        "title": GROUP,
        "folderUid": FOLDER_UID,
        "interval": INTERVAL_S,
        "rules": [_json(r) for r in rules()],
    }


# Keys of the API model that the provisioning file format does not take at rule level.
_API_ONLY = ("orgID", "folderUID", "ruleGroup", "id", "updated", "provenance")


def provisioning_document() -> dict[str, Any]:
    """The rule group in Grafana's alerting file-provisioning format."""
    file_rules = []
    for rule in rules():
        data = _json(rule)
        for key in _API_ONLY:
            data.pop(key, None)
        file_rules.append(data)
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER_TITLE,
                "interval": f"{INTERVAL_S}s",
                "rules": file_rules,
            }
        ],
    }


def contact_point() -> dict[str, Any]:
    """The webhook contact point the rules notify, as the provisioning API takes it."""
    return {
        "uid": "gateledger-notifier-webhook",
        "name": RECEIVER,
        "type": "webhook",
        "settings": {"url": NOTIFIER_URL, "httpMethod": "POST"},
        "disableResolveMessage": False,
    }


def contact_points_document() -> dict[str, Any]:
    """The contact point in Grafana's alerting file-provisioning format."""
    cp = contact_point()
    return {
        "apiVersion": 1,
        "contactPoints": [
            {
                "orgId": 1,
                "name": cp["name"],
                "receivers": [{k: cp[k] for k in ("uid", "type", "settings", "disableResolveMessage")}],
            }
        ],
    }


def _json(model: Any) -> Any:
    import json

    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    return json.loads(json.dumps(model, cls=JSONEncoder))
