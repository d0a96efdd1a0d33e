"""The processors' pure logic, driven in-process (no broker): normalization, merge, join, dedup, correlation."""

from __future__ import annotations

import base64
import random
from datetime import timedelta

import pytest

from gateledger.clock import ManualClock
from gateledger.contracts.envelope import Envelope
from gateledger.money.usage import normalize_usage
from gateledger.topics import Topic, topic_name
from producers.accept import Published
from stream_processors.common.dedup import DedupWindow
from stream_processors.correlate.interaction import build, find_bypasses, is_complete, version_of
from stream_processors.local import LocalPipeline
from stream_processors.normalize.outcome import mcp_status
from stream_processors.settings import ProcessorSettings
from tests import samples
from tests.stream_processors import traffic
from tests.stream_processors.harness import envelope
from tests.stream_processors.traffic import T0, Spec

# Wall-clock fields: the only ones allowed to differ between runs over the same events.
WALL = {"emitted_at", "detected_at"}


def raw(p: Published) -> tuple[str, bytes, bytes]:
    return topic_name(p.topic, ""), p.key.encode(), p.envelope.model_dump_json(exclude_none=True).encode()


def pipeline(**settings: float) -> LocalPipeline:
    # The manual clock stands still while events are fed, so idle advance only happens in close_all.
    base = {"idle_advance_s": 1, "lateness_s": 1}
    return LocalPipeline(settings=ProcessorSettings(**(base | settings)), clock=ManualClock(T0))


def strip(rows: dict[str, dict]) -> dict[str, dict]:
    return {k: {f: v for f, v in r.items() if f not in WALL} for k, r in rows.items()}


def close_all(pl: LocalPipeline, after: timedelta = timedelta(days=3)) -> None:
    """Let event time run ``after`` past every partition's newest event (idle advance on a manual clock).

    In steps: what the first tick fires (an orphan audit's fact, say) arrives at the correlate stage
    as a fresh delivery of its source, which holds its tenant until the clock moves on again."""
    pl.clock.advance(seconds=after.total_seconds() + 1)  # type: ignore[attr-defined]
    pl.tick()
    for _ in range(2):
        pl.clock.advance(seconds=pl.settings.idle_advance_s + 1)  # type: ignore[attr-defined]
        pl.tick()


# -- field-level normalization ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "rejected", "want"),
    [(200, "", False, "success"), (401, "", False, "denied"), (403, "x", False, "denied"),
     (408, "", False, "timeout"), (504, "", False, "timeout"), (500, "", False, "failure"),
     (200, "boom", False, "failure"), (404, None, False, "failure"), (None, None, False, "unknown"),
     (0, None, False, "unknown"), (403, "blocked", True, "failure"), (201, None, False, "success")],
)
def test_mcp_outcome_from_http_status(status, error, rejected, want) -> None:
    assert mcp_status(status, error, rejected) == want


