"""Obot's formats (producers/obot/formats.py): flat and shim records, audit events, LLM logs, export lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateledger.topics import Topic
from producers.accept import InvalidRecord, get_format
from tests import samples
from tests.samples import TRACE, ctx


def test_obot_flat_and_shim() -> None:
    p = get_format("obot-audit")(samples.obot_flat(), ctx(install="prod"))
    env = p.envelope
    assert p.topic is Topic.RAW_OBOT_MCP
    assert env.source == "obot/prod/mcp" and env.type == "obot.mcp.call"
    assert env.time == datetime(2026, 11, 20, 10, 15, 0, 123000, tzinfo=UTC)
    assert env.subject == "user-7" and env.session_id == "sess-1"
    assert env.request_id == "req-1" and env.trace_id == TRACE
    assert p.key == "ms1abc|sess-1|7"
    assert env.data["someFutureField"] == {"kept": True}
    shim = get_format("obot-audit")(samples.obot_shim(), ctx(install="prod"))
    assert shim.key == p.key, "both halves and both variants meet in one partition"
    assert shim.envelope.subject == "user-7"
    assert shim.envelope.data["mcpID"] == "ms1abc" and "metadata" not in shim.envelope.data


def test_shim_records_without_ids_hash_their_content() -> None:
    a = get_format("obot-audit")(samples.obot_shim(), ctx()).envelope.id
    b = get_format("obot-audit")(samples.obot_shim(processingTimeMs=1), ctx()).envelope.id
    assert a != b


def test_audit_event_shares_id_with_flat_record_of_same_row() -> None:
    flat = get_format("obot-audit")(samples.obot_flat(), ctx()).envelope
    ev = get_format("obot-audit-event")(samples.obot_audit_event(), ctx()).envelope
    assert flat.id == ev.id
    assert ev.type == "obot.mcp.audit_event" and ev.subject == "user-7" and ev.request_id == "req-1"


def test_obot_llm_masks_key_and_pii() -> None:
    p = get_format("obot-llm")(samples.obot_llm(), ctx())
    text = p.envelope.model_dump_json()
    assert "sk-proj" not in text and "a.b@example.com" not in text
    assert p.topic is Topic.RAW_OBOT_LLM and p.envelope.request_id == "req-1"


def test_obot_export_lines_of_every_kind() -> None:
    """pkg/controller/handlers/auditlogexport/auditlogexport.go (obot-platform/obot): AuditLogEvent or
    LLMAuditLog lines from v0.24, flat MCP records before; ids as the poller's, so overlaps collapse."""
    fmt = get_format("obot-export")
    for record, etype, same_as in (
        (samples.obot_audit_event(), "obot.mcp.audit_event", "obot-audit-event"),
        (samples.obot_local_agent_event(), "obot.local_agent.tool_call", "obot-audit-event"),
        (samples.obot_llm(apiKeyID=42), "obot.llm.call", "obot-llm"),
        (samples.obot_flat(), "obot.mcp.call", "obot-audit"),
    ):
        env = fmt(record, ctx()).envelope
        assert env.type == etype and env.id == get_format(same_as)(record, ctx()).envelope.id
    with pytest.raises(InvalidRecord):
        fmt({"hello": "world"}, ctx())
