"""Shared fixtures: one real Tansu broker and one real chDB engine per session; every test gets its own
topic prefix, database and data directory, so tests never see each other's data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateledger.settings import Settings
from gateledger.stack.broker import TansuBroker

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A real Tansu broker on loopback for the whole session."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = TansuBroker(log_path=log)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB data directory this test process may open (chDB allows one per process)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def test_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def gl_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broker: TansuBroker, chdb_path: Path, test_id: str
) -> dict[str, str]:
    """Environment for this test: the session broker, a fresh topic prefix, database and data dir."""
    env = {
        "GATELEDGER_DATA_DIR": str(tmp_path / "data"),
        "GATELEDGER_TOPIC_PREFIX": f"t{test_id}.",
        "GATELEDGER_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "GATELEDGER_KAFKA_TANSU_WORKAROUNDS": "true",
        "GATELEDGER_CLICKHOUSE_URL": f"chdb://{chdb_path}",
        "GATELEDGER_CLICKHOUSE_DATABASE": f"gl_{test_id}",
        "GATELEDGER_MASKING_SALT": "test-salt",
        "GATELEDGER_SINK_GROUP_ID": f"sink-{test_id}",
        "GATELEDGER_PROCESSORS_APP_ID": f"proc-{test_id}",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def settings(gl_env: dict[str, str]) -> Settings:
    """Settings read from this test's environment."""
    return Settings()


@pytest.fixture
def ch_client(settings: Settings) -> Iterator[object]:
    """A client on this test's database, migrated."""
    from gateledger.clickhouse.client import connect
    from gateledger.clickhouse.migrate import migrate

    client = connect(settings.clickhouse, settings.core)
    migrate(client, settings.clickhouse)
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
    client.close()


class Processes:
    """Processes a test started; all of them are killed (whole process groups) at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if log:
            out.close()
        self.procs.append(proc)
        return proc

    def gateledger(self, *args: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
        return self.start([sys.executable, "-m", "gateledger_cli.main", *args], env, log)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    p = Processes()
    yield p
    p.stop_all()


def subprocess_env(overrides: dict[str, str]) -> dict[str, str]:
    """The current environment plus overrides (for child processes)."""
    env = dict(os.environ)
    env.update(overrides)
    return env
