"""Every upstream format becomes a canonical envelope: deterministic id, event time, keys, masked data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateledger.masking import Masker
from gateledger.topics import RAW_SOURCE, Format, Topic
from producers import accept
from producers.accept import IngestContext, InvalidRecord, formats, get_format
from tests import samples
from tests.samples import TRACE

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def ctx(**kw: object) -> IngestContext:
    kw.setdefault("received_at", NOW)
    return IngestContext(masker=Masker(salt=b"s"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", sorted(formats()))
def test_each_format_is_deterministic(fmt: str) -> None:
    build = samples.ALL_FORMATS[fmt]
    a = get_format(fmt)(build(), ctx())
    b = get_format(fmt)(build(), ctx(received_at=datetime(2027, 1, 1, tzinfo=UTC)))
    assert a.envelope.id == b.envelope.id, "re-publishing the same record must give the same id"
    assert a.envelope.time.tzinfo is not None
    assert a.key
    # The registry says where each format publishes and what the normalize stage accepts there.
    source = RAW_SOURCE[a.topic]
    assert fmt in source.formats, f"{fmt} published to {a.topic}, which gateledger/topics.py does not list it for"
    assert not source.types or a.envelope.type in source.types


def test_registry_refuses_a_system_mapping_other_formats_than_it_lists() -> None:
    by_system = accept._by_system()
    by_system["axonflow"] = dict(by_system["axonflow"])
    del by_system["axonflow"][Format.AXONFLOW_AUDIT_ENTRY]
    with pytest.raises(RuntimeError, match="producers/axonflow/formats.py"):
        accept._collect(by_system)


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


def test_axonflow_precheck_and_audit() -> None:
    pre = get_format("axonflow-precheck")(samples.precheck(), ctx())
    assert pre.envelope.tenant == "acme" and pre.envelope.source == "axonflow/acme"
    assert pre.envelope.context_id == "ctx-1" and pre.envelope.request_id == "req-1"
    assert pre.key == "ctx-1"
    assert "utok-secret-value-123" not in pre.envelope.model_dump_json()
    assert pre.envelope.data["request"]["user_token"].startswith("hmac:")
    audit = get_format("axonflow-llm-call")(samples.llm_audit(), ctx())
    assert audit.key == "ctx-1" and audit.topic is Topic.RAW_AXONFLOW
    assert audit.envelope.data["audit_id"] == "aud-1"


def test_cloudevents_extensions() -> None:
    env = get_format("cloudevents")(samples.cloudevent(), ctx()).envelope
    assert env.tenant == "acme" and env.request_id == "req-1" and env.type == "gateledger.llm.call"


@pytest.mark.parametrize(
    ("fmt", "record", "reason"),
    [
        ("obot-audit", [1, 2], "schema"),
        ("obot-audit", {"createdAt": "not a time"}, "schema"),
        ("obot-llm", {"createdAt": "2026-01-01T00:00:00Z"}, "schema"),
        ("obot-webhook", {"jsonrpc": "2.0"}, "schema"),
        ("axonflow-precheck", {"response": {}}, "schema"),
        ("axonflow-llm-call", {"request": {"context_id": "c"}}, "schema"),
        ("cloudevents", {"specversion": "1.0", "id": "", "source": "s", "type": "t"}, "schema"),
    ],
)
def test_invalid_records_are_explained(fmt: str, record: object, reason: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        get_format(fmt)(record, ctx())
    assert err.value.reason == reason and str(err.value)


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="one of"):
        get_format("nope")


def test_axonflow_governance_exchange() -> None:
    """An MCP check-input verdict: its own type, AxonFlow's decision_id for the id, the caller's trace."""
    p = get_format("axonflow-governance")(samples.mcp_check_input(), ctx())
    env = p.envelope
    assert p.topic is Topic.RAW_AXONFLOW and env.type == "axonflow.mcp_check" and env.tenant == "acme"
    assert env.trace_id == TRACE and p.key == TRACE
    assert env.id == get_format("axonflow-governance")(samples.mcp_check_input(status=403), ctx()).envelope.id
    with pytest.raises(InvalidRecord):
        get_format("axonflow-governance")(samples.mcp_check_input(path="/api/v1/other"), ctx())
    with pytest.raises(InvalidRecord):
        get_format("axonflow-governance")(samples.mcp_check_input(request={"statement": "x"}), ctx())


def test_axonflow_audit_entry() -> None:
    """A row of AxonFlow's audit trail: keyed by the pre-check's context, its email pseudonymized."""
    p = get_format("axonflow-audit-entry")(samples.axonflow_audit_entry(), ctx())
    env = p.envelope
    assert env.type == "axonflow.audit_entry" and env.context_id == "ctx-1" and p.key == "ctx-1"
    assert env.tenant == "acme" and env.source == "axonflow/acme/audit"
    assert "alice@example.com" not in str(env.data)
    locked = get_format("axonflow-audit-entry")(samples.axonflow_audit_entry(), ctx(tenant="t1", tenant_locked=True))
    assert locked.envelope.tenant == "t1", "the poller's configured tenant wins"
    with pytest.raises(InvalidRecord):
        get_format("axonflow-audit-entry")(samples.axonflow_audit_entry(timestamp="yesterday"), ctx())


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
