"""docs/metrics.md is the catalogue of metric names: it must agree with the telemetry modules that
exist (name, type, labels), and every metric the rules and dashboards query must be in it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from dashboards import build
from dashboards.alerting_config import RULES_DIR
from dashboards.datasources import PROMETHEUS_TYPE
from gateledger.money.telemetry import BudgetMetrics

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "metrics.md"
# Telemetry modules of the services: each must import (a missing one is a failure, not a skip).
TELEMETRY_MODULES = (
    "producers.telemetry",
    "sinks.clickhouse.telemetry",
    "stream_processors.telemetry",
    "gateledger.money.telemetry",
    "sinks.notifier.telemetry",
)
_ROW = re.compile(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \| ([^|]*) \|", re.M)
_SUFFIXES = ("_bucket", "_sum", "_count")


def catalogue() -> dict[str, tuple[str, tuple[str, ...]]]:
    """metric name -> (type, labels) from the document's table."""
    out = {}
    for name, mtype, labels in _ROW.findall(DOC.read_text()):
        out[name] = (mtype, tuple(re.findall(r"`(\w+)`", labels)))
    return out


def _entry(metric: MetricWrapperBase) -> tuple[str, tuple[str, tuple[str, ...]]]:
    name = metric._name + ("_total" if metric._type == "counter" else "")
    return name, (metric._type, tuple(metric._labelnames))


def defined_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Metrics the telemetry modules define (module level, and the budget gauges' class on a spare registry)."""
    out = {}
    for module_name in TELEMETRY_MODULES:
        module = importlib.import_module(module_name)
        out.update(_entry(v) for v in vars(module).values() if isinstance(v, MetricWrapperBase))
    budget = BudgetMetrics(registry=CollectorRegistry())
    out.update(_entry(v) for v in vars(budget).values() if isinstance(v, MetricWrapperBase))
    return out


def test_catalogue_parses_and_names_follow_the_rules() -> None:
    cat = catalogue()
    assert len(cat) >= 28
    for name, (mtype, _) in cat.items():
        assert name.startswith(("gateledger_", "gen_ai_", "mcp_")), name
        assert (mtype == "counter") == name.endswith("_total"), (
            f"{name}: counters and only counters end in _total"
        )


def test_every_defined_metric_is_catalogued_with_its_type_and_labels() -> None:
    defined = defined_metrics()
    assert "gateledger_ingest_accepted_events_total" in defined and "gateledger_sink_failing" in defined
    cat = catalogue()
    for name, spec in defined.items():
        assert name in cat, f"{name} is emitted but not in docs/metrics.md"
        assert cat[name] == spec, f"{name}: docs say {cat[name]}, code says {spec}"


def test_every_catalogued_metric_is_defined_by_code() -> None:
    defined = defined_metrics()
    promised = {name for name in catalogue() if name not in defined}
    assert not promised, f"in docs/metrics.md but emitted by no telemetry module: {sorted(promised)}"


def _promql_names(expr: str) -> set[str]:
    # Metric names: identifiers followed by a selector, a range, ')' or whitespace, not functions or labels.
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][\w:]*)\b\s*(?=[{\[)\s]|$)", expr):
        word = m.group(1)
        if word.startswith(("gateledger_", "gen_ai_", "mcp_")):
            names.add(word)
    return names


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_queried_metric_is_catalogued() -> None:
    exprs = []
    for f in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(f.read_text())["groups"]:
            exprs += [r["expr"] for r in group["rules"]]
    for uid in build.DASHBOARDS:
        for p in build.dashboard_json(uid)["panels"]:
            exprs += [t["expr"] for t in p.get("targets") or [] if t["datasource"]["type"] == PROMETHEUS_TYPE]
    queried = {_base(n) for e in exprs for n in _promql_names(e)}
    assert {"gateledger_budget_utilization_ratio", "gateledger_sink_consumer_lag_messages"} <= queried
    missing = queried - set(catalogue())
    assert not missing, f"queried but not catalogued: {missing}"


@pytest.mark.parametrize(
    "expr,names",
    [
        (
            "sum by (topic) (gateledger_sink_consumer_lag_messages) > 1",
            {"gateledger_sink_consumer_lag_messages"},
        ),
        ('rate(gateledger_x_total{a="b"}[5m])', {"gateledger_x_total"}),
        (
            "histogram_quantile(0.9, sum by (le) (rate(gen_ai_client_token_usage_bucket[5m])))",
            {"gen_ai_client_token_usage_bucket"},
        ),
    ],
)
def test_promql_name_extraction(expr: str, names: set[str]) -> None:
    assert _promql_names(expr) == names
