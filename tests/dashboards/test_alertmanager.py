"""Alertmanager configuration, checked by Alertmanager's own tool: ``amtool check-config`` on the
committed file and on renderings of it, and ``amtool config routes test`` for every alert the rules
can raise (the receiver each one reaches)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dashboards.alerting_config import (
    ALERTMANAGER_CONFIG,
    RULES_DIR,
    load_alertmanager,
    render_alertmanager,
    webhook_urls,
)

pytestmark = pytest.mark.skipif(
    shutil.which("amtool") is None,
    reason="needs Debian's prometheus-alertmanager package (scripts/install-system-deps.sh)",
)


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


def test_committed_config_is_valid() -> None:
    res = amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert res.returncode == 0, res.stdout + res.stderr


def test_rendered_config_is_valid_and_sends_everything_to_the_url(tmp_path: Path) -> None:
    path = tmp_path / "am.yml"
    path.write_text(render_alertmanager("https://hooks.example.test/gateledger", group_wait="1s"))
    res = amtool("check-config", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    rendered = yaml.safe_load(path.read_text())
    assert set(webhook_urls(rendered)) == {"https://hooks.example.test/gateledger"}
    assert len(webhook_urls(rendered)) == len(webhook_urls(load_alertmanager()))
    assert rendered["route"]["group_wait"] == "1s"
    assert all(r.get("group_wait") in (None, "1s") for r in rendered["route"]["routes"])
    with pytest.raises(ValueError):
        render_alertmanager(group_wiat="1s")


def test_alertmanager_config_command(tmp_path: Path) -> None:
    import sys

    out = tmp_path / "am.yml"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateledger_cli.main",
            "dashboards",
            "alertmanager-config",
            "--webhook-url",
            "http://notifier.internal:8490/alertmanager",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert set(webhook_urls(yaml.safe_load(out.read_text()))) == {
        "http://notifier.internal:8490/alertmanager"
    }


def _alert_labels() -> dict[str, dict[str, str]]:
    """Every alert of the committed rules with its static labels."""
    out = {}
    for f in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = {"alertname": rule["alert"], **rule.get("labels", {})}
    return out


EXPECTED_RECEIVER = {
    "GateledgerBudgetExceeded": "gateledger-budgets",
    "GateledgerBudgetProjectedExceeded": "gateledger-budgets",
    "GateledgerSinkFailing": "gateledger-pager",
    "GateledgerIngestPublishFailing": "gateledger-pager",
    "GateledgerTargetDown": "gateledger-pager",
    "GateledgerSinkLagHigh": "gateledger-ops",
    "GateledgerProcessorLagHigh": "gateledger-ops",
    "GateledgerProcessorStalled": "gateledger-pager",
    "GateledgerProcessorMemoryRunningOut": "gateledger-ops",
    "GateledgerSinkMemoryRunningOut": "gateledger-ops",
    "GateledgerDeadLetterRate": "gateledger-ops",
    "GateledgerSinkPoisonRows": "gateledger-ops",
    "GateledgerNoEventsFromSource": "gateledger-ops",
    "GateledgerBudgetViewStale": "gateledger-ops",
}


def test_every_alert_has_an_expected_route() -> None:
    assert set(EXPECTED_RECEIVER) == set(_alert_labels())


@pytest.mark.parametrize("alert", sorted(EXPECTED_RECEIVER))
def test_routes(alert: str) -> None:
    labels = [f"{k}={v}" for k, v in _alert_labels()[alert].items()] + ["budget_id=b1", "instance=x:1"]
    res = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={EXPECTED_RECEIVER[alert]}",
        *labels,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_unknown_alerts_reach_the_default_receiver_and_a_wrong_expectation_fails() -> None:
    res = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        "--verify.receivers=gateledger-ops",
        "alertname=SomethingElse",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    res = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        "--verify.receivers=gateledger-budgets",
        "alertname=GateledgerSinkFailing",
        "category=pipeline",
        "severity=critical",
    )
    assert res.returncode != 0
