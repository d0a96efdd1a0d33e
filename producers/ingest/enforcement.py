"""Budget enforcement in the ingest service: follow ``budget.state`` into an ``EnforcementView`` and
decide, per Obot webhook-filter call and AxonFlow pre-check, whether a ``block`` budget refuses it.

``BudgetStateFollower`` is a background task: an unassigned-group consumer reading every partition of
the compacted ``budget.state`` topic from the beginning, then tailing it (fetches wait at most
``FETCH_WAIT_MS``, so a new snapshot is applied within about that plus the accountant's own lag).
It knows the view is complete when every partition's position has reached the high watermark the
last fetch reported; the time of that is the view's freshness. Start-up does not wait for it: the
service answers at once, and until the view has caught up it counts as stale.

``Enforcer.decide(scope, path)`` is a dictionary walk over the snapshots, no I/O. Stale view:
``enforce_when_stale=open`` (default) decides from what the view holds; ``closed`` refuses calls
that a block budget covers (others pass). The budget definitions come from the budgets file,
re-read when it changes; they decide action, scope and limit, so raising a limit unblocks at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from gateledger import jsonutil
from gateledger.clock import Clock, utcnow
from gateledger.contracts.budget_state import BudgetStateSnapshot
from gateledger.kafka import KafkaTarget, common_config
from gateledger.money.budgets import BudgetFileError, BudgetsLoader, BudgetSet
from gateledger.money.enforcement import EnforcementDecision, EnforcementView, RequestScope
from gateledger.money.teams import TeamDirectory, TeamsFileError
from gateledger.settings import KafkaSettings
from gateledger.topics import Topic, topic_name
from producers import telemetry
from producers.ingest.settings import IngestSettings
from producers.obot.webhook import Decision, DecisionPolicy, WebhookDelivery

log = logging.getLogger(__name__)

FETCH_WAIT_MS = 100


class BudgetStateFollower:
    """Keeps an ``EnforcementView`` equal to the compacted ``budget.state`` topic."""

    def __init__(self, kafka: KafkaSettings, target: KafkaTarget, view: EnforcementView) -> None:
        self.kafka = kafka
        self.target = target
        self.view = view
        self.topic = topic_name(Topic.BUDGET_STATE, target.topic_prefix)
        self.started_at = time.time()
        self.fresh_at: float | None = None  # wall time the view was last known complete
        self.applied = 0
        self.invalid = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def age_seconds(self) -> float:
        """Seconds since the view was last known to hold everything on the topic (since start until then)."""
        return max(0.0, time.time() - (self.fresh_at if self.fresh_at is not None else self.started_at))

    @property
    def caught_up(self) -> bool:
        return self.fresh_at is not None

    def start(self) -> None:
        """Run in the background (call from a running loop)."""
        self._task = asyncio.create_task(self._run(), name="budget-state-follower")

    async def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._follow()
            except (KafkaError, OSError) as exc:
                log.warning("budget.state follower: %s; reconnecting in 1s", exc)
                try:
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                except TimeoutError:
                    pass
            except Exception:  # never let the follower die silently: the view would go stale unnoticed
                log.exception("budget.state follower failed; restarting in 1s")
                try:
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                except TimeoutError:
                    pass

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            **common_config(self.kafka, self.target.bootstrap), enable_auto_commit=False, group_id=None,
            auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        await consumer.start()
        try:
            parts: set[int] = set()
            while not parts and not self._stop.is_set():
                await consumer._client.force_metadata_update()  # noqa: SLF001 (topic made after start)
                parts = consumer.partitions_for_topic(self.topic) or set()
                if not parts:
                    await asyncio.sleep(0.5)
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            pruned = time.monotonic()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=5000)
                for msgs in batch.values():
                    for m in msgs:
                        self._apply(m.key, m.value)
                await self._check_fresh(consumer, tps)
                if time.monotonic() - pruned > 60:
                    self.view.prune(utcnow())
                    pruned = time.monotonic()
        finally:
            await consumer.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # tombstone: the period state was deleted
            if key is not None:
                self.view.remove(key.decode())
            return
        try:
            snap = BudgetStateSnapshot.model_validate(jsonutil.loads(value))
        except (jsonutil.JSONDecodeError, ValidationError) as exc:
            # Not ours to dead-letter (the accountant wrote it); counted and logged, the rest still applies.
            self.invalid += 1
            log.error("budget.state: unreadable snapshot %r: %s", key, str(exc)[:300])
            return
        self.view.update(snap)
        self.applied += 1

    async def _check_fresh(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        oldest: float | None = None
        for tp in tps:
            hw = consumer.highwater(tp)
            polled = consumer.last_poll_timestamp(tp)
            if hw is None or not polled or await consumer.position(tp) < hw:
                return
            oldest = polled / 1000 if oldest is None else min(oldest, polled / 1000)
        if oldest is not None:
            self.fresh_at = oldest


@dataclass(frozen=True)
class Verdict:
    """What the ingest does with one call."""

    blocked: bool
    outcome: str  # allowed | blocked | stale_allowed | stale_blocked
    decision: EnforcementDecision | None = None
    reason: str | None = None

    def details(self) -> dict[str, Any]:
        """What the published event records about the budget (``_gateledger.details``)."""
        d = self.decision
        if d is None or d.budget_id is None:
            return {"enforcement": self.outcome}
        return {"enforcement": self.outcome, "budget_id": d.budget_id, "budget_name": d.budget_name,
                "spend_usd": str(d.spend_usd), "limit_usd": str(d.limit_usd), "period_key": d.period_key}


ALLOWED = Verdict(False, "allowed")


class Enforcer:
    """Budget decisions for the ingest routes, from the followed view and the budgets file."""

    def __init__(self, settings: IngestSettings, view: EnforcementView, budgets: BudgetsLoader | None,
                 teams: TeamDirectory | None = None, follower: BudgetStateFollower | None = None,
                 clock: Clock = utcnow) -> None:
        self.settings = settings
        self.view = view
        self.budgets = budgets
        self.teams = teams or TeamDirectory()
        self.follower = follower
        self.clock = clock
        self._budget_set: BudgetSet | None = None
        self._has_block = False
        self.refresh_budgets()

    def refresh_budgets(self) -> BudgetSet | None:
        """Re-read the budgets file if it changed, and give the view the current definitions."""
        if self.budgets is None:
            return None
        current = self.budgets.current()
        if current is not self._budget_set:
            self._budget_set = current
            self.view.set_budgets(current)
            self._has_block = any(b.action == "block" for b in current.budgets)
        return current

    @property
    def enabled(self) -> bool:
        """Whether calls are checked at all (setting, or: the budgets file has a block budget)."""
        if self.settings.enforce_budgets is False:
            return False
        current = self.refresh_budgets()
        if self.settings.enforce_budgets is None:
            return current is not None and self._has_block
        return True

    def stale(self) -> bool:
        """True when the view may be missing snapshots (not caught up, or not confirmed recently)."""
        if self.follower is None:
            return False
        return self.follower.age_seconds() > self.settings.enforce_stale_after_s or not self.follower.caught_up

    def decide(self, scope: RequestScope, path: str) -> Verdict:
        """Block or allow one call (counted in ``gateledger_ingest_enforcement_decisions_total``)."""
        if not self.enabled:
            return ALLOWED
        scope = scope.with_team(self.teams)
        now = self.clock()
        decision = self.view.check(scope, now)
        if self.stale():
            if decision.blocked:
                verdict = Verdict(True, "stale_blocked", decision, decision.reason)
            elif self.settings.enforce_when_stale == "closed" and self.view.applicable_block_budgets(scope):
                age = self.follower.age_seconds() if self.follower else 0.0
                verdict = Verdict(True, "stale_blocked", None,
                                  f"budget state unavailable (last current {age:.0f}s ago); failing closed for "
                                  f"budgets {', '.join(self.view.applicable_block_budgets(scope))}")
            else:
                verdict = Verdict(False, "stale_allowed", decision)
        elif decision.blocked:
            verdict = Verdict(True, "blocked", decision, decision.reason)
        else:
            verdict = ALLOWED
        telemetry.ENFORCEMENT_DECISIONS.labels(path=path, outcome=verdict.outcome).inc()
        return verdict

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: is enforcement on, and how fresh is its view."""
        out: dict[str, Any] = {"enabled": self.enabled, "snapshots": len(self.view.snapshots),
                               "when_stale": self.settings.enforce_when_stale}
        if self.follower is not None:
            out.update(caught_up=self.follower.caught_up, age_s=round(self.follower.age_seconds(), 3),
                       stale=self.stale(), applied=self.follower.applied, invalid=self.follower.invalid)
        return out

    def start(self) -> None:
        """Start following ``budget.state`` and publish the view's metrics."""
        if self.follower is not None:
            self.follower.start()
            telemetry.BUDGET_VIEW_AGE.set_function(self.follower.age_seconds)
        telemetry.BUDGET_VIEW_SNAPSHOTS.set_function(lambda: len(self.view.snapshots))

    async def stop(self) -> None:
        """Stop following."""
        if self.follower is not None:
            await self.follower.stop()


