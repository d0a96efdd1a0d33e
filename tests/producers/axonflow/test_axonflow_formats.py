"""AxonFlow's formats (producers/axonflow/formats.py): pre-checks, LLM-call audits, governance verdicts, audit-trail rows."""

from __future__ import annotations

import pytest

from gateledger.topics import Topic
from producers.accept import InvalidRecord, get_format
from tests import samples
from tests.samples import TRACE, ctx


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
