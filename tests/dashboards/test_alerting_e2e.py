"""The whole alerting path on loopback, with a real gateledger exporter:

ingest service (/metrics) → Prometheus (scrape, rule) → Alertmanager (committed routing) → webhook
receiver, firing when events are posted through the ingest and resolving when they stop.

The rule here is a test rule on the real ``gateledger_ingest_accepted_events_total`` counter; the
budget-breach variant (budget gauges from the processors, GateledgerBudgetExceeded) plugs into the
same harness once the budget exporter exists.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from dashboards.alerting_config import RULES_DIR
from gateledger.net import free_port, wait_port
from tests import samples
from tests.conftest import Processes, subprocess_env
from tests.dashboards.alerting_harness import AlertingHarness, binaries_available

pytestmark = pytest.mark.skipif(
    not binaries_available(),
    reason="needs Debian's prometheus and alertmanager (scripts/install-system-deps.sh)",
)

TEST_RULE = """
groups:
  - name: harness
    rules:
      - alert: GateledgerHarnessEventsAccepted
        expr: sum by (source) (increase(gateledger_ingest_accepted_events_total[4s])) > 0
        labels:
          severity: critical
          category: pipeline
        annotations:
          summary: "{{ $labels.source }} is accepting events"
"""


def _post(port: int, fmt: str, records: list[dict]) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/ingest/{fmt}",
        data=json.dumps(records).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
        assert resp.status == 200, resp.read()


def test_ingest_metrics_fire_through_alertmanager_and_resolve(
    gl_env: dict[str, str], processes: Processes, alerting: AlertingHarness, tmp_path: Path
) -> None:
    port = free_port()
    env = subprocess_env(
        {**gl_env, "GATELEDGER_INGEST_HOST": "127.0.0.1", "GATELEDGER_INGEST_PORT": str(port)}
    )
    processes.gateledger("serve", "ingest", env=env, log=tmp_path / "ingest.log")
    wait_port("127.0.0.1", port, timeout_s=30)

    rule_file = tmp_path / "harness.rules.yml"
    rule_file.write_text(TEST_RULE)
    production_rules = sorted(RULES_DIR.glob("*.yml"))
    alerting.start(
        scrape_targets={"gateledger-ingest": [f"127.0.0.1:{port}"]}, rule_files=[*production_rules, rule_file]
    )

    # The committed rules load into a real Prometheus next to the test rule.
    loaded = {r["name"] for g in alerting.rule_groups() for r in g["rules"]}
    assert {
        "GateledgerBudgetExceeded",
        "GateledgerNoEventsFromSource",
        "GateledgerHarnessEventsAccepted",
    } <= loaded
    alerting.wait_query('up{job="gateledger-ingest"} == 1')

    # The first events create the counter series; the next ones increase it.
    _post(port, "axonflow-precheck", [samples.precheck()])
    # Queryable only once a scrape stored the first value: the increase below has its first sample.
    series = alerting.wait_query("gateledger_ingest_accepted_events_total")
    source = series[0]["metric"]["source"]
    posted_at = time.monotonic()
    _post(port, "axonflow-precheck", [samples.precheck(context_id=f"ctx-{i}") for i in range(5)])

    firing = alerting.receiver.wait_for("GateledgerHarnessEventsAccepted", "firing", timeout_s=30)
    fired_after = firing["_received_at"] - posted_at
    alert = next(a for a in firing["alerts"] if a["labels"]["alertname"] == "GateledgerHarnessEventsAccepted")
    assert alert["labels"]["source"] == source
    assert firing["receiver"] == "gateledger-pager", "severity=critical pipeline alerts page"
    assert firing["status"] == "firing"

    # No more events: the increase drops to zero, the alert resolves.
    resolved = alerting.receiver.wait_for("GateledgerHarnessEventsAccepted", "resolved", timeout_s=30)
    resolved_after = resolved["_received_at"] - firing["_received_at"]
    assert resolved["receiver"] == "gateledger-pager"
    # Exactly one firing and one resolved notification: no repeats while it fired.
    assert len(alerting.receiver.notifications("GateledgerHarnessEventsAccepted", "firing")) == 1
    assert len(alerting.receiver.notifications("GateledgerHarnessEventsAccepted", "resolved")) == 1
    # "Within seconds" is bounded by the waits above; the figures go to the log, not into assertions.
    print(f"fired {fired_after:.1f}s after the events were posted; resolved {resolved_after:.1f}s later")


def test_committed_inhibitions_and_grouping_in_a_real_alertmanager(alerting: AlertingHarness) -> None:
    """An exceeded budget silences its own projected-exhaustion warning, not another budget's; budget
    alerts reach the budgets receiver grouped per budget."""
    alerting.start_alertmanager()
    labels = {"category": "budget", "severity": "critical"}
    alerting.post_alerts(
        [
            {
                "labels": {
                    "alertname": "GateledgerBudgetExceeded",
                    "budget_id": "b1",
                    "budget_name": "acme",
                    **labels,
                },
                "annotations": {"summary": "b1 exceeded"},
            },
            {
                "labels": {
                    "alertname": "GateledgerBudgetProjectedExceeded",
                    "budget_id": "b1",
                    "budget_name": "acme",
                    "category": "budget",
                    "severity": "warning",
                }
            },
            {
                "labels": {
                    "alertname": "GateledgerBudgetProjectedExceeded",
                    "budget_id": "b2",
                    "budget_name": "globex",
                    "category": "budget",
                    "severity": "warning",
                }
            },
        ]
    )
    exceeded = alerting.receiver.wait_for("GateledgerBudgetExceeded", "firing", timeout_s=20)
    projected = alerting.receiver.wait_for("GateledgerBudgetProjectedExceeded", "firing", timeout_s=20)
    assert exceeded["receiver"] == projected["receiver"] == "gateledger-budgets"
    assert exceeded["groupLabels"] == {"alertname": "GateledgerBudgetExceeded", "budget_id": "b1"}
    # b1's projection is muted by b1's exceeded alert, observed in Alertmanager itself: its API
    # computes an alert's status with the same inhibitor the notification pipeline mutes with, so
    # while the source fires, no flush of b1's projection group can notify (no waiting needed).
    def by_budget(name: str) -> dict[str, dict]:
        return {a["labels"]["budget_id"]: a for a in alerting.alertmanager_alerts() if a["labels"]["alertname"] == name}

    deadline = time.monotonic() + 20
    while True:
        source, target = by_budget("GateledgerBudgetExceeded"), by_budget("GateledgerBudgetProjectedExceeded")
        if {"b1", "b2"} <= set(target) and target["b1"]["status"]["inhibitedBy"]:
            break
        assert time.monotonic() < deadline, f"b1's projection never inhibited: {target}"
        time.sleep(0.1)
    assert target["b1"]["status"]["state"] == "suppressed"
    assert target["b1"]["status"]["inhibitedBy"] == [source["b1"]["fingerprint"]]
    assert not target["b2"]["status"]["inhibitedBy"], target["b2"]["status"]
    projected_budgets = {
        a["labels"]["budget_id"]
        for p in alerting.receiver.notifications()
        for a in p["alerts"]
        if a["labels"]["alertname"] == "GateledgerBudgetProjectedExceeded"
    }
    assert projected_budgets == {"b2"}