class _UnusableAtStart(BudgetsLoader):
    """A budgets file that could not be read at start-up: no budgets until a good version is written
    (the next ``current()`` sees a changed file and loads it)."""

    def __init__(self, path: Any, error: str) -> None:  # noqa: D107 - deliberately skips the parent's load
        self.path = path
        self._stamp = None
        self._budgets = BudgetSet()
        self.last_error = error


def build_enforcer(settings: IngestSettings, kafka: KafkaSettings, target: KafkaTarget,
                   budgets_path: Any, teams_path: Any = None, clock: Clock = utcnow) -> Enforcer | None:
    """The enforcer the service runs with (None when enforcement is switched off)."""
    if settings.enforce_budgets is False and not settings.budget_gauges:
        return None
    try:
        teams = TeamDirectory.load(teams_path)
    except TeamsFileError as exc:
        log.error("teams file unusable, team budgets will not apply: %s", exc)
        teams = TeamDirectory()
    try:
        loader = BudgetsLoader(budgets_path)
    except BudgetFileError as exc:
        # A broken file at start-up: enforce nothing rather than refuse to start; logged loudly.
        log.error("budgets file unusable, no budget is enforced until it is fixed: %s", exc)
        loader = _UnusableAtStart(budgets_path, str(exc))
    view = EnforcementView()
    return Enforcer(settings, view, loader, teams, BudgetStateFollower(kafka, target, view), clock)


