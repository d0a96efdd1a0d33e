"""The committed Prometheus and Alertmanager configuration, and renderings of it for other targets.

Alertmanager 0.25 reads no environment variables and has no ``url_file`` for webhooks, so "route to
another URL" means rendering the committed file with that URL (``gateledger dashboards
alertmanager-config``). Tests render it with a local receiver and short timings, so what they prove
is the committed routing tree, not a copy of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
RULES_DIR = ROOT / "prometheus" / "rules"
ALERTMANAGER_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"

_TIMINGS = ("group_wait", "group_interval", "repeat_interval")


def load_alertmanager() -> dict[str, Any]:
    """The committed Alertmanager configuration."""
    return yaml.safe_load(ALERTMANAGER_CONFIG.read_text())


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    out = [route]
    for child in route.get("routes") or []:
        out += _routes(child)
    return out


def webhook_urls(config: dict[str, Any]) -> list[str]:
    """Every webhook URL of every receiver."""
    return [w["url"] for r in config.get("receivers", []) for w in r.get("webhook_configs") or []]


def render_alertmanager(webhook_url: str | None = None, **timings: str) -> str:
    """The committed configuration with every webhook sent to ``webhook_url`` and, optionally,
    every route's ``group_wait`` / ``group_interval`` / ``repeat_interval`` replaced."""
    unknown = set(timings) - set(_TIMINGS)
    if unknown:
        raise ValueError(f"unknown route timings {sorted(unknown)}")
    config = load_alertmanager()
    if webhook_url is not None:
        for receiver in config.get("receivers", []):
            for webhook in receiver.get("webhook_configs") or []:
                webhook["url"] = webhook_url
    for route in _routes(config["route"]):
        for key, value in timings.items():
            if key in route or route is config["route"]:
                route[key] = value
    header = "# Rendered from dashboards/alertmanager/alertmanager.yml by `gateledger dashboards alertmanager-config`.\n"
    return header + yaml.safe_dump(config, sort_keys=False)
