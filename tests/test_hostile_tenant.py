"""Issue 15, "Done when": a hostile tenant beside an honest one changes nothing the honest one's analysts see.

Two runs of the real pipeline in one test (the ingest HTTP app with its AxonFlow tap, the broker, the
processors worker, the sink, chDB), each on its own topics and database: the honest tenant ``acme``'s
traffic alone, then the same traffic with tenant ``mallory`` attacking beside it: records dated in the
year 2999 and minutes ahead, acme's own records (the same Obot row ids, context ids, request ids) sent
under mallory's token, records and headers naming acme (``X-Gateledger-Tenant``, ``X-Tenant-ID`` and
``context.tenant_id`` on the tap, ``tenant_header``), an oversized body and an oversized record, odd
and non-ASCII headers, and a flood beyond its per-token limits while acme sends. Then acme's interactions,
findings, costs and budget alerts, read through the analyst views, must be identical in both runs.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.kafka import consumer_group_lag, resolve
from gateledger.settings import Settings
from gateledger.topics import RAW_TOPICS, topic_name
from producers.ingest.settings import IngestSettings
from sinks.clickhouse.main import run_sink
from sinks.clickhouse.settings import SinkSettings
from tests.conftest import Processes
from tests.producers.ingestutil import ingest_client
from tests.sinks.conftest import wait_caught_up
from tests.stream_processors import traffic
from tests.stream_processors.harness import ensure_topics, start_worker

# Two whole pipeline runs: about a minute on an idle 2-core machine, minutes on a loaded one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ACME, MALLORY, FLOOD = "tok-acme", "tok-mallory", "tok-mallory-flood"
SPECS = traffic.mixed(40, seed=15)  # about 200 upstream records
BUDGETS = """
budgets:
  - {name: acme-daily, scope: {tenant: acme}, period: day, timezone: UTC, limit_usd: "0.4", projection: false}
  - {name: mallory-daily, scope: {tenant: mallory}, period: day, timezone: UTC, limit_usd: "0.01", projection: false}
