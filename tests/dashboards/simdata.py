"""Deterministic simulated output data for the dashboard tests, built from the contract models.

Every table the dashboards read gets realistic rows for every tenant: pre-checks (some blocked),
LLM calls (some failing, one model unpriced), MCP calls (failures, timeouts, denials), webhook
decisions (some rejected), interactions tying them together, cost entries (some restated to a
higher version), budget alerts, findings of every kind, dead letters. The generator also keeps the
exact answers a few panels must give, computed here independently of any SQL.

Rows go in the way the sink writes them (tests/dashboards/landing.py). No stage runs.
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
from producers.simulator.world import MODELS as SIM_MODELS
from producers.simulator.world import MCP_SERVERS, Model, Tenant, build_world
from tests.dashboards.simdata_findings import budget_alerts, dead_letters, finding
from tests.dashboards.simdata_local import local_agent_calls

# The world is the simulator's (producers/simulator/world.py), the one its default seed builds: the
# dashboards' tenants, users, agents, MCP servers, tools and models are the simulated traffic's.
# Prices are the bundled catalog's (gateledger/money/prices.yaml); the unpriced calls use a world
# model the catalog has no entry for.
WORLD_SEED = 42
WORLD: list[Tenant] = build_world(random.Random(WORLD_SEED), 3)
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


def generate(
    now: datetime, *, seed: int = 7, interactions_per_tenant: int = 40, span: timedelta = timedelta(hours=2)
) -> SimData:
    """Simulated data for the ``span`` before ``now`` (event times), deterministic for a seed."""
    rng = random.Random(seed)
    sim = SimData()
    exp = sim.expected
    start = now - span
    for world in WORLD:
        tenant = world.name
        priced, unpriced_model = models_of(world)
        servers_of = [f"{tenant}-{s}" for s in world.servers]
        exp.cost_by_tenant[tenant] = Decimal(0)
        for n in range(interactions_per_tenant):
            t0 = start + timedelta(seconds=rng.uniform(0, span.total_seconds() - 120))
            user = rng.choice(world.users)
            client = rng.choice(world.agents)
            req = f"req-{tenant}-{n}"
            ctx = f"ctx-{tenant}-{n}"
            inter_id = stable_id("interaction", tenant, req)
            sim.interaction_ids.append(inter_id)
            ev_ids: list[str] = []
            # A fixed share of each tenant's interactions is blocked, bypassing, unaudited...
            blocked = n % 8 == 3
            bypass = n % 13 == 5  # blocked, but the LLM call ran anyway
            unaudited = n % 11 == 7  # approved, the audit never came
            unpriced = n % 10 == 9
            approved = not (blocked or bypass)

            pc_eid = _raw(
                sim, rng, tenant, EventType.AXONFLOW_PRECHECK, f"axonflow/{tenant}", t0, req, ctx, user
            )
            ev_ids.append(pc_eid)
            policies = [] if approved else [POLICIES[n % len(POLICIES)]]
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
                    block_reason=None if approved else f"blocked by {policies[0]}",
                    policies=policies,
                    http_status=200 if approved else 403,
                    expires_at=t0 + timedelta(minutes=5),
                    event_ids=[pc_eid],
                )
            )
            if not approved:
                exp.blocked_prechecks += 1

            cost_total = Decimal(0)
            llm_ran = (approved and not unaudited) or bypass
            t = t0 + timedelta(milliseconds=rng.randint(50, 300))
            models: list[str] = []
            if llm_ran:
                chosen = unpriced_model if unpriced else priced[n % len(priced)]
                provider, model = chosen.provider, chosen.name
                models.append(model)
                llm_eid = _raw(
                    sim, rng, tenant, EventType.AXONFLOW_LLM_AUDIT, f"axonflow/{tenant}", t, req, ctx, user
                )
                ev_ids.append(llm_eid)
                itok, otok = rng.randint(200, 4000), rng.randint(50, 1500)
                status = LlmCallStatus.ERROR if n % 17 == 2 else LlmCallStatus.SUCCESS
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
                    latency_ms=rng.randint(300, 9000),
                    status=status,
                    error="upstream 500" if status == LlmCallStatus.ERROR else None,
                    context_id=ctx,
                    request_id=req,
                    audit_id=f"audit-{tenant}-{n}",
                    event_ids=[llm_eid],
                )
                sim.add(llm)
                if unpriced:
                    cost = CostEntry(
                        id=stable_id("cost", llm.id),
                        tenant=tenant,
                        time=t,
                        kind=CostKind.LLM,
                        event_id=llm.id,
                        interaction_id=inter_id,
                        user_id=user,
                        team="platform",
                        client_id=client,
                        provider=provider,
                        model=model,
                        input_tokens=itok,
                        output_tokens=otok,
                        price_version=CATALOG.version,
                        unpriced=True,
                        computed_at=t + timedelta(seconds=1),
                    )
                    exp.unpriced_calls += 1
                else:
                    match = CATALOG.resolve(provider, model, t)
                    assert not isinstance(match, Unpriced), model
                    price = price_usage(match, TokenUsage(input_tokens=itok, output_tokens=otok))
                    cin, cout = price.input_cost, price.output_cost
                    cost = CostEntry(
                        id=stable_id("cost", llm.id),
                        tenant=tenant,
                        time=t,
                        kind=CostKind.LLM,
                        event_id=llm.id,
                        interaction_id=inter_id,
                        user_id=user,
                        team="platform",
                        client_id=client,
                        provider=provider,
                        model=model,
                        input_tokens=itok,
                        output_tokens=otok,
                        input_cost_usd=cin,
                        output_cost_usd=cout,
                        total_cost_usd=cin + cout,
                        price_version=CATALOG.version,
                        price_entry=price.entry,
                        computed_at=t + timedelta(seconds=1),
                    )
                    if n % 6 == 0:
                        # A restatement: version 2 at a new price supersedes version 1.
                        sim.add(cost)
                        cost = cost.model_copy(
                            update={
                                "version": 2,
                                "output_cost_usd": cout * 2,
                                "total_cost_usd": cin + cout * 2,
                                "price_version": "2026-02",
                                "restated": True,
                            }
                        )
                sim.add(cost)
                cost_total += cost.total_cost_usd

            tool_calls = 0
            webhook_rejections = 0
            errors = 0
            servers: list[str] = []
            tools: list[str] = []
            if approved or bypass:
                for k in range(1 + n % 2):
                    server = servers_of[(n + k) % len(servers_of)]
                    server_tools = MCP_SERVERS[SERVERS[server]]
                    tool = server_tools[(n + k) % len(server_tools)]
                    servers.append(server)
                    tools.append(tool)
                    tc = t + timedelta(milliseconds=rng.randint(100, 2000))
                    mcp_eid = _raw(
                        sim, rng, tenant, EventType.OBOT_MCP_CALL, "obot/main/mcp", tc, req, None, user
                    )
                    ev_ids.append(mcp_eid)
                    roll = (n * 3 + k) % 20
                    status = (
                        McpCallStatus.FAILURE
                        if roll in (1, 2)
                        else McpCallStatus.TIMEOUT
                        if roll == 3
                        else McpCallStatus.DENIED
                        if roll in (4, 5)
                        else McpCallStatus.SUCCESS
                    )
                    rejected = roll == 6
                    call = McpCall(
                        id=stable_id("mcp", mcp_eid),
                        tenant=tenant,
                        time=tc,
                        source="obot/main/mcp",
                        user_id=user,
                        client_name=client,
                        mcp_server_id=server,
                        mcp_server_name=SERVERS[server],
                        method="tools/call",
                        tool_name=tool,
                        status=McpCallStatus.DENIED if rejected else status,
                        http_status=200 if status == McpCallStatus.SUCCESS else 500,
                        error=None if status == McpCallStatus.SUCCESS else f"{status} calling {tool}",
                        duration_ms=rng.randint(20, 3000) if status != McpCallStatus.DENIED else None,
                        session_id=f"sess-{tenant}-{n}",
                        jsonrpc_id=str(k + 1),
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
                    wh_eid = _raw(
                        sim,
                        rng,
                        tenant,
                        EventType.OBOT_WEBHOOK_DECISION,
                        "obot/main/webhook",
                        tc - timedelta(milliseconds=5),
                        req,
                        None,
                        user,
                    )
                    ev_ids.append(wh_eid)
                    sim.add(
                        WebhookDecision(
                            id=stable_id("wh", wh_eid),
                            tenant=tenant,
                            time=tc - timedelta(milliseconds=5),
                            source="obot/main/webhook",
                            origin="gateledger_filter",
                            filter_name="secrets-guard",
                            phase="request",
                            method="tools/call",
                            tool_name=tool,
                            decision=WebhookDecisionOutcome.REJECTED
                            if rejected
                            else WebhookDecisionOutcome.ACCEPTED,
                            reason="secret in arguments" if rejected else None,
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
                        tcost = CostEntry(
                            id=stable_id("cost", call.id),
                            tenant=tenant,
                            time=tc,
                            kind=CostKind.TOOL,
                            event_id=call.id,
                            interaction_id=inter_id,
                            user_id=user,
                            team="platform",
                            client_id=client,
                            mcp_server_id=server,
                            tool_name=tool,
                            tool_cost_usd=TOOL_PRICE,
                            total_cost_usd=TOOL_PRICE,
                            price_version=CATALOG.version,
                            computed_at=tc,
                        )
                        sim.add(tcost)
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
                block_reason=None if approved else f"blocked by {policies[0]}",
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
            if n % 9 == 4:
                # An audit that names a context no pre-check issued.
                orphan_ctx = f"ctx-orphan-{tenant}-{n}"
                oe = _raw(
                    sim, rng, tenant, EventType.AXONFLOW_LLM_AUDIT, f"axonflow/{tenant}", t0, None, orphan_ctx
                )
                finding(
                    sim,
                    tenant,
                    FindingKind.ORPHAN_AUDIT,
                    t0 + timedelta(minutes=1),
                    None,
                    orphan_ctx,
                    None,
                    user,
                    client,
                    [oe],
                )

        budget_alerts(sim, tenant, now)
        dead_letters(sim, rng, tenant, start, span)
        local_agent_calls(sim, rng, world, start, span)

    _duplicates(sim, rng)
    return sim


def _duplicates(sim: SimData, rng: random.Random) -> None:
    """Every fourth row of every table again: what a sink retry or a replay leaves before merges."""
    for table, rows in sim.rows.items():
        sim.duplicates[table] = [r for i, r in enumerate(rows) if i % 4 == 1]
