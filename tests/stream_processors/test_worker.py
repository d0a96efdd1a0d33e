"""The processors worker (``gateledger serve processors``) on the real Tansu broker."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta
from pathlib import Path

from gateledger.settings import Settings
from gateledger.topics import Topic
from tests import samples
from tests.conftest import Processes
from tests.stream_processors import traffic
from tests.stream_processors.harness import Outputs, ensure_topics, envelope, publish, start_worker, wait_outputs
from tests.stream_processors.traffic import T0, Spec


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples matching the labels."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_each_upstream_format_and_metrics(settings: Settings, gl_env: dict[str, str], processes: Processes,
                                          tmp_path: Path) -> None:
    asyncio.run(ensure_topics(settings))
    now = T0 + timedelta(minutes=20)  # received after the samples happened (10:15): not future-dated
    items = [envelope(fmt, build(), received_at=now) for fmt, build in samples.ALL_FORMATS.items()]
    items.append(envelope("obot-audit", samples.obot_shim(), received_at=now))  # the shim variant
    items.append(envelope("cloudevents", samples.cloudevent(id="evt-2", type="gateledger.mcp.call", data={
        "method": "tools/call", "tool_name": "lookup", "mcp_server_id": "srv-9", "http_status": 200,
        "duration_ms": 12}), received_at=now))
    items.append(envelope("cloudevents", samples.cloudevent(id="evt-3", type="com.example.other"), received_at=now))
    asyncio.run(publish(settings, items))
    w = start_worker(processes, gl_env, tmp_path)

    def done(o: Outputs) -> bool:
        return len(o.final(Topic.MCP_CALLS)) >= 3 and len(o.final(Topic.LLM_CALLS)) >= 3 \
            and o.count(Topic.INTERACTIONS) >= 1

    out = asyncio.run(wait_outputs(settings, done))
    mcp = out.final(Topic.MCP_CALLS)
    # flat record and its AuditLogEvent are one Obot row (one id); the shim record another; the CloudEvent a third
    assert len(mcp) == 3
    assert {c["source"] for c in mcp.values()} == {"obot/default/mcp", "acme/gateway"}
    ce = next(c for c in mcp.values() if c["source"] == "acme/gateway")
    assert ce["tool_name"] == "lookup" and ce["status"] == "success" and ce["duration_ms"] == 12
    llm = out.final(Topic.LLM_CALLS)
    assert {c["source"] for c in llm.values()} == {"obot/default/llm", "axonflow/acme", "acme/gateway"}
    assert next(c for c in llm.values() if c["source"] == "axonflow/acme")["request_id"] == "req-1"
    assert len(out.final(Topic.POLICY_DECISIONS)) == 2  # the pre-check and the MCP check-input
    assert {d["origin"] for d in out.final(Topic.WEBHOOK_DECISIONS).values()} == {"obot_audit", "gateledger_filter"}
    assert not out.all(Topic.DEAD_LETTERS)
    metrics = w.metrics()
    assert _metric(metrics, "gateledger_processor_events_in_total", stage="normalize") == len(items)
    assert _metric(metrics, "gateledger_processor_events_out_total", stage="normalize", topic="mcp.calls") >= 3
    assert _metric(metrics, "gateledger_processor_events_skipped_total", reason="foreign_cloudevent_type") == 1
    assert _metric(metrics, "gateledger_processor_duplicates_total", stage="normalize") == 1  # flat == event
    for name in ("gateledger_processor_open_interactions", "gateledger_processor_state_entries",
                 "gateledger_processor_emit_delay_seconds_bucket", "gateledger_processor_consumer_lag_messages",
                 "gateledger_processor_dead_letters_total"):
        assert name in metrics or name.replace("_bucket", "") in metrics, name
    # Every raw message processed: the positions on the raw partitions add up to them, no lag left.
    deadline = time.monotonic() + 30
    while True:
        raw = _raw_partitions(w.metrics())
        positions = sum(p for p, _ in raw.values())
        if positions == len(items) and not any(lag for _, lag in raw.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert positions == len(items) and not any(lag for _, lag in raw.values()), raw


def _raw_partitions(text: str) -> dict[str, tuple[float, float]]:
    """(position, lag) per raw topic partition from the processors' metrics."""
    found: dict[str, dict[str, float]] = {}
    for m in re.finditer(r'^gateledger_processor_consumer_(position|lag_messages)\{(partition="[^"]*"),'
                         r'(topic="[^"]*raw\.[^"]*")\} (\S+)$', text, re.M):
        found.setdefault(m[2] + m[3], {})[m[1]] = float(m[4])
    return {k: (v.get("position", 0.0), v.get("lag_messages", 0.0)) for k, v in found.items()}


