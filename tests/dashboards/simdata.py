"""Deterministic simulated output data for the dashboard tests: the simulator's traffic as output rows.

What happens is the simulator's (producers/simulator): its world (tenants, users, agents, MCP servers,
tools, models), and for each interaction its ground truth (truth.py): the pre-check's verdict, the LLM call
(model, tokens, latency, failure), the tool calls (server, tool, rejected by the webhook filter or failing),
and the faults these panels must show (audits never sent, bypassed blocks, orphan audits). Here that truth
becomes the rows the pipeline lands, built from the contract models: pre-checks, LLM calls, MCP calls,
webhook decisions, interactions tying them together, cost entries priced with the bundled catalog (some
restated to a higher version), findings; beside them budget alerts, dead letters and local-agent tool calls
(simdata_findings.py, simdata_local.py). It also keeps the exact answers a few panels must give, computed
here independently of any SQL.

Rows go in the way the sink writes them (tests/dashboards/landing.py). No stage runs: the 10M-row query
benchmark multiplies these rows in SQL, far more than the pipeline could land row by row.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import (
    CostEntry,
    CostKind,
    FindingKind,
    Interaction,
    InteractionStatus,
    LlmCall,
    LlmCallStatus,
    McpCall,
    McpCallStatus,
    PolicyDecision,
    WebhookDecision,
    WebhookDecisionOutcome,
)
from gateledger.ids import stable_id
from gateledger.money.catalog import Unpriced, load_catalog
from gateledger.money.cost import price_usage
from gateledger.money.usage import TokenUsage
from gateledger.topics import EventType
from producers.simulator.traffic import Faults, TrafficGenerator
from producers.simulator.truth import InteractionTruth
from producers.simulator.world import MODELS as SIM_MODELS
from producers.simulator.world import Mix, Model, Tenant, build_world
from tests.dashboards.simdata_findings import budget_alerts, dead_letters, finding
from tests.dashboards.simdata_local import local_agent_calls

# The world is the simulator's (producers/simulator/world.py), the one its default seed builds: the
# dashboards' tenants, users, agents, MCP servers, tools and models are the simulated traffic's.
# Prices are the bundled catalog's (gateledger/money/prices.yaml); the unpriced calls use a world
# model the catalog has no entry for.
WORLD_SEED = 42
# Every interaction gated by an AxonFlow pre-check, its tool calls through Obot (what these panels read).
MIX = Mix(custom_gateway=0.0, obot_llm=0.0)
# Per approved pre-check / per interaction / per blocked pre-check: the findings' cases.
FAULTS = Faults(missing_audits=0.1, orphan_audits=0.1, bypass=0.4)
WORLD: list[Tenant] = build_world(random.Random(WORLD_SEED), 3, MIX)
TENANTS = tuple(t.name for t in WORLD)
# MCP server id (as the simulator's Obot names it: per tenant) -> display name.
SERVERS = {f"{t.name}-{s}": s for t in WORLD for s in t.servers}
MODELS = tuple(sorted({m.name for t in WORLD for m in t.models}))
CATALOG = load_catalog()
PRICED_AT = datetime(2026, 1, 1, tzinfo=UTC)
POLICIES = ("pii-block", "prompt-injection", "budget-guard")
# The catalog has no tool prices built in (deployment-specific): the one a deployment would configure.
TOOL_PRICE = Decimal("0.002")


def _priced(model: Model) -> bool:
    return not isinstance(CATALOG.resolve(model.provider, model.name, PRICED_AT), Unpriced)


UNPRICED_MODELS = tuple(m for m in SIM_MODELS if not _priced(m))


def models_of(tenant: Tenant) -> tuple[list[Model], Model]:
    """The tenant's priced models, and the unpriced one its unpriced calls use (its own if it has one)."""
    own = [m for m in tenant.models if not _priced(m)]
    return [m for m in tenant.models if _priced(m)], (own or list(UNPRICED_MODELS))[0]


@dataclass
class Expected:
    """Answers computed in Python, independently of the dashboards' SQL."""

    raw_events: int = 0
    dead_letters: int = 0
    total_cost: Decimal = Decimal(0)
    blocked_prechecks: int = 0
    webhook_rejections: int = 0
    denials: int = 0
    findings: Counter[str] = field(default_factory=Counter)
    unpriced_calls: int = 0
    cost_by_tenant: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class SimData:
    """Rows per table (models, newest version last) and the duplicates to insert on top."""

    rows: dict[str, list[BaseModel]] = field(default_factory=dict)
    duplicates: dict[str, list[BaseModel]] = field(default_factory=dict)
    expected: Expected = field(default_factory=Expected)
    interaction_ids: list[str] = field(default_factory=list)

    def add(self, model: BaseModel, table: str | None = None) -> None:
        self.rows.setdefault(table or model.table, []).append(model)  # type: ignore[attr-defined]


