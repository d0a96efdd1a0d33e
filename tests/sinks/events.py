"""Realistic output events of every table, built with the contract models (what the processors emit)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gateledger.contracts.events import (
    BudgetAlert,
    CostEntry,
    DeadLetter,
    Finding,
    Interaction,
    LlmCall,
    McpCall,
    OutputEvent,
    PolicyDecision,
    WebhookDecision,
)
from gateledger.ids import stable_id

TENANTS = ("acme", "globex", "initech")
USERS = tuple(f"user-{i}" for i in range(12))
SERVERS = (("ms-github", "GitHub"), ("ms-jira", "Jira"), ("ms-pg", "Postgres"))
TOOLS = ("search_issues", "create_issue", "run_query", "list_repos")
MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-pro"))
TEAMS = ("platform", "support", "research")


def recent(minutes_ago: float = 30) -> datetime:
    """A time relative to now (TTL would delete fixed old dates during merges)."""
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).replace(microsecond=0)


class World:
    """Deterministic generator of related events."""

    def __init__(self, seed: int = 7, base: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.base = base or recent(120)
        self.n = 0

    def _t(self, spread_s: int = 3600) -> datetime:
        return self.base + timedelta(seconds=self.rng.randrange(spread_s), microseconds=self.rng.randrange(10**6))

    def _id(self, kind: str) -> str:
        self.n += 1
        return stable_id("test", kind, self.n)

    def mcp_call(self, **over: Any) -> McpCall:
        server, name = self.rng.choice(SERVERS)
        status = self.rng.choices(["success", "failure", "denied", "timeout"], [85, 8, 5, 2])[0]
        fields: dict[str, Any] = dict(
            id=self._id("mcp"), tenant=self.rng.choice(TENANTS), time=self._t(), source="obot/test/mcp",
            user_id=self.rng.choice(USERS), client_name="Cursor", client_version="1.7.2", client_ip="10.0.0.1",
            mcp_server_id=server, mcp_server_name=name, method="tools/call", tool_name=self.rng.choice(TOOLS),
            status=status, http_status=200 if status == "success" else 500,
            error="" if status == "success" else "upstream failed",
            duration_ms=self.rng.randint(5, 3000), session_id=f"sess-{self.rng.randrange(50)}",
            jsonrpc_id=str(self.rng.randrange(1000)), request_id=f"req-{self.rng.randrange(10**6)}",
            webhook_statuses=[{"type": "request", "name": "dlp", "status": "ok"}],
            request_body='{"jsonrpc":"2.0","method":"tools/call"}', response_body='{"result":{}}',
            event_ids=[stable_id("raw", self.n)],
        )
        fields.update(over)
        return McpCall(**fields)

    def llm_call(self, **over: Any) -> LlmCall:
        provider, model = self.rng.choice(MODELS)
        inp, out = self.rng.randint(10, 5000), self.rng.randint(1, 2000)
        status = self.rng.choices(["success", "error"], [95, 5])[0]
        fields: dict[str, Any] = dict(
            id=self._id("llm"), tenant=self.rng.choice(TENANTS), time=self._t(), source="axonflow/test",
            user_id=self.rng.choice(USERS), client_id="support-bot", provider=provider, model=model,
            input_tokens=inp, output_tokens=out, cache_read_tokens=inp // 10, total_tokens=inp + out,
            latency_ms=self.rng.randint(100, 9000), status=status, context_id=f"ctx-{self.n}",
            request_id=f"req-{self.rng.randrange(10**6)}",
        )
        fields.update(over)
        return LlmCall(**fields)

    def cost(self, **over: Any) -> CostEntry:
        provider, model = self.rng.choice(MODELS)
        inp, out = self.rng.randint(10, 5000), self.rng.randint(1, 2000)
        ic = (Decimal(inp) * Decimal("2.5") / Decimal(10**6)).quantize(Decimal("1e-12"))
        oc = (Decimal(out) * Decimal("10") / Decimal(10**6)).quantize(Decimal("1e-12"))
        fields: dict[str, Any] = dict(
            id=self._id("cost"), tenant=self.rng.choice(TENANTS), time=self._t(), kind="llm",
            event_id=stable_id("llm", self.n), user_id=self.rng.choice(USERS), team=self.rng.choice(TEAMS),
            client_id="support-bot", provider=provider, model=model, input_tokens=inp, output_tokens=out,
            input_cost_usd=ic, output_cost_usd=oc, total_cost_usd=ic + oc, price_version="2026-11-01",
            price_entry=model, computed_at=self.base,
        )
        fields.update(over)
        return CostEntry(**fields)

    def policy(self, **over: Any) -> PolicyDecision:
        approved = self.rng.random() > 0.2
        fields: dict[str, Any] = dict(
            id=self._id("pd"), tenant=self.rng.choice(TENANTS), time=self._t(), source="axonflow/test",
            context_id=f"ctx-{self.n}", request_id=f"req-{self.n}", client_id="support-bot",
            user_id=self.rng.choice(USERS), user_token_hash="hmac:0123456789abcdef", approved=approved,
            block_reason=None if approved else "PII detected in query",
            policies=["pii_detection"] if approved else ["pii_detection", "sql_injection"],
            expires_at=self.base + timedelta(minutes=5),
        )
        fields.update(over)
        return PolicyDecision(**fields)

    def webhook(self, **over: Any) -> WebhookDecision:
        decision = self.rng.choices(["accepted", "rejected", "mutated"], [80, 15, 5])[0]
        fields: dict[str, Any] = dict(
            id=self._id("wh"), tenant=self.rng.choice(TENANTS), time=self._t(), source="obot/test/webhook",
            origin="gateledger_filter", filter_name="dlp", phase="request", method="tools/call",
            tool_name=self.rng.choice(TOOLS), decision=decision,
            reason="secret in arguments" if decision == "rejected" else None,
            mcp_server_id=self.rng.choice(SERVERS)[0], user_id=self.rng.choice(USERS),
        )
        fields.update(over)
        return WebhookDecision(**fields)

    def interaction(self, **over: Any) -> Interaction:
        t = self._t()
        fields: dict[str, Any] = dict(
            id=self._id("ix"), tenant=self.rng.choice(TENANTS), time=t, end_time=t + timedelta(seconds=2),
            request_id=f"req-{self.n}", user_id=self.rng.choice(USERS), client_id="support-bot", status="ok",
            approved=True, policies=["pii_detection"], llm_calls=1, tool_calls=2, input_tokens=100,
            output_tokens=50, total_tokens=150, cost_usd=Decimal("0.000750000000"), latency_ms=2000,
            models=["gpt-4o"], mcp_servers=["ms-github"], tools=["search_issues"], complete=True, emitted_at=t,
        )
        fields.update(over)
        return Interaction(**fields)

    def finding(self, **over: Any) -> Finding:
        fields: dict[str, Any] = dict(
            id=self._id("f"), tenant=self.rng.choice(TENANTS), time=self._t(), kind="unaudited_llm_call",
            severity="high", context_id=f"ctx-{self.n}", user_id=self.rng.choice(USERS),
            client_id="support-bot", description="approved pre-check with no audit before expiry",
            evidence_event_ids=[stable_id("raw", self.n)], detected_at=self.base,
        )
        fields.update(over)
        return Finding(**fields)

    def budget_alert(self, **over: Any) -> BudgetAlert:
        fields: dict[str, Any] = dict(
            id=self._id("ba"), tenant=self.rng.choice(TENANTS), time=self._t(), budget_id="b-1",
            budget_name="acme monthly", scope={"tenant": "acme", "model": "gpt-4o"},
            period_start=self.base, period_end=self.base + timedelta(days=30), kind="threshold",
            threshold_pct=80, spend_usd=Decimal("80.5"), limit_usd=Decimal("100"),
            utilization=Decimal("0.805"), action="alert", fired_at=self.base,
        )
        fields.update(over)
        return BudgetAlert(**fields)

    def dead_letter(self, **over: Any) -> DeadLetter:
        fields: dict[str, Any] = dict(
            id=self._id("dl"), tenant="acme", time=self._t(), stage="normalize", origin="raw.obot.mcp",
            reason="schema", error="missing field", original='{"x":1}', original_sha256="0" * 64, original_size=7,
        )
        fields.update(over)
        return DeadLetter(**fields)

    def one_of_each(self) -> list[OutputEvent]:
        """One event of every output model."""
        return [self.mcp_call(), self.llm_call(), self.cost(), self.policy(), self.webhook(), self.interaction(),
                self.finding(), self.budget_alert(), self.dead_letter()]


def encode(event: OutputEvent) -> bytes:
    """The event as the processors publish it."""
    return event.model_dump_json().encode()
