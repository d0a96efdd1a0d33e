"""faust wiring of the normalize stage: raw topics -> output rows, findings, facts (and dead letters)."""

from __future__ import annotations

from typing import Any

import faust

from gateledger.contracts.events import OUTPUT_MODELS
from gateledger.topics import Topic, topic_name
from stream_processors.normalize.stage import FACTS, STAGE, NormalizePartition, RawTopics
from stream_processors.pipeline import StageContext
from stream_processors.runtime import StageRunner, now_us_from

TABLE = "normalize-state"


def _feed(logic: Any, ev: Any) -> int:
    msg = ev.message
    logic.process(msg.topic, msg.offset, msg.value)
    return 1


def register(app: Any, ctx: StageContext) -> StageRunner:
    """Declare the normalize agent, its table and its tick on ``app``."""
    prefix = ctx.target.topic_prefix
    raw = RawTopics.with_prefix(prefix)
    source = app.topic(*raw.all(), key_serializer="raw", value_serializer="raw")
    facts = ctx.internal_topic(FACTS)
    partitions = ctx.settings.kafka.partitions
    # Declared so faust creates it with the right partition count before the correlate agent reads it.
    app.topic(facts, partitions=partitions, key_serializer="raw", value_serializer="raw", internal=True)
    table = app.Table(TABLE, default=None, partitions=partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="json"))
    names = {str(m.topic): topic_name(m.topic, prefix) for m in OUTPUT_MODELS}
    names[str(Topic.DEAD_LETTERS)] = topic_name(Topic.DEAD_LETTERS, prefix)
    names[FACTS] = facts
    runner = StageRunner(
        app=app, stage=STAGE, table=table,
        factory=lambda p: NormalizePartition(p, ctx.proc, raw, ctx.masker, ctx.clock),
        topic_names=names, clock_us=now_us_from(ctx.clock), feed=_feed, packed={FACTS: partitions},
    )

    @app.agent(source, name=f"{STAGE}-agent")
    async def normalize(stream: Any) -> None:
        async for events in stream.take_events(ctx.proc.batch_max, within=ctx.proc.batch_within_s):
            await runner.run_batch(events)

    @app.timer(ctx.proc.tick_interval_s, name=f"{STAGE}-tick")
    async def tick() -> None:
        await runner.tick()

    return runner