def _raw(
    sim: SimData,
    rng: random.Random,
    tenant: str,
    etype: EventType,
    source: str,
    time: datetime,
    request_id: str | None = None,
    context_id: str | None = None,
    user: str | None = None,
) -> str:
    eid = stable_id("sim", etype, tenant, time.isoformat(), rng.random())
    received = time + timedelta(milliseconds=rng.randint(20, 900))
    sim.add(
        Envelope(
            id=eid,
            source=source,
            type=str(etype),
            time=time,
            received_at=received,
            tenant=tenant,
            subject=user,
            request_id=request_id,
            context_id=context_id,
            data={"simulated": True},
        ),
        "raw_events",
    )
    sim.expected.raw_events += 1
    return eid


def _traffic(now: datetime, seed: int, count: int,
             span: timedelta) -> list[tuple[InteractionTruth, list[str]]]:
    """``count`` interactions of the simulator in WORLD over ``span`` before ``now`` (the last two minutes
    left for their records), each with the orphan audits' context ids drawn beside it."""
    start = now - span
    rate = count / max(1.0, span.total_seconds() - 120)
    gen = TrafficGenerator(seed, start, tenants=len(WORLD), rate=rate, faults=FAULTS, mix=MIX,
                           world_seed=WORLD_SEED)
    out = []
    for _ in range(count):
        orphans = len(gen.truth.orphan_audits)
        gen.next()
        out.append((gen.truth.interactions[-1], gen.truth.orphan_audits[orphans:]))
    return out


