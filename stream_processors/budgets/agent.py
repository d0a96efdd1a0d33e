"""faust wiring of the budget stages: ``cost.ledger`` -> contributions by budget -> alerts, state, gauges."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import faust

from gateledger.contracts.events import OUTPUT_MODELS
from gateledger.money.accounting import fresh_state, snapshot
from gateledger.money.telemetry import BudgetMetrics
from gateledger.topics import Topic, topic_name
from stream_processors.budgets.backfill import MARKERS, BudgetBackfill, ClickHouseLedger
from stream_processors.budgets.stage import CONTRIBUTIONS, FANOUT, STAGE, BudgetPartition, FanoutPartition
from stream_processors.common.money_files import MoneyFiles, from_settings
from stream_processors.pipeline import StageContext
from stream_processors.runtime import StageRunner, is_ready, now_us_from

TABLE = "budgets-state"
log = logging.getLogger(__name__)
_METRICS: BudgetMetrics | None = None


def metrics() -> BudgetMetrics:
    """The process's budget gauges (registered once on the default registry)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = BudgetMetrics()
    return _METRICS


def update_gauges(runner: StageRunner, files: MoneyFiles, now: Any) -> None:
    """Gauges of every budget for the period holding ``now`` (spend 0 when it has no state yet)."""
    m = metrics()
    current: dict[str, Any] = {}  # budget id -> snapshot of the period holding now
    for logic in runner.parts.values():
        for alert in logic.alerts_fired:  # type: ignore[attr-defined]
            m.alert_fired(alert)
        logic.alerts_fired.clear()  # type: ignore[attr-defined]
        latest = logic.latest  # type: ignore[attr-defined]
        for key, snap in list(latest.items()):
            if snap.period_start <= now < snap.period_end:
                current[snap.budget_id] = snap
            elif snap.period_end + timedelta(days=1) < now:
                del latest[key]
    for budget in files.budgets.budgets:
        snap = current.get(budget.id)
        if snap is None or not m.observe(snap, now, budget.projection_min_elapsed):
            empty = snapshot(budget, fresh_state(budget, budget.spec.period_at(now)), now)
            m.observe(empty, now, budget.projection_min_elapsed)


def register(app: Any, ctx: StageContext) -> StageRunner:
    """Declare the fan-out and accounting agents, the accounting table and the gauge timer on ``app``."""
    prefix = ctx.target.topic_prefix
    partitions = ctx.settings.kafka.partitions
    files = from_settings(ctx.settings.core)
    contributions = ctx.internal_topic(CONTRIBUTIONS)
    ledger = app.topic(topic_name(Topic.COST_LEDGER, prefix), key_serializer="raw", value_serializer="raw")
    source = app.topic(contributions, partitions=partitions, key_serializer="raw", value_serializer="raw",
                       internal=True)
    table = app.Table(TABLE, default=None, partitions=partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="json"))
    names = {str(m.topic): topic_name(m.topic, prefix) for m in OUTPUT_MODELS}
    names[str(Topic.BUDGET_STATE)] = topic_name(Topic.BUDGET_STATE, prefix)
    names[CONTRIBUTIONS] = contributions

    def feed_fanout(logic: Any, ev: Any) -> int:
        msg = ev.message
        logic.process(msg.topic, msg.offset, msg.value)
        return 1

    def feed_budget(logic: Any, ev: Any) -> int:
        return logic.process(ev.message.offset, ev.message.value)

    fanout = StageRunner(
        app=app, stage=FANOUT, table=table, factory=lambda p: FanoutPartition(p, files, ctx.masker),
        topic_names=names, clock_us=now_us_from(ctx.clock), feed=feed_fanout, packed={CONTRIBUTIONS: partitions},
    )
    runner = StageRunner(
        app=app, stage=STAGE, table=table,
        factory=lambda p: BudgetPartition(p, files, ctx.clock, ctx.proc.budget_retention_s),
        topic_names=names, clock_us=now_us_from(ctx.clock), feed=feed_budget,
    )
    ctx.runners[FANOUT] = fanout

    @app.agent(ledger, name=f"{FANOUT}-agent")
    async def fan_out(stream: Any) -> None:
        async for events in stream.take_events(ctx.proc.batch_max, within=ctx.proc.batch_within_s):
            files.refresh()
            await fanout.run_batch(events)

    @app.agent(source, name=f"{STAGE}-agent")
    async def account(stream: Any) -> None:
        async for events in stream.take_events(ctx.proc.batch_max, within=ctx.proc.batch_within_s):
            files.refresh()
            await runner.run_batch(events)

    markers = ctx.internal_topic(MARKERS)  # created by main() before the worker starts (no agent reads it)
    backfill = BudgetBackfill(
        files=files, kafka=ctx.settings.kafka, target=ctx.target, ledger_topic=ledger.get_topic_name(),
        contributions_topic=contributions, markers_topic=markers, partitions=partitions, clock=ctx.clock,
        send=lambda *args: app.producer.send(*args),
        ledger=ClickHouseLedger.from_settings(ctx.settings, ctx.proc.clickhouse_query_url))

    @app.timer(ctx.proc.tick_interval_s, name=f"{STAGE}-gauges")
    async def gauges() -> None:
        files.refresh()
        try:
            update_gauges(runner, files, ctx.clock())
        except Exception:  # gauges must never stop the worker
            log.exception("budget gauges not updated")
        backfill.maybe_start(is_ready(app))

    return runner