"""
# What analysts see: the views, for acme, over all time.
ARGS = "tenant = 'acme', since = '2000-01-01 00:00:00', until = '2100-01-01 00:00:00'"
VIEWS = ("interactions_latest", "findings_latest", "cost_ledger_latest", "budget_alerts_latest",
         "interactions_with_cost")
# Columns that differ between two identical runs: when gateledger received, processed or landed a row
# (the wall clock of ingest, the processors and the sink), and the version counters those times feed.
RUN_LOCAL = re.compile(r"received|ingested|inserted|emitted|computed_at|fired_at|detected_at|version|^_")
# Which of acme's calls crosses a budget threshold (and so the alert's time, triggering event and spend
# at that moment) follows the order cost rows of one period reach the budget's accountant: several
# cost.ledger partitions feed it, so that order differs between two runs of acme's traffic alone. The
# alert itself (which budget, period, threshold and action fired, and that it fired) must not.
ARRIVAL_ORDER = {"budget_alerts_latest": re.compile(r"^(time|triggering_event_id|spend_usd|utilization|"
                                                     r"projected_spend_usd)$")}


class Upstream:
    """AxonFlow's pre-check as the tap's upstream (getaxonflow/axonflow platform/agent/gateway_handlers.go:
    a context id per approved call, numbered as a fresh install numbers them: colliding with acme's)."""

    def __init__(self) -> None:
        self.n = 0

    async def precheck(self, request: web.Request) -> web.Response:
        await request.read()
        self.n += 1
        return web.json_response({"context_id": f"ctx-{self.n}", "approved": True, "requires_redaction": False,
                                  "policies": [], "expires_at": "2026-11-20T10:05:00Z"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/policy/pre-check", self.precheck)
        return app


def honest_requests() -> list[tuple[str, list[dict[str, Any]]]]:
    """acme's records in event-time order, one request per run of records of one format (as a gateway
    batching by format sends them)."""
    recs = sorted(((t, fmt, rec) for s in SPECS for t, fmt, rec, _ in traffic.records(s)), key=lambda x: x[0])
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for _, fmt, rec in recs:
        if out and out[-1][0] == fmt and len(out[-1][1]) < 20:
            out[-1][1].append(rec)
        else:
            out.append((fmt, [rec]))
    return out


Attack = dict[str, Any]  # {path, body, headers, expect}


def hostile_requests(honest: list[tuple[str, list[dict[str, Any]]]]) -> tuple[list[Attack], list[Attack]]:
    """mallory's requests, {path, body, headers, expect} (the status each must get): those sent before
    acme's traffic, and those interleaved with it."""
    auth = {"Authorization": f"Bearer {MALLORY}"}
    out: list[dict[str, Any]] = []

    def add(path: str, body: Any, expect: int, **headers: str) -> None:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        out.append({"path": path, "body": raw, "headers": auth | {"Content-Type": "application/json"} | headers,
                    "expect": expect})

    for fmt, recs in honest:
        mine = copy.deepcopy(recs)
        for r in mine:
            if "tenant_header" in r:
                r["tenant_header"] = "mallory"
        # Colliding ids: acme's very records (Obot row ids, context ids, request ids) as mallory's.
        add(f"/v1/ingest/{fmt}", mine, 200)
        # Forged tenant: records naming acme, and the tenant hint naming acme, under mallory's token.
        if fmt.startswith("axonflow"):
            add(f"/v1/ingest/{fmt}", recs[:1], 400)
        # With a tenant's own token the token decides: the hint is ignored, the record stays mallory's.
        add(f"/v1/ingest/{fmt}", mine[:1], 200, **{"X-Gateledger-Tenant": "acme"})
    interleaved, out = out, []
    pre = traffic.precheck_record(SPECS[0], traffic.T0)
    pre["tenant_header"] = "mallory"
    far = copy.deepcopy(pre) | {"started_at": "2999-01-01T00:00:00Z", "finished_at": "2999-01-01T00:00:01Z"}
    add("/v1/ingest/axonflow-precheck", [far], 400)  # future_time
    big = copy.deepcopy(pre)
    big["request"]["context"]["pad"] = "x" * 1_200_000
    add("/v1/ingest/axonflow-precheck", [big], 400)  # one record over the record limit (in a batch: 400)
    add("/v1/ingest/obot-llm", b"[" + b" " * (10 * 1024 * 1024 + 10) + b"]", 413)  # body over the limit
    add("/v1/ingest/obot-llm", [{}], 401, Authorization="Bearer t\u00f6k")  # non-ASCII credentials
    add("/v1/ingest/obot-llm", [{}], 401, Authorization=f"Bearer {ACME}x")  # guessing acme's token
    # The tap: mallory's tap token naming acme by header or in the body; an odd header.
    tap = {"X-Gateledger-Token": MALLORY, "Authorization": "Basic bWFsbG9yeTp4"}
    req = pre["request"]
    add("/axonflow/api/policy/pre-check", req, 403, **tap, **{"X-Tenant-ID": "acme"})
    forged = copy.deepcopy(req)
    forged["context"]["tenant_id"] = "acme"
    # (AxonFlow's Basic client id names a tenant before the body does: without it, the body decides.)
    add("/axonflow/api/policy/pre-check", forged, 403, **{"X-Gateledger-Token": MALLORY})
    add("/axonflow/api/policy/pre-check", req, 400, **tap, **{"X-Tenant-ID": "acme\u00e9"})
    # Recorded as mallory's own: the upstream numbers its context ids as acme's were numbered.
    for _ in range(3):
        add("/axonflow/api/policy/pre-check", req, 200, **tap)
    return out, interleaved


@contextmanager
def run_env(gl_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
            ) -> Iterator[tuple[dict[str, str], Settings, Any]]:
    """This run's own topics, database, consumer groups and data dir: (env, settings, migrated client)."""
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    env = gl_env | {
        "GATELEDGER_TOPIC_PREFIX": f"{gl_env['GATELEDGER_TOPIC_PREFIX']}{name}.",
        "GATELEDGER_CLICKHOUSE_DATABASE": f"{gl_env['GATELEDGER_CLICKHOUSE_DATABASE']}_{name}",
        "GATELEDGER_SINK_GROUP_ID": f"{gl_env['GATELEDGER_SINK_GROUP_ID']}-{name}",
        "GATELEDGER_PROCESSORS_APP_ID": f"{gl_env['GATELEDGER_PROCESSORS_APP_ID']}-{name}",
        "GATELEDGER_DATA_DIR": str(tmp_path / name),
        "GATELEDGER_BUDGETS_FILE": str(budgets),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    client = connect(settings.clickhouse, settings.core)
    migrate(client, settings.clickhouse)
    try:
        yield env, settings, client
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
        client.close()


async def send(settings: Settings, hostile: bool) -> list[tuple[dict[str, Any], int, Any]]:
    """acme's traffic through the ingest app (with mallory's beside it); mallory's (request, status, answer)."""
    honest = honest_requests()
    first, interleaved = hostile_requests(honest) if hostile else ([], [])
    per_request = -(-len(interleaved) // len(honest))
    upstream = Upstream()
    answers: list[tuple[dict[str, Any], Any, Any]] = []
    async with TestServer(upstream.app(), host="127.0.0.1") as up:
        ingest = IngestSettings(tokens={ACME: "acme", MALLORY: "mallory", FLOOD: "mallory"},
                                axonflow_upstream_url=str(up.make_url("")),
                                # A flood is cut by the in-flight cap (deterministic, unlike a rate on a
                                # loaded machine); the sequential senders never reach it.
                                max_concurrent_per_caller=8, publish_timeout_s=8.0)
        async with ingest_client(settings, ingest) as http:

            async def attack(item: dict[str, Any]) -> None:
                r = await http.post(item["path"], data=item["body"], headers=item["headers"])
                answers.append((item, r.status, await r.json()))

            async def flood() -> None:
                # Another of mallory's tokens (limits are per token): mallory's other requests still pass.
                body = orjson.dumps([traffic.audit_record(SPECS[1], traffic.T0) | {"tenant_header": "mallory"}])
                for _ in range(2):
                    rs = await asyncio.gather(*(http.post("/v1/ingest/axonflow-llm-call", data=body, headers={
                        "Authorization": f"Bearer {FLOOD}"}) for _ in range(100)))
                    for r in rs:
                        if r.status == 429:
                            assert (await r.json())["reason"] == "concurrency_limited" and r.headers["Retry-After"]
                    answers.append(({"flood": True}, Counter(r.status for r in rs), None))
                    for r in rs:
                        r.release()

            async def honest_sender() -> None:
                for i, (fmt, recs) in enumerate(honest):
                    r = await http.post(f"/v1/ingest/{fmt}", json=recs, headers={"Authorization": f"Bearer {ACME}"})
                    answer = await r.json()
                    assert r.status == 200 and answer["accepted"] == len(recs), (fmt, r.status, answer)
                    for item in interleaved[i * per_request: (i + 1) * per_request]:
                        await attack(item)

            for item in first:  # the year-2999 record and the rest before acme's traffic
                await attack(item)
            await asyncio.gather(honest_sender(), *([flood()] if hostile else []))
    return answers


def snapshot(client: Any, db: str) -> dict[str, list[tuple[Any, ...]]]:
    """acme's rows per view, without the columns that differ between identical runs, sorted."""
    out = {}
    for view in VIEWS:
        result = client.query(f"SELECT * FROM {db}.{view}({ARGS})")
        order = ARRIVAL_ORDER.get(view)
        keep = [i for i, c in enumerate(result.column_names)
                if not RUN_LOCAL.search(c) and not (order and order.search(c))]
        out[view] = sorted(tuple(f"{result.column_names[i]}={row[i]!r}" for i in keep) for row in result.result_rows)
    return out


def run(gl_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, processes: Processes, tmp_path: Path,
        name: str, hostile: bool) -> tuple[dict[str, list[tuple[Any, ...]]], list[Any], dict[str, int]]:
    """One run: acme's views once everything settled, mallory's answers, rows per tenant in raw_events."""
    with run_env(gl_env, monkeypatch, tmp_path, name) as (env, settings, client):
        asyncio.run(ensure_topics(settings))
        answers = asyncio.run(send(settings, hostile))
        start_worker(processes, env, tmp_path, name=f"proc-{name}", interaction_timeout_s=5, unaudited_grace_s=0)
        db = settings.clickhouse.database
        target = resolve(settings.kafka, settings.core)
        raw_topics = [topic_name(t, target.topic_prefix) for t in RAW_TOPICS]
        want = {"interactions_latest": len(SPECS), "cost_ledger_latest": sum(s.audit for s in SPECS)}

        async def settle() -> dict[str, list[tuple[Any, ...]]]:
            stop = asyncio.Event()
            sink = asyncio.create_task(run_sink(settings, stop))
            last: dict[str, list[tuple[Any, ...]]] | None = None
            deadline = time.monotonic() + 300
            try:
                while time.monotonic() < deadline:
                    lag = await consumer_group_lag(settings.kafka, target.bootstrap,
                                                   env["GATELEDGER_PROCESSORS_APP_ID"], raw_topics)
                    if lag and sum(p.lag for p in lag) == 0:
                        await wait_caught_up(settings, SinkSettings(), timeout_s=240)
                        now = await asyncio.to_thread(snapshot, client, db)
                        # Settled: every interaction and cost landed, and nothing changed since the last look.
                        if all(len(now[v]) >= n for v, n in want.items()) and now == last:
                            return now
                        last = now
                    await asyncio.sleep(1.0)
                counts = {v: len(r) for v, r in (last or {}).items()}
                raise AssertionError(f"{name}: the pipeline did not settle: {counts}")
            finally:
                stop.set()
                await sink

        seen = asyncio.run(settle())
        per_tenant = dict(client.query(f"SELECT tenant, count() FROM {db}.raw_events GROUP BY tenant").result_rows)
        # Refused requests per tenant, reason and status, as the dead letters count them (coalesced or not).
        refused = client.query(f"SELECT tenant, reason, http_status, sum(count) FROM {db}.dead_letters FINAL "
                               f"WHERE http_status IS NOT NULL GROUP BY tenant, reason, http_status").result_rows
        per_tenant["refused"] = {(t, r, st): n for t, r, st, n in refused}
        processes.stop_all()
        return seen, answers, per_tenant


def test_a_hostile_tenant_changes_nothing_an_honest_tenants_analysts_see(
        gl_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, processes: Processes, tmp_path: Path) -> None:
    alone, _, tenants_alone = run(gl_env, monkeypatch, processes, tmp_path, "alone", hostile=False)
    beside, answers, tenants_beside = run(gl_env, monkeypatch, processes, tmp_path, "beside", hostile=True)
    # acme's analysts see exactly what they saw without mallory.
    assert {v: len(r) for v, r in beside.items()} == {v: len(r) for v, r in alone.items()}
    for view in VIEWS:
        diff = [(a, b) for a, b in zip(alone[view], beside[view]) if a != b]
        assert not diff, (view, [(x, y) for x, y in zip(*diff[0]) if x != y])
    assert alone["findings_latest"] and alone["budget_alerts_latest"], "the compared views are not empty"
    assert tenants_alone.pop("refused") == {}, "the honest tenant alone is refused nothing"
    refused = tenants_beside.pop("refused")
    assert set(tenants_alone) == {"acme"} and tenants_beside["acme"] == tenants_alone["acme"]
    # And the attack happened: mallory's own records went through the whole pipeline, its refusals were the
    # documented ones, its flood was cut.
    assert tenants_beside.get("mallory", 0) > 100
    wrong = Counter((item["path"], item["expect"], status, str(answer)[:120]) for item, status, answer in answers
                    if "expect" in item and status != item["expect"])
    assert not wrong, wrong
    floods = sum((a[1] for a in answers if "flood" in a[0]), Counter())
    assert floods[429] > 0 and not set(floods) - {200, 429}, floods
    # Every request of the flood that was refused is in the dead letters: coalesced under mallory (its token
    # is known), no body, counted one for one; nothing is refused under acme.
    assert refused.get(("mallory", "concurrency_limited", 429)) == floods[429], refused
    assert not [k for k in refused if k[0] == "acme"], refused
    reasons = Counter(r["reason"] for _, status, ans in answers if isinstance(ans, dict)
                      for r in ans.get("rejected", [ans] if "reason" in ans else []))
    assert {"future_time", "tenant_mismatch", "too_large", "unauthenticated", "tenant_not_allowed",
            "bad_header"} <= set(reasons), reasons