def generate(
    now: datetime, *, seed: int = 7, interactions_per_tenant: int = 40, span: timedelta = timedelta(hours=2)
) -> SimData:
    """Simulated data for the ``span`` before ``now`` (event times), deterministic for a seed."""
    rng = random.Random(seed)  # what the truth does not say: receipt delays, durations
    sim = SimData()
    exp = sim.expected
    start = now - span
    world = {t.name: t for t in WORLD}
    exp.cost_by_tenant = {t.name: Decimal(0) for t in WORLD}
    for n, (it, orphans) in enumerate(_traffic(now, seed, interactions_per_tenant * len(WORLD), span)):
        tenant, user, client, t0 = it.tenant, it.user, it.agent, it.time
        req = it.request_id
        ctx = it.context_id or f"ctx-{req}"
        inter_id = stable_id("interaction", tenant, req)
        sim.interaction_ids.append(inter_id)
        ev_ids: list[str] = []
        approved, bypass, unaudited = not it.blocked, it.bypass, it.audit_dropped
        blocked = it.blocked and not bypass

        pc_eid = _raw(sim, rng, tenant, EventType.AXONFLOW_PRECHECK, f"axonflow/{tenant}", t0, req, ctx, user)
        ev_ids.append(pc_eid)
        policies = [] if approved else [POLICIES[n % len(POLICIES)]]
        block_reason = None if approved else f"{it.block_reason} ({policies[0]})"
        sim.add(
            PolicyDecision(
                id=stable_id("pd", pc_eid),
                tenant=tenant,
                time=t0,
                source=f"axonflow/{tenant}",
                context_id=ctx,
                request_id=req,
                client_id=client,
                user_id=user,
                approved=approved,
                block_reason=block_reason,
                policies=policies,
                http_status=200 if approved else 402 if it.precheck == "budget_blocked" else 403,
                expires_at=t0 + timedelta(minutes=5),
                event_ids=[pc_eid],
            )
        )
        if not approved:
            exp.blocked_prechecks += 1

        cost_total = Decimal(0)
        llm_ran = it.llm is not None and not unaudited
        unpriced = False
        t = t0 + timedelta(milliseconds=30)
        models: list[str] = []
        if it.llm is not None and llm_ran:
            provider, model = it.llm.provider, it.llm.model
            unpriced = isinstance(CATALOG.resolve(provider, model, t), Unpriced)
            models.append(model)
            llm_eid = _raw(sim, rng, tenant, EventType.AXONFLOW_LLM_AUDIT, f"axonflow/{tenant}", t, req, ctx,
                           user)
            ev_ids.append(llm_eid)
            itok, otok = it.llm.prompt_tokens, it.llm.completion_tokens
            status = LlmCallStatus.ERROR if it.llm.failed else LlmCallStatus.SUCCESS
            llm = LlmCall(
                id=stable_id("llm", llm_eid),
                tenant=tenant,
                time=t,
                source=f"axonflow/{tenant}",
                user_id=user,
                client_id=client,
                provider=provider,
                model=model,
                input_tokens=itok,
                output_tokens=otok,
                total_tokens=itok + otok,
                latency_ms=it.llm.latency_ms,
                status=status,
                error="upstream 500" if status == LlmCallStatus.ERROR else None,
                context_id=ctx,
                request_id=req,
                audit_id=f"audit-{req}",
                event_ids=[llm_eid],
            )
            sim.add(llm)
            cost = _llm_cost(llm, inter_id, restated=n % 6 == 0)
            if cost[0].unpriced:
                exp.unpriced_calls += 1
            for c in cost:
                sim.add(c)
            cost_total += cost[-1].total_cost_usd

        tool_calls = 0
        webhook_rejections = 0
        errors = 0
        servers: list[str] = []
        tools: list[str] = []
        for k, tc in enumerate(it.tool_calls):
            server, tool = tc.mcp_id, tc.tool
            servers.append(server)
            tools.append(tool)
            mcp_eid = _raw(sim, rng, tenant, EventType.OBOT_MCP_CALL, "obot/main/mcp", tc.time, req, None,
                           user)
            ev_ids.append(mcp_eid)
            rejected = tc.outcome == "rejected"
            status = (McpCallStatus.DENIED if rejected else McpCallStatus.FAILURE if tc.outcome == "error"
                      else McpCallStatus.SUCCESS)
            call = McpCall(
                id=stable_id("mcp", mcp_eid),
                tenant=tenant,
                time=tc.time,
                source="obot/main/mcp",
                user_id=user,
                client_name=client,
                mcp_server_id=server,
                mcp_server_name=tc.server,
                method="tools/call",
                tool_name=tool,
                status=status,
                http_status=200 if status == McpCallStatus.SUCCESS else 500,
                error=None if status == McpCallStatus.SUCCESS else f"{status} calling {tool}",
                duration_ms=rng.randint(20, 3000) if status != McpCallStatus.DENIED else None,
                session_id=tc.session_id,
                jsonrpc_id=str(tc.jsonrpc_id),
                request_id=req,
                webhook_rejected=rejected,
                event_ids=[mcp_eid],
            )
            sim.add(call)
            tool_calls += 1
            if call.status == McpCallStatus.DENIED:
                exp.denials += 1
            if call.status in (McpCallStatus.FAILURE, McpCallStatus.TIMEOUT):
                errors += 1
            seen = tc.time - timedelta(milliseconds=5)  # the filter sees the request before it runs
            wh_eid = _raw(sim, rng, tenant, EventType.OBOT_WEBHOOK_DECISION, "obot/main/webhook", seen, req,
                          None, user)
            ev_ids.append(wh_eid)
            sim.add(
                WebhookDecision(
                    id=stable_id("wh", wh_eid),
                    tenant=tenant,
                    time=seen,
                    source="obot/main/webhook",
                    origin="gateledger_filter",
                    filter_name="dlp-filter",
                    phase="request",
                    method="tools/call",
                    tool_name=tool,
                    decision=WebhookDecisionOutcome.REJECTED if rejected else WebhookDecisionOutcome.ACCEPTED,
                    reason="blocked: contains customer PII" if rejected else None,
                    mcp_server_id=server,
                    user_id=user,
                    request_id=req,
                    mcp_call_id=call.id,
                    event_ids=[wh_eid],
                )
            )
            if rejected:
                exp.webhook_rejections += 1
                webhook_rejections += 1
            if call.status == McpCallStatus.SUCCESS:
                sim.add(_tool_cost(call, inter_id, client))
                cost_total += TOOL_PRICE

        exp.total_cost += cost_total
        exp.cost_by_tenant[tenant] += cost_total
        status = (
            InteractionStatus.BYPASS
            if bypass
            else InteractionStatus.BLOCKED
            if blocked
            else InteractionStatus.ERROR
            if errors
            else InteractionStatus.INCOMPLETE
            if unaudited
            else InteractionStatus.OK
        )
        end = t0 + timedelta(seconds=3)
        interaction = Interaction(
            id=inter_id,
            tenant=tenant,
            time=t0,
            end_time=end,
            request_id=req,
            context_ids=[ctx],
            user_id=user,
            client_id=client,
            status=status,
            approved=approved,
            block_reason=block_reason,
            policies=policies,
            llm_calls=int(llm_ran),
            tool_calls=tool_calls,
            webhook_rejections=webhook_rejections,
            errors=errors,
            cost_usd=cost_total,
            latency_ms=3000,
            models=models,
            mcp_servers=servers,
            tools=tools,
            complete=not unaudited,
            close_reason="timeout" if unaudited else "complete",
            event_ids=ev_ids,
            emitted_at=end + timedelta(seconds=1),
        )
        if n % 5 == 0:
            # Emitted once incomplete, then again complete with a higher version.
            sim.add(interaction.model_copy(update={"complete": False, "close_reason": "timeout"}))
            interaction = interaction.model_copy(update={"version": 2, "close_reason": "late_update"})
        sim.add(interaction)

        kind = (
            FindingKind.POLICY_BYPASS
            if bypass
            else FindingKind.UNAUDITED_LLM_CALL
            if unaudited
            else FindingKind.UNPRICED_MODEL
            if unpriced and llm_ran
            else None
        )
        if kind is not None:
            finding(sim, tenant, kind, end, inter_id, ctx, req, user, client, ev_ids)
        for orphan_ctx in orphans:  # an audit naming a context no pre-check issued
            oe = _raw(sim, rng, tenant, EventType.AXONFLOW_LLM_AUDIT, f"axonflow/{tenant}", t, None,
                      orphan_ctx)
            finding(sim, tenant, FindingKind.ORPHAN_AUDIT, t0 + timedelta(minutes=1), None, orphan_ctx, None,
                    user, client, [oe])

    for tenant in WORLD:
        budget_alerts(sim, tenant.name, now)
        dead_letters(sim, rng, tenant.name, start, span)
        local_agent_calls(sim, rng, world[tenant.name], start, span)

    _duplicates(sim, rng)
    return sim