def test_duplicates_reversed_order_findings_and_a_six_hour_late_event(
        settings: Settings, gl_env: dict[str, str], processes: Processes, tmp_path: Path) -> None:
    asyncio.run(ensure_topics(settings))
    main = Spec(n=1, t0=T0, tools=2, reject_tool=1, filter_decision="rejected")  # pre-check+audit+2 tools+rejection
    blocked = Spec(n=2, t0=T0, tools=1, blocked=True)  # audit and tool call after a blocked pre-check: bypass
    unaudited = Spec(n=3, t0=T0, tools=0, audit=False, expires_in_s=2)
    zero = Spec(n=4, t0=T0, tools=0, zero_tokens=True)
    late = Spec(n=5, t0=T0, tools=1, halves=False)  # its audit comes 6 hours late
    orphan = Spec(n=6, t0=T0, tools=0)
    events = [p for s in (main, blocked, unaudited, zero) for _, p in traffic.interaction(s)]
    late_events = [p for _, p in traffic.interaction(late)]
    late_audit = late_events.pop(1)
    # main's events in reverse order and everything twice; the orphan audit has no pre-check at all
    batch = list(reversed(events)) + events + late_events + [traffic.audit(orphan, T0 + timedelta(seconds=1))]
    asyncio.run(publish(settings, batch))
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=5, orphan_grace_s=2, unaudited_grace_s=0)

    def by_req(o: Outputs) -> dict[str, dict]:
        return {r["request_id"]: r for r in o.final(Topic.INTERACTIONS).values()}

    def first_pass(o: Outputs) -> bool:
        kinds = {f["kind"] for f in o.final(Topic.FINDINGS).values()}
        return {"req-1", "req-2", "req-3", "req-4", "req-5"} <= set(by_req(o)) and \
            {"policy_bypass", "unaudited_llm_call", "suspect_usage", "orphan_audit"} <= kinds

    out = asyncio.run(wait_outputs(settings, first_pass))
    it = by_req(out)["req-1"]
    assert it["approved"] is True and it["llm_calls"] == 1 and it["tool_calls"] == 2 and it["webhook_rejections"] == 1
    assert it["total_tokens"] == 1200 and it["complete"] is True and it["status"] == "ok"
    assert len(it["event_ids"]) == 7
    # duplicates affected no output: each of main's events counted once, one row per typed event
    assert sum(1 for c in out.final(Topic.MCP_CALLS).values() if c["request_id"] == "req-1") == 2
    assert max(r["version"] for r in out.all(Topic.INTERACTIONS) if r["id"] == it["id"]) == it["version"]
    found = out.final(Topic.FINDINGS)
    bypass = next(f for f in found.values() if f["kind"] == "policy_bypass")
    # the blocked pre-check, the audit under its context, both halves of the tool call that ran
    assert bypass["request_id"] == "req-2" and len(bypass["evidence_event_ids"]) == 4
    assert by_req(out)["req-2"]["status"] == "bypass"
    una = next(f for f in found.values() if f["kind"] == "unaudited_llm_call")
    assert una["context_id"] == "ctx-3" and una["retracted"] is False
    assert next(f for f in found.values() if f["kind"] == "suspect_usage")["request_id"] == "req-4"
    assert next(f for f in found.values() if f["kind"] == "orphan_audit")["context_id"] == "ctx-6"
    before = by_req(out)["req-5"]
    assert before["llm_calls"] == 0 and before["complete"] is False

    # Six hours later, with traffic of that time flowing, the audit of req-5 (recorded in time) arrives.
    later = traffic.events_in_time_order(traffic.mixed(10, seed=2, start=T0 + timedelta(hours=6), first_n=100))
    asyncio.run(publish(settings, later))
    six_h = traffic.audit(late, T0 + timedelta(seconds=1), received=T0 + timedelta(hours=6, seconds=10))
    asyncio.run(publish(settings, [six_h]))
    out = asyncio.run(wait_outputs(settings, lambda o: by_req(o)["req-5"]["llm_calls"] == 1))
    after = by_req(out)["req-5"]
    assert after["id"] == before["id"] and after["version"] > before["version"]
    assert after["complete"] is True and after["close_reason"] == "late_update" and after["total_tokens"] == 1200
    # fired at expiry, withdrawn by the in-time audit: the finding must exist, else nothing was retracted
    ctx5 = [f for f in out.final(Topic.FINDINGS).values()
            if f["kind"] == "unaudited_llm_call" and f["context_id"] == "ctx-5"]
    assert len(ctx5) == 1, ctx5
    assert ctx5[0]["retracted"] is True
    assert not out.all(Topic.DEAD_LETTERS)


def test_health_endpoint_and_metric_names(settings: Settings, gl_env: dict[str, str], processes: Processes,
                                          tmp_path: Path) -> None:
    asyncio.run(ensure_topics(settings))
    w = start_worker(processes, gl_env, tmp_path)
    text = w.metrics()
    agreed = ["gateledger_processor_events_in_total", "gateledger_processor_events_out_total",
              "gateledger_processor_dead_letters_total", "gateledger_processor_duplicates_total",
              "gateledger_processor_open_interactions", "gateledger_processor_state_entries",
              "gateledger_processor_emit_delay_seconds", "gateledger_processor_consumer_lag_messages"]
    for name in agreed:
        assert re.search(rf"^# TYPE {name} ", text, re.M), name
