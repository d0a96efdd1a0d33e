"""Throughput of the processing stages (events/s on one worker), callable by the benchmark suite.

Two measurements over the same synthetic traffic (realistic envelopes of every raw topic: AxonFlow
pre-checks and audits, Obot MCP calls as request/response halves or whole records, Obot LLM logs,
webhook-filter records):

- ``bench_logic``: the pure stage logic (normalize + correlate, in-process, no Kafka): the ceiling.
- ``bench_worker``: one real ``gateledger serve processors`` worker on a Tansu broker, with every
  output produced and acknowledged and state written to changelogs; the raw topics are filled
  first, then the clock runs from "worker ready" until it has consumed every raw event and every
  fact it produced (normalize + correlate), and on until cost and budgets consumed everything the
  earlier stages produced for them (the full pipeline). The worker's CPU seconds (/proc) are
  recorded too: events per CPU second is what the code costs, even on a shared machine.

Both return plain dicts (JSON-able) so ``gateledger bench processors`` and the benchmark issue can
record them.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import worker as worker_on
from gateledger.contracts.envelope import Envelope, EventType, utc_iso
from gateledger.ids import event_id, tenant_id
from gateledger.topics import Topic, topic_name

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- synthetic traffic (envelopes as the producers publish them) ----------------------------------


def _env(eid: str, source: str, etype: str, at: datetime, tenant: str, data: Any, **keys: str | None) -> Envelope:
    return Envelope(id=eid, source=source, type=etype, time=at, received_at=at + timedelta(milliseconds=150),
                    tenant=tenant, data=data, **keys)


def traffic(interactions: int, seed: int = 1, rate_per_s: float = 200.0) -> Iterator[tuple[str, str, Envelope]]:
    """(logical raw topic, key, envelope) of ``interactions`` interactions, in event-time order-ish."""
    rng = random.Random(seed)
    tenants = ["acme", "globex", "initech"]
    for n in range(interactions):
        t0 = T0 + timedelta(seconds=n / rate_per_s)
        tenant = tenants[n % 3]
        req, ctx, trace = f"req-{seed}-{n}", f"ctx-{seed}-{n}", f"{rng.getrandbits(128):032x}"
        blocked = rng.random() < 0.05
        src = f"axonflow/{tenant}"
        pre = {"path": "/api/policy/pre-check", "method": "POST", "status": 200, "started_at": utc_iso(t0),
               "finished_at": utc_iso(t0 + timedelta(milliseconds=12)), "tenant_header": tenant,
               "request": {"user_token": f"hmac:{rng.getrandbits(64):016x}", "client_id": "support-bot",
                           "query": "summarize ticket", "data_sources": ["jira"],
                           "context": {"request_id": req, "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}},
               "response": {"context_id": ctx, "approved": not blocked, "policies": ["pii_detection"],
                            "expires_at": utc_iso(t0 + timedelta(minutes=5)),
                            "block_reason": "prompt injection" if blocked else None}}
        yield (Topic.RAW_AXONFLOW, ctx, _env(event_id(src, EventType.AXONFLOW_PRECHECK, ctx, tenant=tenant), src,
                                             EventType.AXONFLOW_PRECHECK, t0, tenant, pre, request_id=req,
                                             context_id=ctx, trace_id=trace))
        if blocked:
            continue
        t1 = t0 + timedelta(milliseconds=rng.randint(300, 3000))
        prompt, completion = rng.randint(50, 4000), rng.randint(1, 800)
        audit = {"path": "/api/audit/llm-call", "method": "POST", "status": 200, "started_at": utc_iso(t1),
                 "finished_at": utc_iso(t1 + timedelta(milliseconds=4)), "tenant_header": tenant,
                 "request": {"context_id": ctx, "client_id": "support-bot", "provider": "openai", "model": "gpt-4o",
                             "token_usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                             "total_tokens": prompt + completion},
                             "latency_ms": 900, "metadata": {}},
                 "response": {"success": True, "audit_id": f"aud-{n}"}, "audit_id": f"aud-{n}"}
        yield (Topic.RAW_AXONFLOW, ctx, _env(event_id(src, EventType.AXONFLOW_LLM_AUDIT, ctx, tenant=tenant), src,
                                             EventType.AXONFLOW_LLM_AUDIT, t1, tenant, audit, context_id=ctx))
        session = f"sess-{seed}-{n}"
        mcp_src = "obot/default/mcp"
        for k in range(rng.choice([0, 1, 2, 2, 3])):
            tk = t1 + timedelta(milliseconds=200 * (k + 1))
            rejected = rng.random() < 0.04
            tool = rng.choice(["search_issues", "get_file", "create_comment", "list_prs"])
            body = {"jsonrpc": "2.0", "id": k + 1, "method": "tools/call",
                    "params": {"name": tool, "arguments": {"q": "x"},
                               "_meta": {"request_id": req, "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}}}
            common = {"userID": f"user-{n % 50}", "mcpID": f"{tenant}-github", "mcpServerDisplayName": "GitHub",
                      "clientName": "Cursor", "clientVersion": "1.7.2", "sessionID": session, "requestID": str(k + 1),
                      "webhookStatuses": [{"type": "request", "name": "dlp", "tool": tool,
                                           "status": "rejected" if rejected else "ok"}]}
            request = common | {"createdAt": utc_iso(tk), "callType": "tools/call", "callIdentifier": tool,
                                "requestBody": body}
            response = common | {"createdAt": utc_iso(tk + timedelta(milliseconds=60)), "callType": "",
                                 "responseStatus": 403 if rejected else 200, "processingTimeMs": 60,
                                 "responseBody": {"jsonrpc": "2.0", "id": k + 1, "result": {"content": []}},
                                 "error": "blocked by hook" if rejected else ""}
            key = f"{tenant}-github|{session}|{k + 1}"
            if rng.random() < 0.7:
                for rec, at in ((request, tk), (response, tk + timedelta(milliseconds=60))):
                    yield (Topic.RAW_OBOT_MCP, key,
                           _env(event_id(mcp_src, EventType.OBOT_MCP_CALL, None, rec, tenant=tenant), mcp_src,
                                EventType.OBOT_MCP_CALL, at, tenant, rec, request_id=req if rec is request else None,
                                trace_id=trace if rec is request else None, session_id=session))
            else:
                whole = request | {k2: v for k2, v in response.items() if k2 not in ("createdAt", "callType")}
                yield (Topic.RAW_OBOT_MCP, key, _env(event_id(mcp_src, EventType.OBOT_MCP_CALL, None, whole, tenant=tenant),
                                                     mcp_src, EventType.OBOT_MCP_CALL, tk, tenant, whole,
                                                     request_id=req, trace_id=trace, session_id=session))
        if rng.random() < 0.1:
            llm_src = "obot/default/llm"
            rec = {"id": f"llm-{seed}-{n}", "createdAt": utc_iso(t1), "duration": 800, "userID": f"user-{n % 50}",
                   "modelProvider": "anthropic", "modelID": "claude-sonnet-4-5", "responseStatus": 200,
                   "outcome": "success", "inputTokens": rng.randint(0, 3000), "outputTokens": rng.randint(0, 500),
                   "requestID": req}
            yield (Topic.RAW_OBOT_LLM, req, _env(event_id(llm_src, EventType.OBOT_LLM_CALL, rec["id"], tenant=tenant), llm_src,
                                                 EventType.OBOT_LLM_CALL, t1, tenant, rec, request_id=req))
        if rng.random() < 0.1:
            wh_src = "obot/default/webhook"
            msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_file"}}
            yield (Topic.RAW_OBOT_WEBHOOK, req, _env(tenant_id(tenant, "webhook", wh_src, msg, f"{seed}-{n}"), wh_src,
                                                     EventType.OBOT_WEBHOOK_DECISION, t1, tenant, msg,
                                                     request_id=req))


def raw_messages(interactions: int, seed: int = 1, prefix: str = "") -> list[tuple[str, bytes, bytes]]:
    """The traffic as (physical topic, key, value) messages."""
    return [(topic_name(t, prefix), key.encode(), env.model_dump_json(exclude_none=True).encode())
            for t, key, env in traffic(interactions, seed)]


# -- the pure logic ---------------------------------------------------------------------------------


def bench_logic(interactions: int = 20_000, runs: int = 3, seed: int = 1) -> dict[str, Any]:
    """Events/s of normalize + correlate in-process (no Kafka, no faust): the logic's ceiling."""
    from gateledger.clock import ManualClock
    from stream_processors.local import LocalPipeline
    from stream_processors.settings import ProcessorSettings

    msgs = raw_messages(interactions, seed)
    rates = []
    facts = outputs = 0
    for _ in range(runs):
        pl = LocalPipeline(settings=ProcessorSettings(idle_advance_s=0), clock=ManualClock(T0))
        started = time.perf_counter()
        pl.feed(msgs, flush_every=2000)
        elapsed = time.perf_counter() - started
        rates.append(len(msgs) / elapsed)
        facts, outputs = pl.facts, len(pl.outputs)
    return {
        "benchmark": "processors.logic",
        "events": len(msgs),
        "interactions": interactions,
        "runs": runs,
        "events_per_s_median": round(statistics.median(rates)),
        "events_per_s_runs": [round(r) for r in rates],
        "facts": facts,
        "outputs": outputs,
    }