def _llm_cost(llm: LlmCall, inter_id: str, *, restated: bool) -> list[CostEntry]:
    """The call's cost rows, priced with the bundled catalog; ``restated``: a version 2 at a new price too."""
    t = llm.time
    base = dict(id=stable_id("cost", llm.id), tenant=llm.tenant, time=t, kind=CostKind.LLM, event_id=llm.id,
                interaction_id=inter_id, user_id=llm.user_id, team="platform", client_id=llm.client_id,
                provider=llm.provider, model=llm.model, input_tokens=llm.input_tokens,
                output_tokens=llm.output_tokens, price_version=CATALOG.version,
                computed_at=t + timedelta(seconds=1))
    match = CATALOG.resolve(llm.provider, llm.model, t)
    if isinstance(match, Unpriced):
        return [CostEntry(**base, unpriced=True)]
    price = price_usage(match, TokenUsage(input_tokens=llm.input_tokens, output_tokens=llm.output_tokens))
    cin, cout = price.input_cost, price.output_cost
    cost = CostEntry(**base, input_cost_usd=cin, output_cost_usd=cout, total_cost_usd=cin + cout,
                     price_entry=price.entry)
    if not restated:
        return [cost]
    # A restatement: version 2 at a new price supersedes version 1.
    return [cost, cost.model_copy(update={"version": 2, "output_cost_usd": cout * 2, "total_cost_usd": cin + cout * 2,
                                          "price_version": "2026-02", "restated": True})]


def _tool_cost(call: McpCall, inter_id: str, client: str) -> CostEntry:
    """A successful tool call's cost row at the configured tool price."""
    return CostEntry(id=stable_id("cost", call.id), tenant=call.tenant, time=call.time, kind=CostKind.TOOL,
                     event_id=call.id, interaction_id=inter_id, user_id=call.user_id, team="platform",
                     client_id=client, mcp_server_id=call.mcp_server_id, tool_name=call.tool_name,
                     tool_cost_usd=TOOL_PRICE, total_cost_usd=TOOL_PRICE, price_version=CATALOG.version,
                     computed_at=call.time)


def _duplicates(sim: SimData, rng: random.Random) -> None:
    """Every fourth row of every table again: what a sink retry or a replay leaves before merges."""
    for table, rows in sim.rows.items():
        sim.duplicates[table] = [r for i, r in enumerate(rows) if i % 4 == 1]
