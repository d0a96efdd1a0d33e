"""`gateledger up` plans the AxonFlow audit poller only when GATELEDGER_AXONFLOW_URL is set, and the
planned process polls AxonFlow (the fake of tests/producers/fake_axonflow.py) onto the real broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateledger.settings import Settings
from gateledger.stack.broker import TansuBroker
from gateledger.stack.supervisor import Supervisor
from producers.polling.checkpoint import CheckpointStore
from tests.conftest import Processes
from tests.producers.fake_obot_api import ServedInThread
from tests.producers.fake_axonflow import FakeAxonFlow


def _planned(broker: TansuBroker, tmp_path: Path) -> dict[str, object]:
    supervisor = Supervisor(Settings())
    supervisor.broker = broker  # the session's real broker: the plan needs only its address
    return {s.name: s for s in supervisor._plan_services(tmp_path)}  # noqa: SLF001


def test_up_starts_the_axonflow_poller_only_when_configured(
        gl_env: dict[str, str], broker: TansuBroker, processes: Processes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATELEDGER_AXONFLOW_URL", raising=False)
    assert "axonflow-poller" not in _planned(broker, tmp_path)
    api = FakeAxonFlow()
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    api.audit_trail = [{"id": "audit_1", "request_id": "req-1", "timestamp": at, "client_id": "acme",
                        "tenant_id": "acme", "request_type": "chat", "policy_decision": "allowed",
                        "provider": "openai", "model": "gpt-4o", "response_time_ms": 5, "tokens_used": 10,
                        "cost": 0.0001}]
    with ServedInThread(api) as axonflow:  # type: ignore[arg-type]
        for k, v in {"GATELEDGER_AXONFLOW_URL": axonflow.url, "GATELEDGER_AXONFLOW_CLIENT_ID": "acme",
                     "GATELEDGER_AXONFLOW_CLIENT_SECRET": "s3cret", "GATELEDGER_AXONFLOW_INTERVAL_S": "0.5"}.items():
            monkeypatch.setenv(k, v)
        service = _planned(broker, tmp_path)["axonflow-poller"]
        assert service.argv[-2:] == ["serve", "axonflow-poller"] and service.health_url is None  # type: ignore[attr-defined]
        proc = processes.start(service.argv, service.env, tmp_path / "axonflow-poller.log")  # type: ignore[attr-defined]
        store = CheckpointStore(Path(gl_env["GATELEDGER_DATA_DIR"]) / "axonflow-poller", "axonflow")
        deadline = time.monotonic() + 60
        while "audit_1" not in store.load("audit").recent:
            assert proc.poll() is None, (tmp_path / "axonflow-poller.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "axonflow-poller.log").read_text()
            time.sleep(0.2)
    searches = [headers for _, path, headers, _ in api.seen if path == "/api/v1/audit/search"]
    assert searches and all(h["Authorization"].startswith("Basic ") for h in searches), "its credentials are sent"
