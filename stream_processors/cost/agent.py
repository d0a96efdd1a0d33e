"""faust wiring of the cost stage: the call rows, packed (``stream_processors/calls.py``) -> ``cost.ledger``
(+ unpriced findings)."""

from __future__ import annotations

from typing import Any

import faust

from gateledger.contracts.events import OUTPUT_MODELS
from gateledger.topics import topic_name
from stream_processors.calls import CALLS, LLM_TAG, unpack
from stream_processors.common.money_files import from_settings
from stream_processors.cost.stage import LLM, MCP, STAGE, CostPartition
from stream_processors.pipeline import StageContext
from stream_processors.runtime import StageRunner, now_us_from

TABLE = "cost-state"


def register(app: Any, ctx: StageContext) -> StageRunner:
    """Declare the cost agent, its table and its tick on ``app``."""
    prefix = ctx.target.topic_prefix
    partitions = ctx.settings.kafka.partitions
    calls = ctx.internal_topic(CALLS)
    source = app.topic(calls, partitions=partitions, key_serializer="raw", value_serializer="raw", internal=True)
    table = app.Table(TABLE, default=None, partitions=partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="json"))
    names = {str(m.topic): topic_name(m.topic, prefix) for m in OUTPUT_MODELS}
    files = from_settings(ctx.settings.core)

    def feed(logic: Any, ev: Any) -> int:
        msg = ev.message
        n = 0
        for tag, row in unpack(msg.value or b""):
            logic.process(LLM if tag == LLM_TAG else MCP, msg.topic, msg.offset, row)
            n += 1
        return n

    runner = StageRunner(
        app=app, stage=STAGE, table=table,
        factory=lambda p: CostPartition(p, ctx.proc, files, ctx.masker, ctx.clock),
        topic_names=names, clock_us=now_us_from(ctx.clock), feed=feed,
    )

    @app.agent(source, name=f"{STAGE}-agent")
    async def cost(stream: Any) -> None:
        async for events in stream.take_events(ctx.proc.batch_max, within=ctx.proc.batch_within_s):
            files.refresh()
            await runner.run_batch(events)

    return runner
