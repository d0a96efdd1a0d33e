"""AxonFlow's budget warnings beside gateledger's own budget state: the views of migration 0101 and the
Grafana alert rule, on chDB with rows as the sink lands them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards import alert_rules, grafana_sql
from gateledger.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)
WARNING = "budget acme-warn at 104% of $10"


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _decision(ch: Any, db: str, id_: str, version: int, at: datetime, warning: str, client: str = "support-bot") -> None:
    ch.command(f"INSERT INTO {db}.policy_decisions (id, version, tenant, time, source, approved, gate, client_id, "
               f"budget_id, budget_warning) VALUES ('{id_}', {version}, 'acme', '{_ts(at)}', 'axonflow/acme', true, "
               f"'precheck', '{client}', 'acme-warn', '{warning}')")


def _rows(ch: Any, sql: str) -> list[dict[str, Any]]:
    res = ch.query(sql)
    return [dict(zip(res.column_names, r, strict=True)) for r in res.result_rows]


def test_axonflow_warnings_sit_beside_our_budget_alerts_and_alert(settings: Settings, ch_client: Any) -> None:
    db = settings.clickhouse.database
    _decision(ch_client, db, "pd-1", 1, NOW - timedelta(minutes=5), WARNING)
    _decision(ch_client, db, "pd-1", 2, NOW - timedelta(minutes=5), WARNING)  # a newer version of the same answer
    _decision(ch_client, db, "pd-2", 1, NOW - timedelta(minutes=3), WARNING)
    _decision(ch_client, db, "pd-3", 1, NOW - timedelta(minutes=2), "")  # approved without a warning
    _decision(ch_client, db, "pd-4", 1, NOW - timedelta(hours=3), WARNING, client="batch")  # outside the window
    ch_client.command(
        f"INSERT INTO {db}.budget_alerts (id, version, tenant, time, budget_id, budget_name, period_start, period_end, "
        f"kind, threshold_pct, spend_usd, limit_usd, utilization, action, fired_at) VALUES ('ba-1', 1, 'acme', "
        f"'{_ts(NOW - timedelta(minutes=4))}', 'acme-monthly', 'acme-monthly', '{_ts(NOW - timedelta(days=2))}', "
        f"'{_ts(NOW + timedelta(days=28))}', 'threshold', 80, 8, 10, 0.8, 'alert', '{_ts(NOW)}')")
    params = "tenant = 'acme', since = '2000-01-01', until = '2100-01-01'"

    warned = _rows(ch_client, f"SELECT * FROM {db}.budget_warnings_latest({params}) ORDER BY time")
    assert [(w["id"], w["warning"], w["budget_id"]) for w in warned] == [
        ("pd-4", WARNING, "acme-warn"), ("pd-1", WARNING, "acme-warn"), ("pd-2", WARNING, "acme-warn")]
    signals = _rows(ch_client, f"SELECT * FROM {db}.budget_signals_latest({params}) ORDER BY time")
    assert [(s["origin"], s["kind"], s["event_id"] or s["budget_id"]) for s in signals] == [
        ("axonflow", "axonflow_warning", "pd-4"), ("axonflow", "axonflow_warning", "pd-1"),
        ("gateledger", "threshold", "acme-monthly"), ("axonflow", "axonflow_warning", "pd-2")]
    ours = next(s for s in signals if s["origin"] == "gateledger")
    assert ours["threshold_pct"] == 80 and ours["spend_usd"] == 8 and ours["message"] == ""
    assert {s["message"] for s in signals if s["origin"] == "axonflow"} == {WARNING}

    # The Grafana rule over its 15-minute window: one row per tenant and client, the number of warnings.
    (rule,) = [r for r in alert_rules.rules() if r.uid == "gateledger-axonflow-budget-warning"]
    window = grafana_sql.TimeRange(NOW - timedelta(minutes=15), NOW + timedelta(seconds=1), 60)
    sql = grafana_sql.expand(rule.data[0].model.raw_sql, window).replace("FROM policy_decisions", f"FROM {db}.policy_decisions")
    fired = _rows(ch_client, sql)
    assert fired == [{"tenant": "acme", "client_id": "support-bot", "warning": WARNING, "warnings": 2.0}]
    quiet = grafana_sql.TimeRange(NOW - timedelta(minutes=90), NOW - timedelta(minutes=75), 60)
    assert _rows(ch_client, grafana_sql.expand(rule.data[0].model.raw_sql, quiet)
                 .replace("FROM policy_decisions", f"FROM {db}.policy_decisions")) == []
