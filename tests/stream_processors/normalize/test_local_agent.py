"""Local-agent tool calls (Obot v0.24+) through the normalize stage: their own rows, both clocks kept."""

from __future__ import annotations

from datetime import UTC, datetime

from gateledger.topics import Topic
from tests import samples
from tests.stream_processors.harness import envelope
from tests.stream_processors.test_logic import pipeline, raw


def test_a_local_agent_tool_call_becomes_its_row_with_device_tool_and_both_times() -> None:
    pl = pipeline()
    rec = samples.obot_local_agent_event()
    pl.feed([raw(envelope("obot-export", rec)), raw(envelope("obot-audit-event", rec))])  # one Obot row twice
    rows = pl.final(str(Topic.LOCAL_AGENT_TOOL_CALLS))
    assert len(rows) == 1 and not pl.final(str(Topic.MCP_CALLS))
    (row,) = rows.values()
    assert row["time"].startswith("2026-11-20T10:15:02"), "time is Obot's recordedAt"
    assert datetime.fromisoformat(row["occurred_at"]) == datetime(2026, 11, 20, 10, 13, 59, 500000, tzinfo=UTC)
    assert row["time_source"] == "client_reported" and row["actor_type"] == "device"
    assert (row["device_id"], row["hostname"], row["tool_name"], row["tool_kind"]) == ("dev-42", "alice-mbp", "Bash",
                                                                                      "shell")
    assert row["agent_provider"] == "claude_code" and row["status"] == "success" and row["duration_ms"] == 310
    assert row["tool_use_id"] == "toolu_01" and row["session_id"] == "cc-sess-1" and row["cwd"] == "/home/alice/src"
    assert row["reported_user"] and row["reported_user"] != "alice@example.com", "the e-mail is masked"
    assert not pl.by_topic().get(str(Topic.DEAD_LETTERS))
