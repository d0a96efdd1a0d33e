"""AxonFlow's audit trail fills what the tap missed (normalize + correlate on the local pipeline, and the cost).

Rows as audit_logger.go writes them (proxy-mode LLM calls: provider, model, tokens_used, cost) and
as recordGatewayPreCheckAudit writes gateway pre-checks (plane gateway, no provider or tokens).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateledger.contracts.events import LlmCall
from gateledger.money.catalog import load_catalog
from gateledger.money.cost import llm_cost
from gateledger.topics import Topic
from stream_processors.normalize.axonflow_trail import AUDIT_TRAIL_USAGE_NOTE
from tests import samples
from tests.stream_processors import traffic
from tests.stream_processors.harness import envelope
from tests.stream_processors.test_logic import close_all, pipeline, raw
from tests.stream_processors.traffic import T0, Spec


def _row(n: int, at: datetime, **over: object) -> object:
    rec = samples.axonflow_audit_entry(id=f"audit_{n}", request_id=f"ctx-{n}",
                                       timestamp=at.isoformat().replace("+00:00", "Z"), **over)
    return envelope("axonflow-audit-entry", rec, tenant="acme", received_at=at + timedelta(minutes=2))


def test_the_audit_trail_fills_calls_the_tap_missed_and_never_counts_one_twice() -> None:
    tapped = Spec(n=1, t0=T0, tools=0)
    pl = pipeline(audit_gap_fill_s=300)  # the trail fills a call 5 minutes after its time (default: the retention)
    later = T0 + timedelta(seconds=30)
    pl.feed([raw(traffic.precheck(tapped, T0)), raw(traffic.audit(tapped, T0 + timedelta(seconds=1)))])
    gap = _row(2, later, model="gpt-4o-mini", tokens_used=2000, cost=0.0012)
    pl.feed([
        raw(_row(1, later)),  # the tap recorded ctx-1's audit: already an LlmCall
        raw(gap),  # never through the tap
        raw(_row(3, later, provider="", model="", tokens_used=0, cost=None, plane="gateway",
                 request_type="decision_llm")),  # a gateway pre-check the tap never saw
        raw(_row(4, later, policy_decision="blocked", provider="", model="", plane="gateway",
                 request_type="decision_llm")),  # blocked: no call followed
        raw(gap),  # read again in the next poll's overlap
    ])
    close_all(pl, timedelta(minutes=10))
    calls = pl.final(str(Topic.LLM_CALLS))
    filled = [c for c in calls.values() if c["context_id"] == "ctx-2"]
    assert sorted(c["context_id"] for c in calls.values()) == ["ctx-1", "ctx-2"], "one call per context"
    (call,) = filled
    assert call["model"] == "gpt-4o-mini" and call["status"] == "success" and call["latency_ms"] == 1430
    assert (call["input_tokens"], call["output_tokens"], call["total_tokens"]) == (0, 2000, 2000)
    assert call["usage_note"].startswith(AUDIT_TRAIL_USAGE_NOTE) and "0.0012" in call["usage_note"]
    found = {f["context_id"]: f for f in pl.final(str(Topic.FINDINGS)).values()}
    assert sorted((f["kind"], c) for c, f in found.items()) == [
        ("untapped_llm_call", "ctx-2"), ("untapped_llm_call", "ctx-3")]
    assert "audited an LLM call (gpt-4o-mini)" in found["ctx-2"]["description"]
    assert "approved a pre-check" in found["ctx-3"]["description"]
    interactions = pl.final(str(Topic.INTERACTIONS))
    (gap_interaction,) = [i for i in interactions.values() if "ctx-2" in i["context_ids"]]
    assert gap_interaction["llm_calls"] == 1, "the filled call is part of an interaction like any other"

    # Priced at the output rate (the trail has no split), the note on the cost row.
    entry = llm_cost(LlmCall.model_validate(call), load_catalog(), computed_at=datetime.now(UTC)).entry
    assert not entry.unpriced and entry.input_cost_usd == 0
    assert entry.total_cost_usd == entry.output_cost_usd > Decimal(0)
    assert AUDIT_TRAIL_USAGE_NOTE in (entry.pricing_note or "")


def test_a_failed_call_in_the_trail_is_an_error_call_without_charge() -> None:
    pl = pipeline(audit_gap_fill_s=300)  # the trail fills a call 5 minutes after its time (default: the retention)
    pl.feed([raw(_row(5, T0, policy_decision="error", tokens_used=0, error_message="LLM routing failed"))])
    close_all(pl, timedelta(minutes=10))
    (call,) = pl.final(str(Topic.LLM_CALLS)).values()
    assert call["status"] == "error" and call["error"] == "LLM routing failed"
    entry = llm_cost(LlmCall.model_validate(call), load_catalog(), computed_at=datetime.now(UTC)).entry
    assert entry.total_cost_usd == 0 and not entry.unpriced