# -- one real worker on a broker --------------------------------------------------------------------


def bench_worker(interactions: int = 5_000, runs: int = 3, seed: int = 1, bootstrap: str | None = None,
                 timeout_s: float = 600.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Events/s of one ``gateledger serve processors`` worker (Kafka in and out, state in changelogs)."""
    measured: list[dict[str, float]] = []
    events = 0
    with worker_on.broker(bootstrap) as (bootstrap, own):
        for run in range(runs):
            tag = f"bench{os.getpid()}r{run}x{int(time.time())}"
            msgs = raw_messages(interactions, seed + run, prefix=f"{tag}.")
            events = len(msgs)
            asyncio.run(worker_on.publish(bootstrap, f"{tag}.", msgs))
            with worker_on.worker(bootstrap, tag, own_broker=own, env=env) as (port, proc, log):
                measured.append(worker_on.measure(port, proc, timeout_s, log, _all_consumed(events),
                                                  near=_near(events)))

    def median_rate(key: str) -> int:
        return round(statistics.median(events / m[key] for m in measured))

    return {
        "benchmark": "processors.worker",
        "events": events,
        "interactions": interactions,
        "runs": runs,
        # normalize + correlate (the figure of earlier runs), then the full pipeline (+ cost, budgets)
        "events_per_s_median": median_rate("correlate_s"),
        "events_per_s_runs": [round(events / m["correlate_s"]) for m in measured],
        "seconds_runs": [round(m["correlate_s"], 2) for m in measured],
        "events_per_cpu_s_median": median_rate("correlate_cpu_s"),
        "pipeline_events_per_s_median": median_rate("pipeline_s"),
        "pipeline_seconds_runs": [round(m["pipeline_s"], 2) for m in measured],
        # per CPU second of the worker: what the code costs, whatever else the machine runs
        "pipeline_events_per_cpu_s_median": median_rate("pipeline_cpu_s"),
        "pipeline_cpu_seconds_runs": [round(m["pipeline_cpu_s"], 2) for m in measured],
        "broker": "tansu (embedded)" if own else bootstrap,
        "cpu_count": os.cpu_count(),
    }


def _progress(text: str, events: int) -> tuple[bool, bool]:
    """(normalize + correlate done, every stage done) from one /metrics scrape.

    A stage is done when it consumed at least what the stages before it produced for it: the raw
    events; the facts; the ``llm.calls`` and ``mcp.calls`` rows (cost); ``cost.ledger`` (budget
    fan-out); the budget contributions (budgets).
    """
    def out(topic: str) -> float:
        return worker_on.metric(text, "gateledger_processor_events_out_total", topic=topic)

    def into(stage: str) -> float:
        return worker_on.metric(text, "gateledger_processor_events_in_total", stage=stage)

    correlated = into("normalize") >= events and into("correlate") >= out("facts")
    return correlated, (correlated and into("cost") >= out("llm.calls") + out("mcp.calls")
                        and into("budget-fanout") >= out("cost.ledger")
                        and into("budgets") >= out("budget-contributions"))


def _all_consumed(events: int) -> Callable[[str, float, float], dict[str, float] | None]:
    """Seconds and worker CPU seconds from "ready" until normalize + correlate, then every stage, consumed
    everything the raw events led to."""
    result: dict[str, float] = {}

    def done(text: str, elapsed: float, cpu: float) -> dict[str, float] | None:
        correlated, finished = _progress(text, events)
        if correlated and "correlate_s" not in result:
            result.update(correlate_s=elapsed, correlate_cpu_s=cpu)
        return result | {"pipeline_s": elapsed, "pipeline_cpu_s": cpu} if finished else None

    return done


def _near(events: int) -> Callable[[str], bool]:
    """Whether normalize has seen 90 % of the raw events (time to scrape often)."""
    return lambda text: worker_on.metric(text, "gateledger_processor_events_in_total",
                                         stage="normalize") >= 0.9 * events


def run(interactions: int = 5_000, runs: int = 3, logic_only: bool = False) -> dict[str, Any]:
    """Both measurements (or only the logic's), as one dict."""
    result: dict[str, Any] = {"logic": bench_logic(max(interactions, 5_000), runs)}
    if not logic_only:
        result["worker"] = bench_worker(interactions, runs)
    return result
