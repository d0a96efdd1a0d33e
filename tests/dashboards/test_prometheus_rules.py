"""Prometheus configuration and rules, checked by Prometheus's own tool: ``promtool check config``,
``promtool check rules``, ``promtool test rules`` (a unit test for every rule, and proof that the
unit tests fail when a rule is wrong), and the PromQL of every dashboard panel."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dashboards import build
from dashboards.alerting_config import PROMETHEUS_CONFIG, RULES_DIR
from dashboards.datasources import PROMETHEUS_TYPE

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="needs Debian's prometheus package (scripts/install-system-deps.sh)",
)

HERE = Path(__file__).resolve().parent
RULE_TESTS = HERE / "promtool" / "gateledger.rules.test.yml"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_config_is_valid() -> None:
    res = promtool("check", "config", "--syntax-only", str(PROMETHEUS_CONFIG))
    assert res.returncode == 0, res.stdout + res.stderr
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    assert {"gateledger-ingest", "gateledger-processors", "gateledger-sink", "gateledger-notifier"} <= jobs
    # rule_files are relative to the config file: they must find our rule files where compose mounts them.
    found = {p for pattern in config["rule_files"] for p in PROMETHEUS_CONFIG.parent.glob(pattern)}
    assert found == set(RULE_FILES)


def test_rules_are_valid() -> None:
    res = promtool("check", "rules", *map(str, RULE_FILES))
    assert res.returncode == 0, res.stdout + res.stderr


def _rule_names() -> set[str]:
    names = set()
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                names.add(rule.get("alert") or rule["record"])
    return names


def test_rule_unit_tests_pass() -> None:
    res = promtool("test", "rules", str(RULE_TESTS))
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_rule_has_a_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = set()
    for case in tests["tests"]:
        tested |= {t["alertname"] for t in case.get("alert_rule_test", [])}
        for t in case.get("promql_expr_test", []):
            tested |= set(re.findall(r"[a-zA-Z_:][\w:]*:[\w:]+", t["expr"]))  # recording rules have colons
    # Every alert has at least one case where it fires.
    firing = {
        t["alertname"]
        for case in tests["tests"]
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert _rule_names() <= tested, f"rules without a unit test: {_rule_names() - tested}"
    alerts = {n for n in _rule_names() if ":" not in n}
    assert alerts <= firing, f"alerts never shown to fire: {alerts - firing}"


@pytest.mark.parametrize(
    ("rule", "original", "broken"),
    [
        (
            "GateledgerBudgetExceeded",
            "(gateledger_budget_utilization_ratio) >= 1",
            "(gateledger_budget_utilization_ratio) > 1",
        ),
        (
            "GateledgerSinkLagHigh",
            "gateledger_sink_consumer_lag_messages) > 10000",
            "gateledger_sink_consumer_lag_messages) > 20000",
        ),
        ("GateledgerNoEventsFromSource", "[15m])) > 0)", "[15m])) >= 0)"),
        ("GateledgerProcessorStalled", "consumer_position[10m]) == 0)", "consumer_position[10m]) >= 0)"),
        ("GateledgerProcessorMemoryRunningOut", "> on (instance, job) 0.9 *", "> on (instance, job) 2 *"),
        ("GateledgerSinkMemoryRunningOut", "0.9 * gateledger_sink_memory_limit_bytes",
         "2 * gateledger_sink_memory_limit_bytes"),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path, rule: str, original: str, broken: str) -> None:
    text = RULE_FILES[0].read_text()
    assert original in text, f"{rule}: the expression changed, update this test"
    rules_dir = tmp_path / "dashboards" / "prometheus" / "rules"
    rules_dir.mkdir(parents=True)
    (rules_dir / RULE_FILES[0].name).write_text(text.replace(original, broken))
    tests_dir = tmp_path / "tests" / "dashboards" / "promtool"
    tests_dir.mkdir(parents=True)
    shutil.copy(RULE_TESTS, tests_dir / RULE_TESTS.name)
    res = promtool("test", "rules", str(tests_dir / RULE_TESTS.name))
    assert res.returncode != 0 and rule in res.stdout + res.stderr


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """Every Prometheus panel query, as a recording rule, passes `promtool check rules`."""
    exprs = []
    for uid in build.DASHBOARDS:
        for panel in build.dashboard_json(uid)["panels"]:
            for t in panel.get("targets") or []:
                if t["datasource"]["type"] == PROMETHEUS_TYPE:
                    # Grafana's range variable becomes a concrete duration, as Grafana would send it.
                    exprs.append(t["expr"].replace("$__rate_interval", "1m"))
    assert len(exprs) >= 8
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"dashboard:query_{i}:check", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    res = promtool("check", "rules", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
