"""``gateledger dashboards push`` through grafana-client, as a protocol test against a loopback stand-in
(tests/dashboards/fake_grafana.py): requests, authentication, idempotence, updates after drift.
Not a test of Grafana itself (none runs on these machines)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dashboards import alert_rules, build
from dashboards.datasources import CLICKHOUSE_UID, FOLDER_UID, PROMETHEUS_UID
from dashboards.push import Pusher, connect, contains
from dashboards.settings import GrafanaSettings
from tests.conftest import subprocess_env
from tests.dashboards.fake_grafana import FakeGrafana

TOKEN = "glsa_test_token"


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana(TOKEN, datasources=(CLICKHOUSE_UID,))
    yield fake
    fake.stop()


def _pusher(fake: FakeGrafana) -> Pusher:
    return Pusher(connect(GrafanaSettings(url=fake.url, token=TOKEN)))


def _outcomes(actions: list) -> dict[tuple[str, str], str]:
    return {(a.kind, a.uid): a.outcome for a in actions}


def test_first_push_creates_everything_second_changes_nothing(grafana: FakeGrafana) -> None:
    first = _outcomes(_pusher(grafana).push())
    assert first[("folder", FOLDER_UID)] == "created"
    assert first[("datasource", CLICKHOUSE_UID)] == "present"
    assert first[("datasource", PROMETHEUS_UID)] == "missing"
    for uid in build.DASHBOARDS:
        assert first[("dashboard", uid)] == "created"
    assert first[("contact-point", "gateledger-notifier-webhook")] == "created"
    for rule in alert_rules.rule_group()["rules"]:
        assert first[("alert-rule", rule["uid"])] == "created"

    # What Grafana holds is what we built, in our folder.
    for uid in build.DASHBOARDS:
        stored = grafana.dashboards[uid]
        assert stored["meta"]["folderUid"] == FOLDER_UID
        assert {
            k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")
        } == build.dashboard_json(uid)
    assert set(grafana.rules) == {r["uid"] for r in alert_rules.rule_group()["rules"]}

    writes_before = len(grafana.writes())
    second = _outcomes(_pusher(grafana).push())
    assert {o for (kind, _), o in second.items() if kind != "datasource"} == {"unchanged"}
    assert len(grafana.writes()) == writes_before, "an idempotent push writes nothing"
    assert all(grafana.dashboards[uid]["dashboard"]["version"] == 1 for uid in build.DASHBOARDS)


def test_drift_is_put_back(grafana: FakeGrafana) -> None:
    _pusher(grafana).push()
    # Someone edits a dashboard and a rule in the UI, renames the folder and moves the rule group's interval.
    grafana.dashboards["gateledger-cost"]["dashboard"]["title"] = "my cost dashboard"
    rule_uid = "gateledger-budget-limit-reached"
    grafana.rules[rule_uid]["data"][0]["model"]["rawSql"] = "SELECT 1"
    grafana.folders[FOLDER_UID]["title"] = "renamed"
    grafana.groups[(FOLDER_UID, alert_rules.GROUP)]["interval"] = 300

    third = _outcomes(_pusher(grafana).push())
    assert third[("dashboard", "gateledger-cost")] == "updated"
    assert third[("dashboard", "gateledger-sre")] == "unchanged"
    assert third[("alert-rule", rule_uid)] == "updated"
    assert third[("folder", FOLDER_UID)] == "updated"
    assert third[("rule-group", alert_rules.GROUP)] == "updated"
    assert (
        grafana.dashboards["gateledger-cost"]["dashboard"]["title"]
        == build.dashboard_json("gateledger-cost")["title"]
    )
    assert grafana.dashboards["gateledger-cost"]["dashboard"]["version"] == 2
    assert grafana.rules[rule_uid]["data"][0]["model"]["rawSql"] == alert_rules.LIMIT_REACHED_SQL
    assert grafana.groups[(FOLDER_UID, alert_rules.GROUP)]["interval"] == alert_rules.INTERVAL_S


def test_requests_are_authenticated_and_well_formed(grafana: FakeGrafana) -> None:
    _pusher(grafana).push()
    posts = {path: body for method, path, body in grafana.requests if method == "POST"}
    dash = posts["/api/dashboards/db"]
    assert dash["folderUid"] == FOLDER_UID and dash["overwrite"] is True and dash["dashboard"]["id"] is None
    rule = posts["/api/v1/provisioning/alert-rules"]
    assert rule["folderUID"] == FOLDER_UID and rule["ruleGroup"] == alert_rules.GROUP and rule["orgID"] == 1
    # Folder before anything that lives in it.
    paths = [p for m, p, _ in grafana.requests if m == "POST"]
    assert paths.index("/api/folders") < paths.index("/api/dashboards/db")


def test_failures_surface_and_bad_credentials_are_refused(grafana: FakeGrafana) -> None:
    grafana.fail_next = 500
    with pytest.raises(Exception, match="500"):
        _pusher(grafana).push()
    with pytest.raises(Exception, match="401|Unauthorized"):
        Pusher(connect(GrafanaSettings(url=grafana.url, token="wrong"))).push()


def test_push_command(grafana: FakeGrafana) -> None:
    env = subprocess_env({"GATELEDGER_GRAFANA_TOKEN": TOKEN})
    res = subprocess.run(
        [sys.executable, "-m", "gateledger_cli.main", "dashboards", "push", "--url", grafana.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "gateledger-sre" in res.stdout and "created" in res.stdout
    assert "missing" in res.stdout and "datasource" in res.stderr
    env["GATELEDGER_GRAFANA_TOKEN"] = "wrong"
    res = subprocess.run(
        [sys.executable, "-m", "gateledger_cli.main", "dashboards", "push", "--url", grafana.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 1 and "push to" in res.stderr


def test_contains() -> None:
    assert contains(
        {"a": 1, "b": {"c": [1, {"d": 2, "x": 0}]}, "extra": True}, {"a": 1, "b": {"c": [1, {"d": 2}]}}
    )
    assert not contains({"a": 1}, {"a": 2})
    assert not contains({"a": [1, 2]}, {"a": [1]}), "lists must match in length"
    assert contains({"v": 60}, {"v": 60.0}) and not contains({"v": "60"}, {"v": 60})


def test_grafana_client_left_urllib3_alone() -> None:
    """grafana-client's niquests brings urllib3-future, which replaces urllib3 unless installed with
    URLLIB3_NO_OVERRIDE=1 and --no-binary urllib3-future (the Makefile does): urllib3 must still be urllib3."""
    import urllib3

    files = importlib.metadata.files("urllib3-future") or []
    assert not any(str(f).startswith("urllib3/") for f in files), (
        "urllib3-future overwrote the urllib3 package"
    )
    assert urllib3.__version__ == importlib.metadata.version("urllib3")
