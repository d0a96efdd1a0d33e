"""faust wiring of the cost stage: ``llm.calls`` + ``mcp.calls`` -> ``cost.ledger`` (+ unpriced findings)."""

from __future__ import annotations

from typing import Any

import faust

from gateledger.contracts.events import OUTPUT_MODELS
from gateledger.topics import Topic, topic_name
from stream_processors.common.money_files import from_settings
from stream_processors.cost.stage import LLM, MCP, STAGE, CostPartition
from stream_processors.pipeline import StageContext
from stream_processors.runtime import StageRunner, now_us_from

TABLE = "cost-state"


def register(app: Any, ctx: StageContext) -> StageRunner:
    """Declare the cost agent, its table and its tick on ``app``."""
    prefix = ctx.target.topic_prefix
    llm_topic, mcp_topic = topic_name(Topic.LLM_CALLS, prefix), topic_name(Topic.MCP_CALLS, prefix)
    kinds = {llm_topic: LLM, mcp_topic: MCP}
    source = app.topic(llm_topic, mcp_topic, key_serializer="raw", value_serializer="raw")
    partitions = ctx.settings.kafka.partitions
    table = app.Table(TABLE, default=None, partitions=partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="json"))
    names = {str(m.topic): topic_name(m.topic, prefix) for m in OUTPUT_MODELS}
    files = from_settings(ctx.settings.core)

    def feed(logic: Any, ev: Any) -> int:
        msg = ev.message
        logic.process(kinds[msg.topic], msg.topic, msg.offset, msg.value)
        return 1

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