def _client_name(message: dict[str, Any]) -> str | None:
    meta = (message.get("params") or {}).get("_meta") if isinstance(message.get("params"), dict) else None
    info = meta.get("io.modelcontextprotocol/clientInfo") if isinstance(meta, dict) else None
    name = info.get("name") if isinstance(info, dict) else None
    return str(name) if name else None


class BudgetPolicy:
    """The webhook filter's decision policy: refuse a call a block budget no longer allows, else ask
    the inner policy. Obot relays a refusal to the MCP client as JSON-RPC error -32001 "MCP request
    blocked by hook"; the body (``accept: false``, ``reason``) names the budget."""

    name = "budgets"
    STATUS = 402  # any non-2xx rejects; 402 says why, as AxonFlow's budget blocks do

    def __init__(self, enforcer: Enforcer, inner: DecisionPolicy) -> None:
        self.enforcer = enforcer
        self.inner = inner

    async def decide(self, delivery: WebhookDelivery) -> Decision:
        """Budget check first (no I/O), then the inner policy."""
        message = delivery.message
        # A response delivery carries its request's method (Obot proxy_hooks.go): never budget-blocked.
        if delivery.phase == "request" and message.get("method") in self.enforcer.settings.enforce_methods:
            scope = RequestScope(tenant=delivery.tenant, user=delivery.user_id, client=_client_name(message),
                                 mcp_server=delivery.mcp_server_id)
            verdict = self.enforcer.decide(scope, "webhook")
            if verdict.blocked:
                return Decision.reject(verdict.reason or "budget exhausted", self.name, self.STATUS,
                                       **verdict.details())
        return await self.inner.decide(delivery)


def precheck_scopes(body: dict[str, Any], tenant: str) -> list[RequestScope]:
    """What an AxonFlow pre-check says about its caller: one scope per MCP server it names (or one)."""
    ctx = body.get("context") if isinstance(body.get("context"), dict) else {}
    user = ctx.get("user_id") or ctx.get("user")
    client = body.get("client_id")
    model = ctx.get("model")
    servers = ctx.get("mcp_servers") if isinstance(ctx.get("mcp_servers"), list) else []
    base = dict(tenant=tenant, user=str(user) if user else None, client=str(client) if client else None,
                model=str(model) if model else None)
    return [RequestScope(**base, mcp_server=str(s)) for s in servers if s] or [RequestScope(**base)]


def decide_precheck(enforcer: Enforcer, body: dict[str, Any], tenant: str) -> Verdict:
    """The verdict on a pre-check: blocked when any of its scopes is."""
    verdict = ALLOWED
    for scope in precheck_scopes(body, tenant):
        verdict = enforcer.decide(scope, "precheck")
        if verdict.blocked:
            return verdict
    return verdict
