"""Generating interactions as the upstream systems report them, in their wire formats, with faults.

One interaction: an AxonFlow pre-check (sometimes blocked by policy, by budget (HTTP 402) or held
for approval) and the LLM call's audit, or an LLM call reported by a custom gateway as a
CloudEvent; zero or more MCP tool calls through the Obot shim (a session's ``initialize`` /
``tools/list``, then ``tools/call``; some reported as request and response halves), each first
shown to gateledger's webhook filter; and sometimes a chat through Obot's LLM gateway (one tenant
runs the Obot version that records zero tokens).

Faults act on the delivery stream, never on what happened: duplicates, reordering (held back up to
a minute), late delivery (hours), extra malformed records, approved pre-checks never audited,
audits for unknown context ids, and audits after a blocked pre-check. All randomness comes from
seeded generators, and all times from ``start``: the same seed and start give the same bytes.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateledger import jsonutil
from gateledger.contracts.envelope import utc_iso
from gateledger.ids import stable_id
from producers.simulator.records import (
    AUDIT_PATH,
    PRECHECK_PATH,
    audit_request,
    audit_response,
    axonflow_exchange,
    obot_call,
    precheck_request,
    precheck_response,
    token_usage,
    tool_call_message,
)
from producers.simulator.truth import (
    GroundTruth,
    InteractionTruth,
    LlmTruth,
    MalformedTruth,
    ObotLlmTruth,
    ToolCallTruth,
)
from producers.simulator.world import CLIENTS, FRAMEWORKS, MCP_SERVERS, POLICIES, Mix, Tenant, build_world


@dataclass
class Delivery:
    """One record as it is handed to gateledger: its format, tenant, delivery time and bytes."""

    fmt: str
    tenant: str
    at: datetime  # simulated delivery time (event times are inside the record)
    value: Any = None
    raw: bytes | None = None  # set for malformed JSON: exactly these bytes are sent
    kind: str = "normal"  # normal | duplicate | reordered | late | malformed
    headers: dict[str, str] = field(default_factory=dict)  # webhook delivery headers

    def body(self) -> bytes:
        """The record's bytes."""
        return self.raw if self.raw is not None else jsonutil.dumps(self.value)


@dataclass(frozen=True)
class Faults:
    """Probabilities of each fault (per record, or per interaction where noted)."""

    duplicates: float = 0.0  # a record is delivered twice
    out_of_order: float = 0.0  # a record is held back 1-60 s
    late: float = 0.0  # per interaction: its last record arrives ``late_hours`` later
    late_hours: float = 3.0
    malformed: float = 0.0  # per interaction: one extra malformed record
    missing_audits: float = 0.0  # per approved pre-check: the audit is never sent
    orphan_audits: float = 0.0  # per interaction: an audit for a context id nobody issued
    bypass: float = 0.0  # per blocked pre-check: the LLM call runs and is audited anyway
    zero_token_audits: float = 0.0  # per AxonFlow audit: it reports zero tokens
    filter_bypass: float = 0.0  # per tool call a webhook filter rejected: it runs anyway

    @classmethod
    def chaos(cls) -> Faults:
        """A bit of everything (what ``--chaos`` turns on)."""
        return cls(duplicates=0.03, out_of_order=0.05, late=0.01, late_hours=3.0, malformed=0.01,
                   missing_audits=0.02, orphan_audits=0.005, bypass=0.01)


