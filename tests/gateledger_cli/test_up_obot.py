"""`gateledger up` with GATELEDGER_OBOT_URL pointed at an Obot API of each version line, and
`gateledger ingest` of an Obot audit-log export folder, twice (subprocesses, real broker and chDB)."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.gateledger_cli.test_up_and_cli import clean_env, count, run, stack_count
from tests.conftest import Processes
from tests.producers.fake_obot_api import FakeObotApi, ServedInThread, llm_row, local_row, mcp_row, present_event

NOW = datetime.now(UTC).replace(microsecond=0)


def start_stack(tmp_path: Path, processes: Processes, obot_url: str) -> tuple[dict[str, str], object, Path]:
    data = tmp_path / "data"
    env = clean_env(data) | {"GATELEDGER_OBOT_URL": obot_url, "GATELEDGER_OBOT_TOKEN": "obot-api-key",
                             "GATELEDGER_OBOT_INTERVAL_S": "0.5", "GATELEDGER_OBOT_PAGE_SIZE": "20"}
    log = tmp_path / "up.log"
    up = processes.gateledger("up", env=env, log=log)
    deadline = time.monotonic() + 120
    while not (data / "stack.json").exists():
        assert up.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return env, up, log


def wait_counts(env: dict[str, str], want: dict[str, int], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    got: dict[str, int] = {}
    while time.monotonic() < deadline:
        got = {sql: stack_count(Path(env["GATELEDGER_DATA_DIR"]), sql) for sql in want}
        if got == want:
            return
        time.sleep(0.5)
    poller = (log.parent / "data" / "logs" / "poller.log")
    raise AssertionError(f"{got} != {want}\n" + (poller.read_text() if poller.exists() else log.read_text()))


def stop(up: object, log: Path) -> None:
    up.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert up.wait(60) == 0, log.read_text()  # type: ignore[attr-defined]


def write_export(folder: Path) -> int:
    """An export bucket as Obot writes it (auditlogexport.go generateExportPath + formatLogs)."""
    mcp = folder / "mcp-audit-logs" / "2026" / "11" / "30"
    llm = folder / "llm-audit-logs" / "2026" / "11" / "30"
    mcp.mkdir(parents=True)
    llm.mkdir(parents=True)
    t = NOW - timedelta(days=3)
    rows = [mcp_row(5000 + i, t + timedelta(seconds=i), 9) for i in range(8)]
    rows += [local_row(6000 + i, t + timedelta(seconds=i), t + timedelta(seconds=i + 2)) for i in range(5)]
    (mcp / "nightly-2026-11-30T00:00:00Z.jsonl").write_text(
        "".join(json.dumps(present_event(r, details=True, redacted=False)) + "\n" for r in rows))
    (llm / "nightly-2026-11-30T00:00:00Z.jsonl").write_text(
        "".join(json.dumps(llm_row(7000 + i, t + timedelta(seconds=i), 3)) + "\n" for i in range(6)))
    return len(rows) + 6


def test_up_against_obot_v024_lands_mcp_local_agent_and_llm_calls_and_an_export_once(
        tmp_path: Path, processes: Processes) -> None:
    api = FakeObotApi(version="0.24")
    api.add_mcp(30, NOW - timedelta(minutes=20), step_s=15, tie=2, api_key_id=7)
    api.add_local(10, NOW - timedelta(minutes=15), step_s=20)
    api.add_llm(12, NOW - timedelta(minutes=10), step_s=10, api_key_id=42)
    with ServedInThread(api) as obot:
        env, up, log = start_stack(tmp_path, processes, obot.url)
        wait_counts(env, {
            "SELECT count() FROM gateledger.mcp_calls FINAL WHERE source = 'obot/default/mcp'": 30,
            "SELECT count() FROM gateledger.local_agent_tool_calls FINAL WHERE device_id != ''": 10,
            "SELECT count() FROM gateledger.llm_calls FINAL WHERE api_key_id = '42'": 12,
        }, log)
        assert api.refused == [], f"refused requests: {api.refused[:5]}"
        assert count(env, "SELECT count() FROM gateledger.mcp_calls FINAL WHERE session_id = ''") == 0, \
            "details (session ids) fetched for correlation"
        assert count(env, "SELECT count() FROM gateledger.local_agent_tool_calls FINAL "
                          "WHERE time_source = 'client_reported' AND occurred_at IS NOT NULL") == 10

        # An export folder, ingested twice: every record once.
        n = write_export(tmp_path / "export")
        for _ in range(2):
            res = run("ingest", "--format", "obot-export", "--tenant", "exports", str(tmp_path / "export"), env=env)
            assert res.returncode == 0 and f"published {n} obot-export event(s); rejected 0" in res.stdout, res.stderr
        wait_counts(env, {
            "SELECT uniqExact(id) FROM gateledger.raw_events WHERE tenant = 'exports'": n,
            "SELECT count() FROM gateledger.raw_events FINAL WHERE tenant = 'exports'": n,
            "SELECT count() FROM gateledger.mcp_calls FINAL WHERE tenant = 'exports'": 8,
            "SELECT count() FROM gateledger.local_agent_tool_calls FINAL WHERE tenant = 'exports'": 5,
            "SELECT count() FROM gateledger.llm_calls FINAL WHERE tenant = 'exports' AND api_key_id = '3'": 6,
        }, log)
        stop(up, log)


def test_up_against_obot_v023_lands_what_it_has_without_a_backoff_loop(tmp_path: Path, processes: Processes) -> None:
    api = FakeObotApi(version="0.23")
    api.add_mcp(25, NOW - timedelta(minutes=20), step_s=15, tie=3)
    with ServedInThread(api) as obot:
        env, up, log = start_stack(tmp_path, processes, obot.url)
        wait_counts(env, {"SELECT count() FROM gateledger.mcp_calls FINAL WHERE source = 'obot/default/mcp'": 25}, log)
        cycles = len([1 for s, _ in api.requests if s == "mcp"])
        deadline = time.monotonic() + 30
        while len([1 for s, _ in api.requests if s == "mcp"]) < cycles + 5:  # five more polling cycles
            assert time.monotonic() < deadline, "the poller stopped polling"
            time.sleep(0.2)
        assert len([1 for s, _ in api.requests if s == "llm"]) == 1, "the LLM list is asked once, not in a loop"
        assert [p for p, _, _ in api.refused] == ["/api/llm-audit-logs"]
        stop(up, log)
    poller_log = (tmp_path / "data" / "logs" / "poller.log").read_text()
    assert "WARNING" not in poller_log, poller_log