def test_token_naming_is_normalized() -> None:
    axon = normalize_usage({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120})
    assert (axon.input, axon.output, axon.total, axon.reported) == (100, 20, 120, True)
    openai = normalize_usage({"prompt_tokens": 100, "completion_tokens": 20,
                              "prompt_tokens_details": {"cached_tokens": 60}})
    assert (openai.input, openai.cache_read, openai.total) == (100, 60, 120)  # cached already inside prompt
    anthropic = normalize_usage({"input_tokens": 40, "output_tokens": 20, "cache_read_input_tokens": 50,
                                 "cache_creation_input_tokens": 10})
    assert (anthropic.input, anthropic.cache_read, anthropic.cache_write, anthropic.total) == (100, 50, 10, 120)
    otel = normalize_usage({"gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3})
    assert (otel.input, otel.output, otel.total) == (7, 3, 10)
    assert normalize_usage(None).reported is False and normalize_usage({}).reported is False


# -- every upstream format --------------------------------------------------------------------------


def test_each_format_becomes_its_typed_rows() -> None:
    pl = pipeline()
    pl.feed([raw(envelope(fmt, build())) for fmt, build in samples.ALL_FORMATS.items()])
    out = pl.by_topic()
    assert {r["source"] for r in out[str(Topic.MCP_CALLS)]} == {"obot/default/mcp"}
    # The flat record and the AuditLogEvent of the same Obot row are one event (same id): one call.
    assert len(pl.final(str(Topic.MCP_CALLS))) == 1
    llm = pl.final(str(Topic.LLM_CALLS))
    assert {r["source"] for r in llm.values()} == {"obot/default/llm", "axonflow/acme", "acme/gateway"}
    axon = next(r for r in llm.values() if r["source"] == "axonflow/acme")
    # Joined with its pre-check (same partition: both keyed by context_id): enriched, version 2.
    assert axon["version"] == 2 and axon["request_id"] == "req-1" and axon["input_tokens"] == 1200
    assert axon["output_tokens"] == 300 and axon["total_tokens"] == 1500 and axon["audit_id"] == "aud-1"
    policy = pl.final(str(Topic.POLICY_DECISIONS))
    (pd,) = [d for d in policy.values() if d["gate"] == "precheck"]
    (check,) = [d for d in policy.values() if d["gate"] == "mcp_check_input"]
    assert check["approved"] is False and check["tool_name"] == "delete_repo" and check["decision_id"] == "dec-1"
    assert pd["approved"] is True and pd["context_id"] == "ctx-1" and pd["user_token_hash"].startswith("hmac:")
    hooks = pl.final(str(Topic.WEBHOOK_DECISIONS))
    assert {h["origin"] for h in hooks.values()} == {"obot_audit", "gateledger_filter"}
    assert not pl.by_topic().get(str(Topic.DEAD_LETTERS))


def test_invalid_events_are_dead_lettered_with_reason_and_original() -> None:
    pl = pipeline()
    bad_llm = envelope("obot-llm", samples.obot_llm()).envelope.model_copy(update={"data": {"id": 5, "inputTokens": "x"}})
    foreign = envelope("cloudevents", samples.cloudevent(type="com.example.other")).envelope
    pl.feed([
        ("raw.obot.llm", b"k", b"{not json"),
        ("raw.obot.llm", b"k", b'{"id": "x"}'),
        ("raw.obot.llm", b"k", bad_llm.model_dump_json().encode()),
        ("raw.cloudevents", b"k", foreign.model_dump_json().encode()),
    ])
    dls = pl.by_topic()[str(Topic.DEAD_LETTERS)]
    assert [d["reason"] for d in dls] == ["invalid_json", "schema", "schema"]
    assert dls[0]["original"] == "{not json" and dls[0]["kafka_offset"] == 0 and dls[0]["stage"] == "normalize"
    assert "inputTokens" in dls[2]["error"]
    # A foreign CloudEvent type is not an error: kept in raw_events only.
    assert len(dls) == 3


# -- Obot request/response halves ------------------------------------------------------------------


def _halves(spec: Spec) -> list[Published]:
    return [p for _, p in traffic.interaction(spec) if p.topic == Topic.RAW_OBOT_MCP]


@pytest.mark.parametrize("reverse", [False, True])
def test_halves_merge_in_either_order(reverse: bool) -> None:
    items = _halves(Spec(n=1, t0=T0, tools=1))
    assert len(items) == 2
    pl = pipeline()
    pl.feed([raw(p) for p in (reversed(items) if reverse else items)])
    (call,) = pl.by_topic()[str(Topic.MCP_CALLS)]  # emitted once, when both halves are in
    assert call["complete"] is True and call["version"] == 2 and call["status"] == "success"
    assert call["method"] == "tools/call" and call["tool_name"] == "tool_0" and call["duration_ms"] == 80
    assert call["request_id"] == "req-1" and call["mcp_server_id"] == "ms-github"
    assert sorted(call["event_ids"]) == sorted(p.envelope.id for p in items)


def test_lone_half_times_out_incomplete_and_a_late_half_completes_it() -> None:
    req, resp = _halves(Spec(n=1, t0=T0, tools=1))
    pl = pipeline(mcp_merge_timeout_s=30)
    pl.feed([raw(req)])
    close_all(pl, timedelta(seconds=60))
    calls = [c for c in pl.by_topic()[str(Topic.MCP_CALLS)] if c["session_id"] == "sess-1"]
    assert len(calls) == 1 and calls[0]["complete"] is False and calls[0]["version"] == 1
    assert calls[0]["status"] == "unknown"
    pl.feed([raw(resp)])
    calls = [c for c in pl.by_topic()[str(Topic.MCP_CALLS)] if c["session_id"] == "sess-1"]
    assert [c["version"] for c in calls] == [1, 2] and calls[1]["complete"] is True
    assert calls[0]["id"] == calls[1]["id"]  # same exchange, same row: the sink keeps version 2
    assert calls[0]["time"] == calls[1]["time"]  # ...under the same sorting key


def test_lone_response_half_keeps_its_time_when_the_late_request_completes_it() -> None:
    req, resp = _halves(Spec(n=1, t0=T0, tools=1))
    pl = pipeline(mcp_merge_timeout_s=30)
    pl.feed([raw(resp)])
    close_all(pl, timedelta(seconds=60))
    pl.feed([raw(req)])
    calls = [c for c in pl.by_topic()[str(Topic.MCP_CALLS)] if c["session_id"] == "sess-1"]
    assert [c["version"] for c in calls] == [1, 2] and calls[1]["complete"] is True
    # Version 1 was emitted at the response's time; had version 2 moved to the (earlier) request
    # time, ClickHouse would hold two rows for the call and the usage rollups would count it twice.
    assert calls[0]["time"] == calls[1]["time"] == resp.envelope.time.isoformat().replace("+00:00", "Z")
    assert_sorting_key_stable(pl)


# -- AxonFlow pre-check <-> audit ------------------------------------------------------------------


def test_audit_before_precheck_is_enriched_when_the_precheck_arrives() -> None:
    spec = Spec(n=1, t0=T0, tools=0)
    pre = traffic.precheck(spec, T0)
    aud = traffic.audit(spec, T0 + timedelta(seconds=1))
    pl = pipeline()
    pl.feed([raw(aud), raw(pre)])
    llm = pl.by_topic()[str(Topic.LLM_CALLS)]
    assert [r["version"] for r in llm] == [1, 2]
    assert llm[0]["request_id"] is None and llm[1]["request_id"] == "req-1"
    assert sorted(llm[1]["event_ids"]) == sorted([aud.envelope.id, pre.envelope.id])
    assert not pl.by_topic().get(str(Topic.FINDINGS))


def test_unaudited_and_orphan_findings_and_their_retraction() -> None:
    a, b = Spec(n=1, t0=T0, tools=0), Spec(n=2, t0=T0, tools=0)
    pl = pipeline(unaudited_grace_s=10, orphan_grace_s=60)
    pre_a = traffic.precheck(a, T0)
    orphan_audit = traffic.audit(b, T0 + timedelta(seconds=2))  # no pre-check for ctx-2 (yet)
    pl.feed([raw(pre_a), raw(orphan_audit)])
    close_all(pl, timedelta(minutes=10))
    found = pl.final(str(Topic.FINDINGS))
    kinds = sorted(f["kind"] for f in found.values())
    assert kinds == ["orphan_audit", "unaudited_llm_call"]
    una = next(f for f in found.values() if f["kind"] == "unaudited_llm_call")
    assert una["evidence_event_ids"] == [pre_a.envelope.id] and una["context_id"] == "ctx-1"
    orph = next(f for f in found.values() if f["kind"] == "orphan_audit")
    assert orph["evidence_event_ids"] == [orphan_audit.envelope.id]
    # The audit recorded in time (event time before expires_at) arrives late: the finding is withdrawn.
    pl.feed([raw(traffic.audit(a, T0 + timedelta(seconds=1)))])
    una = pl.final(str(Topic.FINDINGS))[una["id"]]
    assert una["retracted"] is True and una["version"] == 2


def test_suspect_usage_zero_tokens() -> None:
    pl = pipeline()
    pl.feed([raw(envelope("obot-llm", samples.obot_llm(inputTokens=0, outputTokens=0)))])
    (f,) = pl.final(str(Topic.FINDINGS)).values()
    assert f["kind"] == "suspect_usage" and f["evidence_event_ids"]


# -- deduplication -------------------------------------------------------------------------------


def test_duplicates_affect_no_output() -> None:
    items = traffic.events_in_time_order(traffic.mixed(40, seed=3))
    once, twice = pipeline(), pipeline()
    once.feed([raw(p) for p in items])
    doubled = [raw(p) for p in items for _ in range(2)]
    twice.feed(doubled)
    for pl in (once, twice):
        close_all(pl)
    assert len(once.outputs) == len(twice.outputs)
    for topic in (Topic.MCP_CALLS, Topic.LLM_CALLS, Topic.INTERACTIONS, Topic.FINDINGS, Topic.WEBHOOK_DECISIONS):
        assert strip(once.final(str(topic))) == strip(twice.final(str(topic))), topic


def test_dedup_window_expires_by_event_time_and_reloads_from_chunks() -> None:
    w = DedupWindow(window_us=3600 * 10**6, bucket_us=600 * 10**6)
    w.add("t", "t|a", 0)
    w.add("t", "t|b", 1000 * 10**6)
    chunks = w.take_pending("s1")
    assert w.seen("t", "t|a") and w.seen("t", "t|b") and not w.seen("u", "t|a") and not w.seen("t", "t|c")
    assert w.expire("t", 3600 * 10**6) == []  # within the window
    dead = w.expire("t", (3600 + 600 + 1) * 10**6)
    assert [c for c in dead] == [chunks[0][2]] and not w.seen("t", "t|a") and w.seen("t", "t|b")
    fresh = DedupWindow(window_us=3600 * 10**6, bucket_us=600 * 10**6)
    for topic, bucket, key, value in chunks[1:]:
        fresh.load_chunk(key, topic, bucket, value)
    assert fresh.seen("t", "t|b") and not fresh.seen("t", "t|a") and len(fresh) == 1


def test_dedup_window_reads_chunks_of_the_older_layout_as_ids() -> None:
    # Before digests, a chunk held the "<tenant>|<id>" strings themselves (a JSON list).
    w = DedupWindow(window_us=3600 * 10**6, bucket_us=600 * 10**6)
    w.load_chunk("d|t|0|old", "t", 0, ["t|a", "t|b"])
    assert w.seen("t", "t|a") and w.seen("t", "t|b") and not w.seen("t", "t|c")
    w.add("t", "t|c", 1)
    ((_t, _b, _key, value),) = w.take_pending("new")
    assert isinstance(value, str) and len(value) == 16  # one 12-byte digest, base64
    assert sorted(w.expire("t", (3600 + 600 + 1) * 10**6)) == ["d|t|0|new", "d|t|0|old"]
    assert not w.seen("t", "t|a") and len(w) == 0


# -- correlation ---------------------------------------------------------------------------------


def test_interaction_with_precheck_audit_two_tool_calls_and_a_webhook_rejection() -> None:
    spec = Spec(n=1, t0=T0, tools=2, reject_tool=1, filter_decision="rejected")
    pl = pipeline()
    pl.feed([raw(p) for _, p in traffic.interaction(spec)])
    close_all(pl)
    (it,) = pl.final(str(Topic.INTERACTIONS)).values()
    assert it["request_id"] == "req-1" and it["context_ids"] == ["ctx-1"] and it["approved"] is True
    assert it["llm_calls"] == 1 and it["tool_calls"] == 2 and it["webhook_rejections"] == 1
    assert it["input_tokens"] == 1000 and it["output_tokens"] == 200 and it["total_tokens"] == 1200
    assert it["tools"] == ["tool_0", "tool_1"] and it["mcp_servers"] == ["GitHub"] and it["models"] == ["gpt-4o"]
    assert it["complete"] is True and it["status"] == "ok" and it["cost_usd"] is None
    assert it["latency_ms"] == 3005  # pre-check at t0 .. the rejected second tool call answered at t0 + 3.005 s
    # every event of the interaction is named: pre-check, audit, 2 x 2 halves, filter decision
    assert len(it["event_ids"]) == 7
    assert not pl.final(str(Topic.FINDINGS))


def assert_sorting_key_stable(pl: LocalPipeline) -> int:
    """Every version of an id has the same (tenant, time), else ClickHouse's FINAL keeps a row per
    time. Interactions are the exception (time = earliest event, which a late event can move: the
    views collapse them per id); returns how many interactions moved."""
    moved = 0
    for topic, rows in pl.by_topic().items():
        keys: dict[str, set[tuple[str, str]]] = {}
        for r in rows:
            keys.setdefault(r["id"], set()).add((r["tenant"], r["time"]))
        if topic == str(Topic.INTERACTIONS):
            moved += sum(len(k) > 1 for k in keys.values())
        else:
            assert all(len(k) == 1 for k in keys.values()), topic
    return moved


def test_final_interactions_do_not_depend_on_arrival_order() -> None:
    specs = traffic.mixed(60, seed=11)
    items = traffic.events_in_time_order(specs)
    reference = pipeline()
    reference.feed([raw(p) for p in items])
    close_all(reference)
    assert_sorting_key_stable(reference)
    moved = 0
    for seed in (1, 2):
        shuffled = list(items)
        random.Random(seed).shuffle(shuffled)
        pl = pipeline()
        pl.feed([raw(p) for p in shuffled], flush_every=7)
        close_all(pl)
        moved += assert_sorting_key_stable(pl)
        for topic in (Topic.INTERACTIONS, Topic.MCP_CALLS, Topic.LLM_CALLS, Topic.POLICY_DECISIONS):
            assert strip(pl.final(str(topic))) == strip(reference.final(str(topic))), topic
    assert moved  # late earlier events do move interactions: the views' per-id collapse is needed
    reversed_pl = pipeline()
    reversed_pl.feed([raw(p) for p in reversed(items)])
    close_all(reversed_pl)
    assert_sorting_key_stable(reversed_pl)
    assert strip(reversed_pl.final(str(Topic.INTERACTIONS))) == strip(reference.final(str(Topic.INTERACTIONS)))


def _fact(kind: str, key: str, t: int, **kw: object) -> dict:
    return {"kind": kind, "key": key, "v": 1, "ids": [key], "tenant": "acme", "root": "acme|r:x", "t": t, "te": t,
            "rcv": t} | kw


def test_bypass_detection_rules() -> None:
    blocked = _fact("policy", "p1", 0, ok=False, ctx="c1")
    approved_later = _fact("policy", "p2", 5, ok=True, ctx="c2")
    llm_blocked_ctx = _fact("llm", "l1", 1, ctx="c1")
    tool_after_block = _fact("mcp", "m1", 2, exe=True, tool="t", method="tools/call")
    tool_after_approval = _fact("mcp", "m2", 6, exe=True, tool="t", method="tools/call")
    found = find_bypasses([blocked, approved_later, llm_blocked_ctx, tool_after_block, tool_after_approval])
    assert len(found) == 1 and found[0].block["key"] == "p1"
    assert [o["key"] for o in found[0].offending] == ["l1", "m1"]
    rejected = _fact("mcp", "m3", 10, wrej=1, wrf=["dlp"], tool="t", sid="s", rpc="1", sess="x", ran=False,
                     exe=False)
    rejected_but_ran = _fact("mcp", "m4", 12, wrej=1, wrf=["dlp"], tool="u", sid="s", rpc="2", sess="x", ran=True,
                             exe=False)
    other_tool_later = _fact("mcp", "m5", 13, exe=True, tool="v", sid="s", wf=["dlp"])
    same_tool_unfiltered = _fact("mcp", "m6", 14, exe=True, tool="t", sid="s", wf=[])
    same_tool_passed = _fact("mcp", "m7", 15, exe=True, tool="t", sid="s", wf=["dlp"])  # a retry dlp accepted
    found = {b.block["key"]: [o["key"] for o in b.offending]
             for b in find_bypasses([rejected, rejected_but_ran, other_tool_later, same_tool_unfiltered,
                                     same_tool_passed])}
    assert found == {"m3": ["m6"], "m4": ["m4"]}


def test_interaction_version_is_a_function_of_the_fact_set() -> None:
    facts = [_fact("policy", "p", 0, ok=True, ctx="c"), _fact("llm", "l", 1, ctx="c", v=2, tin=5, ttot=5),
             _fact("mcp", "m", 2, v=2, complete=True, method="tools/call", tool="t")]
    assert version_of(facts) == 5 and is_complete(facts)
    a, _ = build("acme|r:x", facts, now=T0, timeout_us=10**9)
    b, _ = build("acme|r:x", list(reversed(facts)), now=T0, timeout_us=10**9)
    assert a == b and a.version == 5 and a.status == "ok"
    assert not is_complete(facts[:1])  # approved pre-check still waiting for its audit


def test_late_event_six_hours_after_is_folded_into_its_interaction() -> None:
    spec = Spec(n=1, t0=T0, tools=1, halves=False)
    evs = traffic.interaction(spec)
    pre, aud, tool = (p for _, p in evs)
    pl = pipeline()
    pl.feed([raw(pre), raw(tool)])
    # Lots of other traffic moves event time 6 hours on; then the audit (recorded in time) arrives.
    others = traffic.events_in_time_order(traffic.mixed(20, seed=5, start=T0 + timedelta(hours=6), first_n=100))
    pl.feed([raw(p) for p in others])
    close_all(pl, timedelta(hours=7))
    iid = next(r["id"] for r in pl.final(str(Topic.INTERACTIONS)).values() if r["request_id"] == "req-1")
    first = pl.final(str(Topic.INTERACTIONS))[iid]
    assert first["complete"] is False and first["status"] == "incomplete" and first["llm_calls"] == 0
    late = traffic.audit(spec, T0 + timedelta(seconds=1), received=T0 + timedelta(hours=6, minutes=30))
    pl.feed([raw(late)])
    final = pl.final(str(Topic.INTERACTIONS))[iid]
    assert final["version"] > first["version"] and final["llm_calls"] == 1 and final["complete"] is True
    assert final["close_reason"] == "late_update" and final["status"] == "ok"
    una = [f for f in pl.final(str(Topic.FINDINGS)).values() if f["kind"] == "unaudited_llm_call"
           and f["context_id"] == "ctx-1"]
    assert una and una[0]["retracted"] is True  # fired at expiry, withdrawn by the in-time audit


def test_an_interaction_timed_out_by_a_later_fact_of_the_same_message_is_emitted() -> None:
    # Pure event time (no idle advance), one partition: req-1 (never audited) times out only by
    # req-2's facts an hour later. When normalize packs both into one facts message, req-1's timer
    # is scheduled after req-2's facts moved the watermark past it, and nothing moves it again.
    pl = LocalPipeline(settings=ProcessorSettings(idle_advance_s=0, lateness_s=1), partitions=1,
                       clock=ManualClock(T0))
    first, later = (traffic.interaction(Spec(n=n, t0=t, audit=False, tools=1))
                    for n, t in ((1, T0), (2, T0 + timedelta(hours=1))))
    pl.feed([raw(p) for _, p in first + later])
    (row,) = [r for r in pl.final(str(Topic.INTERACTIONS)).values() if r["request_id"] == "req-1"]
    assert row["complete"] is False and len(row["event_ids"]) == 3


def test_reused_jsonrpc_id_without_session_starts_a_new_exchange() -> None:
    def half(kind: str, at: str, n: int) -> Published:
        base = {"subject": "u", "metadata": {"mcpID": "srv"}, "requestID": "1", "createdAt": at}
        if kind == "request":
            rec = base | {"callType": "tools/call", "callIdentifier": f"tool{n}",
                          "requestBody": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                          "params": {"name": f"tool{n}"}}}
        else:
            rec = base | {"callType": "", "responseStatus": 200, "responseBody": {"jsonrpc": "2.0", "id": 1,
                                                                                   "result": {"n": n}}}
        return envelope("obot-audit", rec)

    pl = pipeline(mcp_merge_timeout_s=600)
    # two exchanges on one connection-less server reuse JSON-RPC id 1: request, request, response
    pl.feed([raw(half("request", "2026-11-20T10:00:00Z", 1)), raw(half("request", "2026-11-20T10:00:01Z", 2)),
             raw(half("response", "2026-11-20T10:00:02Z", 2))])
    calls = pl.final(str(Topic.MCP_CALLS))
    by_tool = {c["tool_name"]: c for c in calls.values()}
    assert by_tool["tool1"]["complete"] is False and by_tool["tool1"]["version"] == 1
    assert by_tool["tool2"]["complete"] is True and by_tool["tool2"]["version"] == 2
    assert '"n":2' in by_tool["tool2"]["response_body"]
    assert by_tool["tool1"]["id"] != by_tool["tool2"]["id"]


def test_gateledger_cloudevent_types_become_typed_rows() -> None:
    pl = pipeline()
    ce = [
        samples.cloudevent(id="p1", type="gateledger.policy.decision",
                           data={"approved": False, "block_reason": "pii", "context_id": "c9"}),
        samples.cloudevent(id="w1", type="gateledger.webhook.decision",
                           data={"decision": "rejected", "tool_name": "t", "filter_name": "f"}),
        samples.cloudevent(id="l1", type="gateledger.llm.call",
                           data={"provider": "anthropic", "model": "claude", "input_tokens": 40, "output_tokens": 2,
                                 "cache_read_input_tokens": 60}),
        samples.cloudevent(id="bad", type="gateledger.policy.decision", data={"block_reason": "x"}),
    ]
    pl.feed([raw(envelope("cloudevents", c)) for c in ce])
    (pd,) = pl.final(str(Topic.POLICY_DECISIONS)).values()
    assert pd["approved"] is False and pd["context_id"] == "c9" and pd["request_id"] == "req-1"
    (wd,) = pl.final(str(Topic.WEBHOOK_DECISIONS)).values()
    assert wd["decision"] == "rejected" and wd["origin"] == "gateledger_filter"
    (lc,) = pl.final(str(Topic.LLM_CALLS)).values()
    assert (lc["input_tokens"], lc["cache_read_tokens"], lc["total_tokens"]) == (100, 60, 102)
    (dl,) = pl.by_topic()[str(Topic.DEAD_LETTERS)]
    assert dl["reason"] == "schema" and "approved" in dl["error"]


def test_an_axonflow_check_that_errored_is_recorded_but_is_no_block() -> None:
    """A check-input AxonFlow answered 401 with no verdict is not approved, but it is no verdict to
    judge a later tool call by (no gate fact, so no bypass); the 403 of a block is one."""
    from stream_processors.normalize.governance import decision_from_governance

    blocked = envelope("axonflow-governance", samples.mcp_check_input()).envelope
    errored = envelope("axonflow-governance", samples.mcp_check_input(
        status=401, response={"error": "invalid credentials"}, traceparent=samples.TRACEPARENT.replace("01", "00"))
    ).envelope
    (row_b, verdict_b), (row_e, verdict_e) = decision_from_governance(blocked), decision_from_governance(errored)
    assert verdict_b and not row_b.approved
    assert not verdict_e and not row_e.approved and row_e.http_status == 401
    for sample, facts in ((samples.mcp_check_input(), 1),
                          (samples.mcp_check_input(status=401, response={"error": "invalid credentials"}), 0)):
        pl = pipeline()
        pl.feed([raw(envelope("axonflow-governance", sample))])
        assert [d["http_status"] for d in pl.final(str(Topic.POLICY_DECISIONS)).values()] == [sample["status"]]
        assert pl.facts == facts, "a verdict goes on to correlation; an error without one does not"


def test_context_ids_holding_secrets_are_hashed_and_still_join() -> None:
    # Two pre-checks whose context ids differ only in a base64-wrapped secret: each id becomes its own
    # salted hash in both its pre-check and its audit (envelope, data, Kafka key), so each pair still joins
    # and neither merges with the other; no secret is left anywhere the processors emit.
    secrets = ["Zq8vR2mXw7LpT4nK9sYb", "Wm3kP9xQ2vL7nT4rB8sY"]
    ids = ["ctx-7 " + base64.b64encode(f'{{"client_secret": "{s}"}}'.encode()).decode() for s in secrets]
    feed, pairs = [], []
    for n, cid in enumerate(ids, 1):
        spec = Spec(n=n, t0=T0, tools=0)
        rec = traffic.precheck_record(spec, T0)
        rec["response"]["context_id"] = cid
        pre = envelope("axonflow-precheck", rec, received_at=T0 + timedelta(seconds=1))
        aud = traffic.audit(spec, T0 + timedelta(seconds=1), context_id=cid)
        assert pre.envelope.context_id == aud.envelope.context_id == aud.envelope.data["request"]["context_id"] \
            == pre.envelope.data["response"]["context_id"] == pre.key == aud.key
        assert pre.envelope.context_id.startswith("hmac:")
        feed += [raw(aud), raw(pre)]
        pairs.append({pre.envelope.id, aud.envelope.id})
    assert pairs[0] != pairs[1]
    pl = pipeline(unaudited_grace_s=10, orphan_grace_s=60)
    pl.feed(feed)
    close_all(pl, timedelta(minutes=10))
    calls = pl.final(str(Topic.LLM_CALLS)).values()
    assert sorted(sorted(c["event_ids"]) for c in calls) == sorted(sorted(p) for p in pairs)
    assert not pl.final(str(Topic.FINDINGS)), "no unaudited call, no orphan audit: each pair joined"
    emitted = b"".join(e.value for e in pl.outputs) + b"".join(v for _, _, v in feed)
    assert not [s for s in secrets if s.encode() in emitted] and b"ctx-7" not in emitted