class TrafficGenerator:
    """Deterministic interaction generator with a fault-injecting delivery queue."""

    def __init__(self, seed: int, start: datetime, *, tenants: int = 3, rate: float = 50.0,
                 faults: Faults | None = None, mix: Mix | None = None, world_seed: int | None = None) -> None:
        self.mix = mix or Mix()
        # world_seed: other traffic in the same world (the dashboard tests keep one world across seeds).
        self.world: list[Tenant] = build_world(random.Random(seed if world_seed is None else world_seed), tenants,
                                               self.mix)
        self.rng = random.Random(seed)
        # Faults draw from their own stream: switching them on does not change the traffic itself.
        self.frng = random.Random(seed * 7919 + 1)
        self.faults = faults or Faults()
        self.start = start
        self.spacing = timedelta(seconds=1.0 / rate if rate > 0 else 0.02)
        self.truth = GroundTruth(seed=seed, start=start, tenants=[t.name for t in self.world])
        self.count = 0
        self._heap: list[tuple[datetime, int, Delivery]] = []
        self._seq = 0

    # -- ids -----------------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    # -- the delivery queue ----------------------------------------------------------------------

    def _push(self, d: Delivery) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (d.at, self._seq, d))

    def _due(self, until: datetime | None) -> list[Delivery]:
        out = []
        while self._heap and (until is None or self._heap[0][0] <= until):
            out.append(heapq.heappop(self._heap)[2])
        return out

    def _deliver(self, fmt: str, tenant: str, at: datetime, value: Any, headers: dict[str, str] | None = None,
                 late: bool = False) -> None:
        """Queue one real record, applying the per-record faults."""
        f, r = self.faults, self.frng
        self.truth.distinct[fmt] += 1
        when, kind = at, "normal"
        if late:
            when, kind = at + timedelta(hours=f.late_hours), "late"
            self.truth.late[fmt] += 1
        elif f.out_of_order and r.random() < f.out_of_order:
            when, kind = at + timedelta(seconds=r.uniform(1, 60)), "reordered"
            self.truth.reordered[fmt] += 1
        self._push(Delivery(fmt, tenant, when, value, kind=kind, headers=dict(headers or {})))
        if f.duplicates and r.random() < f.duplicates:
            self.truth.duplicates[fmt] += 1
            self._push(Delivery(fmt, tenant, when + timedelta(seconds=r.uniform(0.1, 30)), value, kind="duplicate",
                                headers=dict(headers or {})))

    # -- public --------------------------------------------------------------------------------

    def next(self) -> list[Delivery]:
        """Generate the next interaction; returns the deliveries now due (in delivery order)."""
        t = self.start + self.spacing * self.count
        self.count += 1
        self._interaction(t)
        return self._due(t)

    def drain(self) -> list[Delivery]:
        """Everything still held back (reordered, duplicated later, late), in delivery order."""
        return self._due(None)

    # -- one interaction -------------------------------------------------------------------------

    def _interaction(self, t0: datetime) -> None:
        rng, f = self.rng, self.faults
        tenant = rng.choice(self.world)
        user = rng.choice(tenant.users)
        agent = rng.choice(tenant.agents)
        request_id = f"req-{self._uuid()}"
        trace_id = self._hex(32)
        traceparent = f"00-{trace_id}-{self._hex(16)}-01"
        servers = rng.sample(tenant.servers, rng.randint(1, min(3, len(tenant.servers))))
        late = bool(f.late) and self.frng.random() < f.late
        truth = InteractionTruth(request_id=request_id, tenant=tenant.name, user=user, agent=agent, time=t0,
                                 trace_id=trace_id, context_id=None, precheck=None, late=late)
        self.truth.interactions.append(truth)
        queued: list[tuple[str, datetime, Any, dict[str, str]]] = []
        custom = rng.random() < tenant.custom_gateway_share
        model = rng.choice(tenant.models)
        prompt = max(1, int(rng.gauss(model.input_tokens, model.input_tokens / 4)))
        completion = max(1, int(rng.gauss(model.output_tokens, model.output_tokens / 3)))
        latency = int(rng.lognormvariate(6.5, 0.5))
        failed = rng.random() < self.mix.llm_failures
        llm = LlmTruth(model.provider, model.name, prompt, 0 if failed else completion, latency, failed,
                       "cloudevents" if custom else "axonflow")
        if not custom and f.zero_token_audits and self.frng.random() < f.zero_token_audits:
            llm = dataclasses.replace(llm, prompt_tokens=0, completion_tokens=0)
        t1 = t0 + timedelta(milliseconds=30)
        runs = True
        if custom:
            truth.llm = llm
            queued.append(("cloudevents", t1 + timedelta(milliseconds=latency),
                           self._cloudevent(tenant, user, agent, request_id, traceparent, llm, t1), {}))
        else:
            verdict = rng.choices(["approved", "blocked", "budget_blocked", "require_approval"], self.mix.verdicts)[0]
            context_id = f"ctx-{self._uuid()}"
            truth.context_id, truth.precheck = context_id, verdict
            pre, reason = self._precheck(tenant, user, agent, request_id, traceparent, context_id, servers, verdict, t0)
            truth.block_reason = reason
            queued.append(("axonflow-precheck", t0 + timedelta(milliseconds=8), pre, {}))
            runs = verdict == "approved"
            if not runs and f.bypass and self.frng.random() < f.bypass:
                truth.bypass = runs = True
            if runs:
                truth.llm = llm
                audit = self._audit(tenant, agent, request_id, context_id, llm, t1, self.rng)
                if verdict == "approved" and f.missing_audits and self.frng.random() < f.missing_audits:
                    truth.audit_dropped = True
                else:
                    queued.append(("axonflow-llm-call", t1 + timedelta(milliseconds=latency + 4), audit, {}))
        if runs:
            queued.extend(self._tool_calls(tenant, user, servers, request_id, traceparent,
                                           t1 + timedelta(milliseconds=latency + 10), truth))
        if rng.random() < self.mix.obot_llm:
            queued.append(self._obot_llm(tenant, user, request_id, t0 + timedelta(milliseconds=rng.randint(0, 900))))
        if f.orphan_audits and self.frng.random() < f.orphan_audits:
            orphan = f"ctx-orphan-{self.frng.getrandbits(64):016x}"
            self.truth.orphan_audits.append(orphan)
            queued.append(("axonflow-llm-call", t1, self._audit(tenant, agent, None, orphan, llm, t1, self.frng), {}))
        queued.sort(key=lambda q: q[1])
        for i, (fmt, at, value, headers) in enumerate(queued):
            self._deliver(fmt, tenant.name, at, value, headers, late=late and i == len(queued) - 1)
        if f.malformed and self.frng.random() < f.malformed:
            self._malformed(tenant, t0)

    # -- record builders ---------------------------------------------------------------------

    def _precheck(self, tenant: Tenant, user: str, agent: str, request_id: str, traceparent: str, context_id: str,
                  servers: list[str], verdict: str, t0: datetime) -> tuple[dict[str, Any], str | None]:
        rng = self.rng
        policies = rng.sample(POLICIES, rng.randint(0, 2))
        reason = None
        status = 200
        redaction = "pii_detection" in policies
        extra = {"approved_data": {}, "rate_limit": {"limit": 1000, "remaining": rng.randint(0, 1000),
                                                     "reset_at": utc_iso(t0 + timedelta(minutes=1))},
                 "trace_id": traceparent.split("-")[1]}
        if verdict == "blocked":
            reason = rng.choice(["Prompt injection pattern detected", "SQL injection detected",
                                 "PII exfiltration attempt"])
            policies = policies + ["prompt_injection"]
        elif verdict == "require_approval":
            reason = "require_approval"
        response = precheck_response(context_id, verdict == "approved", policies, t0 + timedelta(minutes=5),
                                     block_reason=reason, requires_redaction=redaction, **extra)
        if verdict == "budget_blocked":
            status, reason = 402, "budget_exceeded"
            limit = rng.choice([50, 100, 250])
            response = {"error": "budget exceeded", "message": "Budget exceeded", "approved": False,
                        "policies": ["budget_exceeded"],
                        "budget_info": {"budget_id": f"bud-{tenant.name}", "budget_name": f"{tenant.name} monthly",
                                        "used_usd": f"{limit + rng.randint(0, 9)}.{rng.randint(0, 99):02d}",
                                        "limit_usd": f"{limit}.00", "percentage": 100.0, "exceeded": True,
                                        "action": "block"}}
        finished = t0 + timedelta(milliseconds=rng.randint(3, 25))
        request = precheck_request(
            f"utok_{user}_{self._hex(24)}", agent,
            f"{agent} request for {user}: summarize recent activity (contact {user}@{tenant.name}.example)",
            {"request_id": request_id, "traceparent": traceparent, "tenant_id": tenant.name, "mcp_servers": servers,
             "agent_framework": rng.choice(FRAMEWORKS)},
            data_sources=servers)
        return axonflow_exchange(PRECHECK_PATH, tenant.name, t0, finished, request, response, status=status), reason

    def _audit(self, tenant: Tenant, agent: str, request_id: str | None, context_id: str, llm: LlmTruth,
               t1: datetime, rng: random.Random) -> dict[str, Any]:
        meta: dict[str, Any] = {"error": True} if llm.failed else {}
        if request_id:
            meta["request_id"] = request_id
        summary = "" if llm.failed else f"Summarized {rng.randint(1, 40)} items"
        request = audit_request(context_id, agent, llm.provider, llm.model,
                                token_usage(llm.prompt_tokens, llm.completion_tokens), llm.latency_ms, meta,
                                response_summary=summary)
        audit_id = f"aud-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        started = t1 + timedelta(milliseconds=llm.latency_ms)
        return axonflow_exchange(AUDIT_PATH, tenant.name, started, started + timedelta(milliseconds=4), request,
                                 audit_response(audit_id))

    def _cloudevent(self, tenant: Tenant, user: str, agent: str, request_id: str, traceparent: str, llm: LlmTruth,
                    t1: datetime) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": f"llm-{self._uuid()}",
            "source": f"{tenant.name}/custom-gateway",
            "type": "gateledger.llm.call",
            "time": utc_iso(t1 + timedelta(milliseconds=llm.latency_ms)),
            "subject": user,
            "datacontenttype": "application/json",
            "tenant": tenant.name,
            "requestid": request_id,
            "traceparent": traceparent,
            "data": {"provider": llm.provider, "model": llm.model, "input_tokens": llm.prompt_tokens,
                     "output_tokens": llm.completion_tokens, "latency_ms": llm.latency_ms,
                     "status": "error" if llm.failed else "success", "user": user, "agent": agent},
        }

    def _tool_calls(self, tenant: Tenant, user: str, servers: list[str], request_id: str, traceparent: str,
                    t2: datetime, truth: InteractionTruth) -> list[tuple[str, datetime, Any, dict[str, str]]]:
        rng = self.rng
        n = rng.choice(self.mix.tool_calls)
        if n == 0:
            return []
        out: list[tuple[str, datetime, Any, dict[str, str]]] = []
        client_name, client_version = rng.choice(CLIENTS)
        session = f"sess-{self._hex(16)}"
        truth.session_id = session
        ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        base = {"subject": user, "clientName": client_name, "clientVersion": client_version, "clientIP": ip,
                "sessionID": session, "userAgent": f"{client_name}/{client_version}"}

        def meta(server: str) -> dict[str, str]:
            return {"mcpID": f"{tenant.name}-{server}", "mcpServerDisplayName": server,
                    "mcpServerCatalogEntryName": f"catalog/{server}", "userID": user}

        # The session opens with initialize (and often tools/list) on the first server.
        first = servers[0]
        out.append(("obot-audit", t2, {**base, "createdAt": utc_iso(t2), "metadata": meta(first),
                                        "callType": "initialize", "requestID": "0",
                                        "requestBody": {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                                        "params": {"protocolVersion": "2025-06-18"}},
                                        "responseStatus": 200, "processingTimeMs": rng.randint(2, 30),
                                        "responseBody": {"jsonrpc": "2.0", "id": 0, "result": {}}}, {}))
        t = t2 + timedelta(milliseconds=40)
        for k in range(n):
            server = rng.choice(servers)
            tool = rng.choice(MCP_SERVERS[server])
            jsonrpc_id = k + 1
            duration = int(rng.lognormvariate(4.5, 0.7))
            outcome = ("rejected" if rng.random() < self.mix.tool_rejections
                       else "error" if rng.random() < self.mix.tool_errors else "ok")
            halves = rng.random() < 0.3
            ran_anyway = (outcome == "rejected" and bool(self.faults.filter_bypass)
                          and self.frng.random() < self.faults.filter_bypass)
            message = tool_call_message(
                jsonrpc_id, tool, {"query": f"item {rng.randint(1, 999)}", "contact": f"{user}@{tenant.name}.example"},
                {"request_id": request_id, "traceparent": traceparent,
                 "io.modelcontextprotocol/clientInfo": {"name": client_name, "version": client_version}})
            mcp_id = f"{tenant.name}-{server}"
            truth.tool_calls.append(ToolCallTruth(server, mcp_id, tool, jsonrpc_id, session, t, outcome, halves,
                                                  ran_anyway))
            # Obot shows the request to gateledger's filter before it runs.
            delivery_id = stable_id("sim-webhook", request_id, jsonrpc_id)
            out.append(("obot-webhook", t, message,
                        {"X-Obot-User-Id": user, "X-Obot-Mcp-Server-Id": mcp_id, "Idempotency-Key": delivery_id}))
            webhook = [{"type": "request", "method": "tools/call", "name": "dlp-filter", "tool": tool,
                        "url": "https://hooks.internal/dlp", "status": "rejected" if outcome == "rejected" else "ok",
                        "message": "blocked: contains customer PII" if outcome == "rejected" else ""}]
            if outcome == "rejected" and not ran_anyway:
                response = {"jsonrpc": "2.0", "id": jsonrpc_id,
                            "error": {"code": -32001, "message": "MCP request blocked by hook: dlp-filter"}}
                error = "MCP request blocked by hook: dlp-filter"
            else:
                response = {"jsonrpc": "2.0", "id": jsonrpc_id,
                            "result": {"content": [{"type": "text", "text": "ok"}], "isError": outcome == "error"}}
                error = "upstream tool error" if outcome == "error" else ""
            req_part = {"callType": "tools/call", "callIdentifier": tool, "requestBody": message,
                        "requestHeaders": {"Authorization": "[REDACTED]", "Mcp-Session-Id": session}}
            resp_part = {"responseStatus": 200, "processingTimeMs": duration, "responseBody": response,
                         "responseReceived": outcome != "rejected" or ran_anyway, "error": error, "webhookStatuses": webhook,
                         "responseHeaders": {"Content-Type": "application/json"}}
            common = {**base, "metadata": meta(server), "requestID": str(jsonrpc_id)}
            done = t + timedelta(milliseconds=duration)
            request, response_half, whole = obot_call(common, req_part, resp_part, t, done)
            if halves:
                out.append(("obot-audit", t, request, {}))
                out.append(("obot-audit", done, response_half, {}))
            else:
                out.append(("obot-audit", done, whole, {}))
            t = done + timedelta(milliseconds=5)
        return out

    def _obot_llm(self, tenant: Tenant, user: str, request_id: str, t: datetime) -> tuple[str, datetime, Any, dict]:
        rng = self.rng
        model = rng.choice(tenant.models)
        outcome = rng.choices(["success", "error", "canceled"], [95, 3, 2])[0]
        tin = max(1, int(rng.gauss(model.input_tokens, model.input_tokens / 4)))
        tout = max(1, int(rng.gauss(model.output_tokens, model.output_tokens / 3))) if outcome == "success" else 0
        if tenant.zero_token_defect:
            tin = tout = 0
        rec_id = self._uuid()
        duration = int(rng.lognormvariate(6.8, 0.5))
        self.truth.obot_llm_calls.append(ObotLlmTruth(rec_id, tenant.name, user, model.name, tin, tout, outcome, t))
        record = {
            "id": rec_id,
            "createdAt": utc_iso(t),
            "duration": duration,
            "userID": user,
            "apiKeyID": f"key-{user}",
            "apiKeyName": "chat",
            "modelProvider": model.provider,
            "modelID": model.name,
            "targetModel": model.name,
            "requestPath": "/v1/chat/completions",
            "requestMethod": "POST",
            "requestHeaders": {"Authorization": "[REDACTED]", "Content-Type": "application/json"},
            "requestBody": {"model": model.name, "messages": [{"role": "user", "content": "draft a reply"}]},
            "responseStatus": {"success": 200, "error": 500, "canceled": 499}[outcome],
            "outcome": outcome,
            "error": "" if outcome == "success" else f"upstream {outcome}",
            "inputTokens": tin,
            "outputTokens": tout,
            "requestID": f"obot-{request_id}",
            "userAgent": "obot-chat/0.24.0",
            "clientSessionID": f"chat-{self._hex(8)}",
            "clientIP": "10.0.0.9",
        }
        return ("obot-llm", t, record, {})

    def _malformed(self, tenant: Tenant, t: datetime) -> None:
        r = self.frng
        fmt = r.choice(["obot-audit", "obot-webhook", "axonflow-precheck", "axonflow-llm-call", "obot-llm",
                        "cloudevents"])
        if r.random() < 0.5:
            raw = b'{"createdAt": "' + utc_iso(t).encode() + b'", "n": %d, "truncated' % len(self.truth.malformed)
            d = Delivery(fmt, tenant.name, t, raw=raw, kind="malformed")
            reason = "invalid_json"
        else:
            value: Any = {
                "obot-audit": {"createdAt": "yesterday", "callType": "tools/call", "subject": "x"},
                "obot-webhook": {"jsonrpc": "1.0", "id": 1, "method": "tools/call"},
                "axonflow-precheck": {"path": "/api/policy/pre-check", "status": 200, "request": {"client_id": "a"},
                                      "response": {}},
                "axonflow-llm-call": {"request": {"context_id": "ctx-x", "provider": "openai", "model": "gpt-4o",
                                                  "token_usage": {"prompt_tokens": -5}}},
                "obot-llm": {"createdAt": utc_iso(t), "modelID": "gpt-4o"},
                "cloudevents": {"specversion": "0.3", "id": "x", "source": "s", "type": "t"},
            }[fmt]
            # Distinct garbage: identical bytes would (rightly) collapse into one dead letter.
            value["sim_garbage"] = f"{utc_iso(t)}#{len(self.truth.malformed)}"
            d = Delivery(fmt, tenant.name, t, value=value, kind="malformed")
            reason = "schema"
        self.truth.malformed.append(MalformedTruth(fmt, reason, tenant.name))
        self._push(d)
