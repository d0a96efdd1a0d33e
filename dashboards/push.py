"""``gateledger dashboards push``: install the dashboards, the budget alert rules and their contact point
into a running Grafana through its HTTP API (grafana-client), idempotently.

Everything is keyed by a fixed uid (folder ``gateledger``, dashboard uids, rule uids, contact-point
uid), so a second push changes nothing: each object is read first and written only when what we
hold differs from what Grafana has (compared as "Grafana's copy contains ours", so fields Grafana
adds on save do not count as differences). Rules are written with provenance, which keeps them
read-only in the UI: they are managed here.

Tested only against a local stand-in implementing the endpoints used here (a protocol test of this
code); never against a real Grafana, which this project's machines do not have.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from dashboards import alert_rules, build
from dashboards.datasources import CLICKHOUSE_UID, FOLDER_TITLE, FOLDER_UID, PROMETHEUS_UID
from dashboards.settings import GrafanaSettings

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "grafana-client is not installed: URLLIB3_NO_OVERRIDE=1 pip install --no-binary urllib3-future "
    "'gateledger[grafana]' (the variable and flag keep urllib3 itself in place)"
)


@dataclass(frozen=True)
class Action:
    """What push did to one Grafana object."""

    kind: str  # folder, dashboard, contact-point, alert-rule, rule-group, datasource
    uid: str
    outcome: str  # created, updated, unchanged, present, missing

    def __str__(self) -> str:
        return f"{self.kind:<14} {self.uid:<40} {self.outcome}"


def contains(remote: Any, local: Any) -> bool:
    """True when ``remote`` holds everything ``local`` does (extra keys in remote dicts are ignored)."""
    if isinstance(local, dict):
        return isinstance(remote, dict) and all(
            k in remote and contains(remote[k], v) for k, v in local.items()
        )
    if isinstance(local, list):
        return isinstance(remote, list) and len(remote) == len(local) and all(map(contains, remote, local))
    if isinstance(local, float) or isinstance(remote, float):
        return isinstance(remote, int | float) and float(remote) == float(local)
    return remote == local


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404


def connect(settings: GrafanaSettings) -> Any:
    """A grafana-client ``GrafanaApi`` for the configured server."""
    try:
        from grafana_client import GrafanaApi
    except ImportError as exc:  # the optional extra
        raise RuntimeError(INSTALL_HINT) from exc
    api = GrafanaApi.from_url(settings.url, credential=settings.credential(), timeout=settings.timeout_s)
    if settings.org_id is not None:
        api.client.s.headers["X-Grafana-Org-Id"] = str(settings.org_id)
    return api


class Pusher:
    """Brings one Grafana in line with the definitions in this package."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def push(self) -> list[Action]:
        """Folder, datasource presence, dashboards, contact point, alert rules, rule group (in that order)."""
        actions = [self.folder()]
        actions += [self.datasource(uid) for uid in (CLICKHOUSE_UID, PROMETHEUS_UID)]
        actions += [self.dashboard(build.dashboard_json(uid)) for uid in build.DASHBOARDS]
        actions.append(self.contact_point(alert_rules.contact_point()))
        group = alert_rules.rule_group()
        actions += [self.alert_rule(rule) for rule in group["rules"]]
        actions.append(self.rule_group(group))
        return actions

    def folder(self) -> Action:
        """The gateledger folder, by uid."""
        try:
            existing = self.api.folder.get_folder(FOLDER_UID)
        except Exception as exc:
            if not _not_found(exc):
                raise
            self.api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            return Action("folder", FOLDER_UID, "created")
        if existing.get("title") == FOLDER_TITLE:
            return Action("folder", FOLDER_UID, "unchanged")
        self.api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        return Action("folder", FOLDER_UID, "updated")

    def datasource(self, uid: str) -> Action:
        """Report whether a datasource the dashboards use exists (provisioning creates them; push does not)."""
        try:
            self.api.datasource.get_datasource_by_uid(uid)
        except Exception as exc:
            if not _not_found(exc):
                raise
            log.warning("Grafana has no datasource with uid %s: provision it (dashboards/provisioning)", uid)
            return Action("datasource", uid, "missing")
        return Action("datasource", uid, "present")

    def dashboard(self, dash: dict[str, Any]) -> Action:
        """One dashboard, by uid, in the gateledger folder."""
        uid = dash["uid"]
        ours = {k: v for k, v in dash.items() if k not in ("id", "version")}
        try:
            current = self.api.dashboard.get_dashboard(uid)
        except Exception as exc:
            if not _not_found(exc):
                raise
            current = None
        if current is not None:
            same_folder = (current.get("meta") or {}).get("folderUid") == FOLDER_UID
            if same_folder and contains(current.get("dashboard"), ours):
                return Action("dashboard", uid, "unchanged")
        payload = {
            "dashboard": {**copy.deepcopy(ours), "id": None},
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "gateledger dashboards push",
        }
        self.api.dashboard.update_dashboard(payload)
        return Action("dashboard", uid, "created" if current is None else "updated")

    def contact_point(self, cp: dict[str, Any]) -> Action:
        """The notifier's webhook contact point, by uid."""
        existing = [
            c
            for c in self.api.alertingprovisioning.get_contactpoints(name=cp["name"]) or []
            if c.get("uid") == cp["uid"]
        ]
        if not existing:
            self.api.alertingprovisioning.create_contactpoint(cp)
            return Action("contact-point", cp["uid"], "created")
        if contains(existing[0], cp):
            return Action("contact-point", cp["uid"], "unchanged")
        self.api.alertingprovisioning.update_contactpoint(cp["uid"], cp)
        return Action("contact-point", cp["uid"], "updated")

    def alert_rule(self, rule: dict[str, Any]) -> Action:
        """One Grafana-managed alert rule, by uid."""
        uid = rule["uid"]
        try:
            current = self.api.alertingprovisioning.get_alertrule(uid)
        except Exception as exc:
            if not _not_found(exc):
                raise
            self.api.alertingprovisioning.create_alertrule(rule)
            return Action("alert-rule", uid, "created")
        if contains(current, rule):
            return Action("alert-rule", uid, "unchanged")
        self.api.alertingprovisioning.update_alertrule(uid, rule)
        return Action("alert-rule", uid, "updated")

    def rule_group(self, group: dict[str, Any]) -> Action:
        """The rule group's evaluation interval (the rules themselves were written one by one)."""
        current = self.api.alertingprovisioning.get_rule_group(FOLDER_UID, group["title"])
        if current.get("interval") == group["interval"]:
            return Action("rule-group", group["title"], "unchanged")
        self.api.alertingprovisioning.update_rule_group(FOLDER_UID, group["title"], group)
        return Action("rule-group", group["title"], "updated")


def push(settings: GrafanaSettings | None = None) -> list[Action]:
    """Push everything to the configured Grafana."""
    return Pusher(connect(settings or GrafanaSettings())).push()
