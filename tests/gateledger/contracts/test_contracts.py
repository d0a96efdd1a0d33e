"""The upstream wire models take each format exactly as sent, and keep what they do not know."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from gateledger.contracts import Envelope, McpCall, OUTPUT_MODELS
from gateledger.contracts.wire import (
    AxonFlowExchange,
    CloudEvent,
    JsonRpcMessage,
    LlmCallAuditRequest,
    ObotAuditLogEvent,
    ObotLlmAuditLog,
    ObotMcpAuditRecord,
    ObotShimAuditRecord,
    PreCheckRequest,
    PreCheckResponse,
)
from tests import samples


def test_flat_record_keeps_unknown_fields_and_reads_v023_client() -> None:
    rec = ObotMcpAuditRecord.model_validate(samples.obot_flat())
    assert rec.model_extra == {"someFutureField": {"kept": True}}
    assert rec.client_name() == "Cursor" and rec.client_version() == "1.7.2"
    assert rec.createdAt == datetime(2026, 11, 20, 10, 15, 0, 123000, tzinfo=UTC)
    assert rec.wire_dict()["someFutureField"] == {"kept": True}


def test_shim_variant_flattens_subject_and_metadata() -> None:
    flat = ObotShimAuditRecord.model_validate(samples.obot_shim()).flattened()
    assert flat.userID == "user-7"
    assert flat.mcpID == "ms1abc" and flat.mcpServerCatalogEntryName == "github"
    assert flat.client_name() == "Cursor"


def test_newer_storage_nests_mcp_fields() -> None:
    rec = ObotMcpAuditRecord.model_validate({"mcpFields": {"mcpID": "ms9"}, "sourceType": "mcp"})
    assert rec.mcp_field("mcpID") == "ms9"


def test_numeric_jsonrpc_ids_become_strings() -> None:
    rec = ObotMcpAuditRecord.model_validate({"requestID": 12})
    assert rec.requestID == "12"
    with pytest.raises(ValidationError):
        ObotMcpAuditRecord.model_validate({"requestID": True})


def test_audit_log_event_nested_shape() -> None:
    ev = ObotAuditLogEvent.model_validate(samples.obot_audit_event())
    assert ev.actor and ev.actor.id == "user-7"
    assert ev.target and ev.target.parent and ev.target.parent.id == "ms1abc"
    assert ev.details and ev.details.trace and ev.details.trace.requestID == "7"
    assert ev.outcome and ev.outcome.status == "success"


def test_llm_audit_log() -> None:
    rec = ObotLlmAuditLog.model_validate(samples.obot_llm())
    assert rec.inputTokens == 1200 and rec.outcome == "success"


def test_jsonrpc_message_kinds() -> None:
    assert JsonRpcMessage.model_validate(samples.webhook_message()).meta()["request_id"] == "req-1"
    assert JsonRpcMessage.model_validate({"jsonrpc": "2.0", "id": 1, "result": {"ok": 1}})
    assert JsonRpcMessage.model_validate({"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "x"}})
    with pytest.raises(ValidationError):
        JsonRpcMessage.model_validate({"jsonrpc": "1.0", "method": "x"})
    with pytest.raises(ValidationError):
        JsonRpcMessage.model_validate({"jsonrpc": "2.0", "id": 1})


def test_axonflow_models() -> None:
    ex = AxonFlowExchange.model_validate(samples.precheck())
    req = PreCheckRequest.model_validate(ex.request)
    resp = PreCheckResponse.model_validate(ex.response)
    assert req.client_id == "support-bot" and resp.context_id == "ctx-1" and resp.approved is True
    audit = LlmCallAuditRequest.model_validate(samples.llm_audit()["request"])
    assert audit.token_usage and audit.token_usage.prompt_tokens == 1200
    with pytest.raises(ValidationError):
        PreCheckRequest.model_validate({"client_id": "x"})  # query is required
    with pytest.raises(ValidationError):
        LlmCallAuditRequest.model_validate({"context_id": "c", "provider": "p", "model": "m",
                                            "token_usage": {"prompt_tokens": -1}})


def test_cloudevent_requires_spec_fields() -> None:
    ce = CloudEvent.model_validate(samples.cloudevent())
    assert ce.model_extra and ce.model_extra["tenant"] == "acme"
    with pytest.raises(ValidationError):
        CloudEvent.model_validate({"specversion": "0.3", "id": "1", "source": "s", "type": "t"})
    base = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}
    # cloudevents/spec: formats/json-format.md 3.1 (data xor data_base64); spec.md (non-empty subject, dataschema)
    for bad in ({"data": {}, "data_base64": "e30="}, {"subject": ""}, {"dataschema": ""}, {"id": ""}):
        with pytest.raises(ValidationError):
            CloudEvent.model_validate(base | bad)
    assert CloudEvent.model_validate(base | {"data_base64": "e30="}).data_base64 == "e30="


def test_envelope_is_strict_and_utc() -> None:
    env = Envelope(id="x", source="s", type="t", time="2026-01-01T01:00:00+01:00",
                   received_at=datetime(2026, 1, 1, tzinfo=UTC), tenant="acme")
    assert env.time == datetime(2026, 1, 1, tzinfo=UTC) and env.time.tzinfo is not None
    with pytest.raises(ValidationError):
        Envelope(id="x", source="s", type="t", time=env.time, received_at=env.time, tenant="a", extra=1)


def test_every_output_model_names_topic_and_table() -> None:
    tables = {m.table for m in OUTPUT_MODELS}
    assert len(tables) == len(OUTPUT_MODELS)
    assert McpCall.table == "mcp_calls"


def test_go_json_writes_what_gos_encoding_json_writes() -> None:
    """AxonFlow's answers are Go's json.Encoder output (getaxonflow/axonflow platform/agent/
    gateway_handlers.go); these expectations are Go's documented encoding rules (encoding/json
    floatEncoder: 'f' format in [1e-6, 1e21), else 'e' with a two-digit negative exponent trimmed;
    HTML-safe escaping of <, >, & and U+2028/2029; time.Time as RFC 3339 with nanoseconds, trailing
    zeros trimmed)."""
    from gateledger.contracts.wire.axonflow import GoFloat, go_json, go_time

    cases = {2.5: "2.5", 2.0: "2", 125.0: "125", 0.1: "0.1", 1e-7: "1e-7", 1.5e-10: "1.5e-10", 1e21: "1e+21",
             123456789.125: "123456789.125", 1e20: "100000000000000000000", 0.0: "0", -3.75: "-3.75"}
    for value, text in cases.items():
        assert go_json(GoFloat(value)) == f"{text}\n".encode(), value
    assert go_json({"b": 1, "a": [True, None, "<a&b>\u2028é"]}) == \
        '{"b":1,"a":[true,null,"\\u003ca\\u0026b\\u003e\\u2028é"]}\n'.encode()
    assert go_time(1_773_100_800_000_000_000) == "2026-03-10T00:00:00Z"
    assert go_time(1_773_100_800_123_456_789) == "2026-03-10T00:00:00.123456789Z"
    assert go_time(1_773_100_800_100_000_000) == "2026-03-10T00:00:00.1Z"
