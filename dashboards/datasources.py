"""The datasources every dashboard and alert rule refers to, by fixed uid (provisioned with those uids)."""

from __future__ import annotations

from grafana_foundation_sdk.models.common import DataSourceRef

CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
CLICKHOUSE_UID = "gateledger-clickhouse"
PROMETHEUS_TYPE = "prometheus"
PROMETHEUS_UID = "gateledger-prometheus"
# Grafana's server-side expressions (math, reduce, threshold) in alert rules.
EXPRESSION_UID = "__expr__"

CLICKHOUSE = DataSourceRef(type_val=CLICKHOUSE_TYPE, uid=CLICKHOUSE_UID)
PROMETHEUS = DataSourceRef(type_val=PROMETHEUS_TYPE, uid=PROMETHEUS_UID)
EXPRESSION = DataSourceRef(type_val="__expr__", uid=EXPRESSION_UID)

# Folder the dashboards and alert rules live in, in Grafana.
FOLDER_UID = "gateledger"
FOLDER_TITLE = "gateledger"
