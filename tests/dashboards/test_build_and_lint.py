"""Generated files equal a fresh build; every dashboard passes the structural checks, and the checks
catch what they claim to catch; the ClickHouse dataquery type round-trips through the SDK runtime."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from dashboards import alert_rules, build, lint
from dashboards.clickhouse_query import ClickHouse, ClickHouseQuery, QueryType
from dashboards.datasources import CLICKHOUSE_TYPE, CLICKHOUSE_UID, FOLDER_UID

DASHBOARDS = {uid: build.dashboard_json(uid) for uid in build.DASHBOARDS}


def test_committed_generated_files_equal_a_fresh_build() -> None:
    assert build.check() == []
    for path, text in build.artifacts().items():
        assert path.read_text() == text


def test_check_command_passes_and_build_is_a_no_op() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "gateledger_cli.main", "dashboards", "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "gateledger_cli.main", "dashboards", "build"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and "0 changed" in res.stdout, res.stdout + res.stderr


def test_check_reports_a_stale_committed_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # Point the build at a copy, corrupt one file, and check must say so.
    gen = tmp_path / "generated"
    alerting = tmp_path / "provisioning" / "alerting"
    monkeypatch.setattr(build, "ROOT", tmp_path / "pkg")
    monkeypatch.setattr(build, "GENERATED", gen)
    monkeypatch.setattr(build, "ALERTING", alerting)
    (tmp_path / "pkg").mkdir()
    build.write()
    assert build.check() == []
    target = gen / "gateledger-sre.json"
    target.write_text(target.read_text().replace("Events landed", "Events that landed"))
    (gen / "old-dashboard.json").write_text("{}")
    problems = build.check()
    assert any("gateledger-sre.json differs" in p for p in problems)
    assert any("old-dashboard.json is not built" in p for p in problems)


def test_every_dashboard_passes_the_structural_checks() -> None:
    assert lint.check_all(DASHBOARDS) == []


def test_dashboard_essentials() -> None:
    for uid, dash in DASHBOARDS.items():
        assert uid.startswith("gateledger-") and dash["title"].startswith("gateledger · ")
        assert {"tenant"} <= set(lint.variable_names(dash))
        assert dash["time"]["from"].startswith("now-") and dash["refresh"]
    assert {"tenant", "server", "model"} <= set(lint.variable_names(DASHBOARDS["gateledger-sre"]))
    assert {"tenant", "server", "model"} <= set(lint.variable_names(DASHBOARDS["gateledger-cost"]))
    units = {
        p["fieldConfig"]["defaults"]["unit"] for d in DASHBOARDS.values() for p in lint.content_panels(d)
    }
    assert {"currencyUSD", "ms", "ops", "percentunit"} <= units
    # Coloured thresholds beyond the base colour somewhere on every dashboard.
    for dash in DASHBOARDS.values():
        assert any(
            len(p["fieldConfig"]["defaults"]["thresholds"]["steps"]) > 1 for p in lint.content_panels(dash)
        )


def _first(dash: dict[str, Any], ptype: str) -> dict[str, Any]:
    return next(p for p in lint.content_panels(dash) if p["type"] == ptype)


MUTATIONS = {
    "duplicate panel id": (lambda d: d["panels"][3].__setitem__("id", d["panels"][2]["id"]), "share id"),
    "overlapping panels": (
        lambda d: d["panels"][3]["gridPos"].update(x=d["panels"][2]["gridPos"]["x"]),
        "overlap",
    ),
    "off the grid": (lambda d: d["panels"][2]["gridPos"].update(x=22), "outside the grid"),
    "format not matching queryType": (
        lambda d: _first(d, "timeseries")["targets"][0].__setitem__("format", 1),
        "does not match queryType",
    ),
    "table query in a time series": (
        lambda d: _first(d, "timeseries")["targets"][0].update(queryType="table", format=1),
        "returns a table",
    ),
    "wrong datasource type": (
        lambda d: _first(d, "stat")["targets"][0]["datasource"].__setitem__("type", "mysql"),
        "queries",
    ),
    "duplicate refId": (
        lambda d: _first(d, "timeseries")["targets"].append(
            copy.deepcopy(_first(d, "timeseries")["targets"][0])
        ),
        "duplicate refIds",
    ),
    "no unit": (lambda d: _first(d, "stat")["fieldConfig"]["defaults"].pop("unit"), "no unit"),
    "descending thresholds": (
        lambda d: _first(d, "stat")["fieldConfig"]["defaults"]["thresholds"].__setitem__(
            "steps",
            [
                {"value": None, "color": "green"},
                {"value": 5, "color": "red"},
                {"value": 1, "color": "yellow"},
            ],
        ),
        "ascending",
    ),
    "undefined variable": (
        lambda d: _first(d, "table")["targets"][0].__setitem__(
            "rawSql", _first(d, "table")["targets"][0]["rawSql"] + " AND x IN (${nope:singlequote})"
        ),
        "undefined variable",
    ),
    "unknown macro": (
        lambda d: _first(d, "table")["targets"][0].__setitem__(
            "rawSql", "SELECT 1 WHERE $__timeFilterr(time)"
        ),
        "unknown macro",
    ),
    "variable using a later one": (lambda d: d["templating"]["list"].reverse(), "not defined before it"),
    "link to an unknown dashboard": (
        lambda d: d["panels"][1].__setitem__("title", "see /d/nowhere/x"),
        "unknown dashboard",
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_checks_catch(mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    dashboards = copy.deepcopy(DASHBOARDS)
    mutate(dashboards["gateledger-sre"])
    problems = lint.check_all(dashboards)
    assert any(expected in p for p in problems), problems


def test_clickhouse_target_shape_and_round_trip() -> None:
    for query_type, fmt in ((QueryType.TIMESERIES, 0), (QueryType.TABLE, 1), (QueryType.LOGS, 2)):
        target = ClickHouse("SELECT 1", query_type).ref_id("B").build().to_json()
        assert target == {
            "refId": "B",
            "datasource": {"type": CLICKHOUSE_TYPE, "uid": CLICKHOUSE_UID},
            "editorType": "sql",
            "rawSql": "SELECT 1",
            "queryType": str(query_type),
            "format": fmt,
        }
    # The SDK runtime decodes our targets back into our type (registered variant).
    from grafana_foundation_sdk.cog import runtime

    decoded = runtime.dataquery_from_json(DASHBOARDS["gateledger-cost"]["panels"][1]["targets"][0], "")
    assert isinstance(decoded, ClickHouseQuery)
    assert decoded.to_json() == DASHBOARDS["gateledger-cost"]["panels"][1]["targets"][0]


def test_alerting_provisioning_files() -> None:
    rules = yaml.safe_load(build.artifacts()[build.ALERTING / "gateledger-budgets.yaml"])
    (group,) = rules["groups"]
    assert group["folder"] == "gateledger" and group["interval"] == "60s"
    assert [r["uid"] for r in group["rules"]] == [
        "gateledger-budget-limit-reached",
        "gateledger-budget-projected-exhaustion",
        "gateledger-axonflow-budget-warning",
    ]
    for rule in group["rules"]:
        assert not {"orgID", "folderUID", "ruleGroup"} & set(rule), "file format takes these at group level"
        a, b = rule["data"]
        assert a["datasourceUid"] == CLICKHOUSE_UID and a["model"]["format"] == 1
        assert b["datasourceUid"] == "__expr__" and b["model"]["type"] == "threshold"
        assert rule["condition"] == "B" and rule["notification_settings"]["receiver"] == alert_rules.RECEIVER
    api = alert_rules.rule_group()
    assert all(r["folderUID"] == FOLDER_UID and r["ruleGroup"] == alert_rules.GROUP for r in api["rules"])
    cps = yaml.safe_load(build.artifacts()[build.ALERTING / "gateledger-contact-points.yaml"])
    assert cps["contactPoints"][0]["name"] == alert_rules.RECEIVER


def test_hand_written_provisioning_agrees_with_the_code() -> None:
    ds = yaml.safe_load((build.ROOT / "provisioning/datasources/gateledger.yaml").read_text())["datasources"]
    by_uid = {d["uid"]: d for d in ds}
    assert by_uid[CLICKHOUSE_UID]["type"] == CLICKHOUSE_TYPE
    assert {"host", "port", "protocol", "username", "defaultDatabase", "secure"} <= set(
        by_uid[CLICKHOUSE_UID]["jsonData"]
    )
    assert by_uid[CLICKHOUSE_UID]["secureJsonData"]["password"].startswith("$"), (
        "the password comes from the environment"
    )
    assert by_uid["gateledger-prometheus"]["type"] == "prometheus"
    providers = yaml.safe_load((build.ROOT / "provisioning/dashboards/gateledger.yaml").read_text())[
        "providers"
    ]
    assert providers[0]["folderUid"] == FOLDER_UID and providers[0]["options"]["path"]
    # Every generated dashboard is valid JSON with the uid it is named after.
    for path in build.GENERATED.glob("*.json"):
        assert json.loads(path.read_text())["uid"] == path.stem
