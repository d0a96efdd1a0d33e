"""faust wiring of the correlate stage: facts (keyed by root key) -> interactions and bypass findings."""

from __future__ import annotations

from typing import Any

import faust

from gateledger.contracts.events import OUTPUT_MODELS
from gateledger.topics import topic_name
from stream_processors import telemetry
from stream_processors.correlate.stage import STAGE, CorrelatePartition
from stream_processors.normalize.stage import FACTS
from stream_processors.pipeline import StageContext
from stream_processors.runtime import StageRunner, now_us_from

TABLE = "correlate-state"


def _feed(logic: Any, ev: Any) -> int:
    return logic.process(ev.message.value)


def register(app: Any, ctx: StageContext) -> StageRunner:
    """Declare the correlate agent, its table and its tick on ``app``."""
    prefix = ctx.target.topic_prefix
    partitions = ctx.settings.kafka.partitions
    source = app.topic(ctx.internal_topic(FACTS), partitions=partitions, key_serializer="raw",
                       value_serializer="raw", internal=True)
    table = app.Table(TABLE, default=None, partitions=partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="json"))
    names = {str(m.topic): topic_name(m.topic, prefix) for m in OUTPUT_MODELS}
    runner = StageRunner(
        app=app, stage=STAGE, table=table,
        factory=lambda p: CorrelatePartition(p, ctx.proc, ctx.clock),
        topic_names=names, clock_us=now_us_from(ctx.clock), feed=_feed,
    )

    @app.agent(source, name=f"{STAGE}-agent")
    async def correlate(stream: Any) -> None:
        async for events in stream.take_events(ctx.proc.batch_max, within=ctx.proc.batch_within_s):
            await runner.run_batch(events)

    @app.timer(ctx.proc.tick_interval_s, name=f"{STAGE}-tick")
    async def tick() -> None:
        await runner.tick()
        telemetry.OPEN_INTERACTIONS.set(sum(p.open for p in runner.parts.values()))  # type: ignore[attr-defined]

    return runner
