"""The simulator: deterministic traffic, a ground truth that matches the records, and end-to-end delivery
through the upstream-compatible endpoints to the real broker (counts of distinct events = the truth)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateledger.masking import Masker
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.accept import get_format
from producers.accept import IngestContext
from producers.ingest.settings import IngestSettings
from producers.simulator import Faults, Mix, deliver, simulate
from producers.simulator.envelopes import published
from tests.producers.ingestutil import ingest_client
from tests.producers.kafkaread import read_topic

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
FMTS = ("obot-audit", "obot-webhook", "axonflow-precheck", "axonflow-llm-call", "obot-llm", "cloudevents")


def test_same_seed_and_start_same_bytes() -> None:
    a = simulate(120, seed=5, start=START, faults=Faults.chaos())
    b = simulate(120, seed=5, start=START, faults=Faults.chaos())
    assert [d.body() for d in a.deliveries] == [d.body() for d in b.deliveries]
    assert a.truth.to_json() == b.truth.to_json()
    c = simulate(120, seed=6, start=START, faults=Faults.chaos())
    assert [d.body() for d in a.deliveries] != [d.body() for d in c.deliveries]
    # Faults (but bypass, which adds an LLM call) never change what happened, only its delivery.
    plain = simulate(120, seed=5, start=START)
    a = simulate(120, seed=5, start=START, faults=dataclasses.replace(Faults.chaos(), bypass=0.0))
    assert [i.request_id for i in plain.truth.interactions] == [i.request_id for i in a.truth.interactions]


def test_truth_matches_the_records() -> None:
    faults = Faults(duplicates=0.1, out_of_order=0.1, late=0.05, late_hours=4, malformed=0.05,
                    missing_audits=0.2, orphan_audits=0.05, bypass=0.5)
    sim = simulate(400, seed=11, start=START, faults=faults)
    t = sim.truth
    kinds = Counter((d.fmt, d.kind) for d in sim.deliveries)
    for fmt in FMTS:
        delivered = sum(n for (f, k), n in kinds.items() if f == fmt and k != "malformed")
        assert delivered == t.distinct[fmt] + t.duplicates[fmt], fmt
        assert kinds[(fmt, "malformed")] == sum(1 for m in t.malformed if m.fmt == fmt)
    audits = {r["request"]["context_id"] for r in sim.records("axonflow-llm-call")}
    prechecks = {r["response"].get("context_id") for r in sim.records("axonflow-precheck")}
    assert t.dropped_audits and not set(t.dropped_audits) & audits, "dropped audits are never sent"
    assert set(t.orphan_audits) <= audits and not set(t.orphan_audits) & prechecks
    for i in t.interactions:
        if i.blocked:
            assert (i.context_id in audits) == i.bypass
            assert i.llm is None or i.bypass
        elif i.precheck == "approved":
            assert (i.context_id in audits) != i.audit_dropped
    assert any(i.bypass for i in t.interactions) and any(i.precheck == "budget_blocked" for i in t.interactions)
    statuses = {r["status"] for r in sim.records("axonflow-precheck")}
    assert statuses == {200, 402}
    # Zero-token Obot LLM records are exactly the flagged suspects.
    zero = [r for r in sim.records("obot-llm") if r["inputTokens"] == 0 and r["outputTokens"] == 0
            and r["outcome"] == "success"]
    assert {r["id"] for r in zero} == {c.id for c in t.obot_llm_calls if c.suspect_zero_tokens} and zero
    # Late records arrive after everything on time; their event time is hours before their arrival.
    late = [d for d in sim.deliveries if d.kind == "late"]
    assert late and sum(t.late.values()) == len(late)
    assert all(d.at >= START.replace(hour=13) for d in late)
    # Rejections and errors the audit records show are the truth's.
    rejected = sum(1 for r in sim.records("obot-audit") if r.get("error", "").startswith("MCP request blocked by hook"))
    duplicated_rejections = sum(1 for d in sim.deliveries if d.fmt == "obot-audit" and d.kind == "duplicate"
                                and d.value.get("error", "").startswith("MCP request blocked"))
    assert rejected - duplicated_rejections == t.summary()["webhook_rejections"]
    assert len(t.tenants) == 3 and {d.tenant for d in sim.deliveries} == set(t.tenants)


def test_expected_event_ids_are_computable_from_the_records() -> None:
    sim = simulate(60, seed=2, start=START, faults=Faults(duplicates=0.3))
    ctx = IngestContext(masker=Masker(salt=b"s"))
    for fmt in ("obot-audit", "axonflow-precheck", "obot-llm", "cloudevents"):
        ids = {get_format(fmt)(r, ctx).envelope.id for r in sim.records(fmt)}
        assert len(ids) == sim.truth.distinct[fmt], fmt


def test_the_mix_knobs_change_what_the_traffic_is_made_of() -> None:
    plain = simulate(300, seed=3, start=START)
    mix = Mix(users=(2, 2), custom_gateway=0.0, obot_llm=0.0, llm_failures=0.5, verdicts=(1, 1, 0, 0),
              tool_calls=(1,), tool_rejections=0.0, tool_errors=1.0, zero_token_tenant=False)
    sim = simulate(300, seed=3, start=START, tenants=5, span=timedelta(minutes=10), mix=mix)
    t = sim.truth
    assert len(t.tenants) == 5 and {i.user for i in t.interactions} <= {f"{n}-user-{j:02d}" for n in t.tenants
                                                                           for j in range(2)}
    assert not sim.records("cloudevents") and not sim.records("obot-llm") and not t.obot_llm_calls
    assert {i.precheck for i in t.interactions} == {"approved", "blocked"}
    calls = [i.llm for i in t.interactions if i.llm is not None]
    assert 0.35 < sum(c.failed for c in calls) / len(calls) < 0.65  # 50 % asked for, over ~150 calls
    ran = [i for i in t.interactions if i.precheck == "approved"]
    assert ran and all(len(i.tool_calls) == 1 and i.tool_calls[0].outcome == "error" for i in ran)
    # span: 300 interactions over ten minutes, the last one started inside them.
    assert max(i.time for i in t.interactions) - START < timedelta(minutes=10)
    assert plain.records("cloudevents") and plain.truth.obot_llm_calls  # the default mix has both
    assert simulate(300, seed=3, start=START, tenants=5, span=timedelta(minutes=10), mix=mix).truth.to_json() \
        == t.to_json()


def test_zero_token_audits_and_filter_bypasses_are_in_the_records_as_the_truth_says() -> None:
    faults = Faults(zero_token_audits=0.2, filter_bypass=0.5)
    sim = simulate(400, seed=12, start=START, faults=faults, mix=Mix(tool_rejections=0.2, custom_gateway=0.0))
    zero = {r["request"]["context_id"] for r in sim.records("axonflow-llm-call")
            if r["request"]["token_usage"]["total_tokens"] == 0}
    assert zero and zero == {i.context_id for i in sim.truth.interactions
                             if i.llm is not None and i.llm.prompt_tokens == i.llm.completion_tokens == 0}
    ran = [c for i in sim.truth.interactions for c in i.tool_calls if c.ran_anyway]
    assert ran and all(c.outcome == "rejected" for c in ran)
    # A call that ran despite the filter's rejection has a result; the others an error.
    answered = {(r["sessionID"], r["requestID"]) for r in sim.records("obot-audit") if "responseBody" in r
                and r.get("webhookStatuses", [{}])[0].get("status") == "rejected" and "result" in r["responseBody"]}
    assert answered == {(c.session_id, str(c.jsonrpc_id)) for c in ran}
    # Off by default: the same seed without them is the same traffic.
    plain = simulate(400, seed=12, start=START, mix=Mix(tool_rejections=0.2, custom_gateway=0.0))
    assert [i.request_id for i in plain.truth.interactions] == [i.request_id for i in sim.truth.interactions]


def test_envelopes_are_the_records_through_their_formats() -> None:
    sim = simulate(120, seed=8, start=START, faults=Faults(duplicates=0.2, malformed=0.1, late=0.05))
    out = list(published(sim.deliveries, Masker(salt=b"s")))
    assert len(out) == sum(1 for d in sim.deliveries if d.kind != "malformed")
    # Duplicates collapse onto one id, as on a raw topic.
    assert len({p.envelope.id for p in out}) == sum(sim.truth.distinct.values())
    assert {p.envelope.tenant for p in out} == set(sim.truth.tenants)
    late = [p for p, d in zip(out, [d for d in sim.deliveries if d.kind != "malformed"], strict=True)
            if d.kind == "late"]
    assert late and all(p.envelope.received_at - p.envelope.time >= timedelta(hours=2) for p in late)
    again = [p.envelope for p in published(sim.deliveries, Masker(salt=b"s"))]
    assert again == [p.envelope for p in out]


def test_delivered_through_the_endpoints_lands_exactly_as_the_truth_says(settings: Settings) -> None:
    sim = simulate(150, seed=9, start=START, faults=Faults(
        duplicates=0.1, out_of_order=0.1, late=0.05, malformed=0.05, missing_audits=0.1, orphan_audits=0.05))
    t = sim.truth

    async def main() -> None:
        async with ingest_client(settings, IngestSettings(webhook_secret="whsec")) as http:
            stats = await deliver(sim, str(http.make_url("/")), webhook_secret="whsec")
        assert stats.retries == 0
        assert stats.statuses[200] > 0 and set(stats.statuses) <= {200, 400}
        want = {
            Topic.RAW_OBOT_MCP: t.distinct["obot-audit"],
            Topic.RAW_OBOT_WEBHOOK: t.distinct["obot-webhook"],
            Topic.RAW_AXONFLOW: t.distinct["axonflow-precheck"] + t.distinct["axonflow-llm-call"],
            Topic.RAW_OBOT_LLM: t.distinct["obot-llm"],
            Topic.RAW_CLOUDEVENTS: t.distinct["cloudevents"],
        }
        for topic, n in want.items():
            events = await read_topic(settings, topic, until=lambda got, n=n: len({e["id"] for e in got}) >= n,
                                      timeout_s=15)
            assert len({e["id"] for e in events}) == n, topic
            if topic is Topic.RAW_OBOT_WEBHOOK:
                # A signed filter speaks for the tenant it is configured for, whatever the caller says.
                assert {e["tenant"] for e in events} == {"default"}
            else:
                assert {e["tenant"] for e in events} <= set(t.tenants)
            if topic is Topic.RAW_OBOT_MCP:
                assert {e["tenant"] for e in events} == {i.tenant for i in t.interactions if i.tool_calls}
        letters = await read_topic(settings, Topic.DEAD_LETTERS, want=len(t.malformed))
        assert len({d["id"] for d in letters}) == len(t.malformed) > 0
        assert Counter(d["reason"] for d in letters) == Counter(m.reason for m in t.malformed)
        webhooks = await read_topic(settings, Topic.RAW_OBOT_WEBHOOK, want=1)
        assert {w["data"]["_gateledger"]["signature_check"] for w in webhooks} == {"verified"}

    asyncio.run(main())


def test_cli_writes_files_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = [sys.executable, "-m", "gateledger_cli.main", "simulate", "--out", str(out), "--count", "80",
            "--seed", "4", "--start", "2026-11-20T10:00:00Z", "--missing-audits", "0.2"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    truth = json.loads((out / "truth.json").read_text())
    assert truth["summary"] == summary and summary["interactions"] == 80 and summary["dropped_audits"] > 0
    lines = sum(len(p.read_text().splitlines()) for p in out.glob("*/*.jsonl"))
    assert lines == sum(summary["distinct"].values())
    again = subprocess.run(args[:5] + [str(tmp_path / "again")] + args[6:], capture_output=True, text=True, timeout=60)
    assert again.stdout == res.stdout
    assert (tmp_path / "again" / "acme" / "obot-audit.jsonl").read_bytes() == (out / "acme" / "obot-audit.jsonl").read_bytes()
    bad = subprocess.run(args[:4] + ["--target", "http://x"] + args[4:], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "exactly one of" in bad.stderr
