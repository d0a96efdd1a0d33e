"""The flush order, pinned: batch log -> rollup snapshot -> rows -> rollup feed -> dead letters -> commit."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from gateledger.settings import Settings
from gateledger.topics import Topic
from sinks.clickhouse.writer import client_insert, client_query
from tests.sinks.conftest import publish, running_sink, wait_caught_up
from tests.sinks.events import World, encode


def test_each_batch_is_recorded_snapshotted_inserted_fed_dead_lettered_then_committed(
    settings: Settings, ch_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def insert(client: Any, table: str, body: bytes, s: dict[str, Any]) -> None:
        client_insert(client, table, body, s)
        calls.append(("insert", table.split(".")[-1].strip("`"), s.get("insert_deduplication_token"), body))

    def query(client: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return client_query(client, sql, params)

    real_commit = AIOKafkaConsumer.commit

    async def commit(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        await real_commit(self, offsets)
        for tp, om in offsets.items():
            calls.append(("commit", tp.topic, tp.partition, om.offset))

    monkeypatch.setattr(AIOKafkaConsumer, "commit", commit)
    w = World(seed=3)
    messages = [(Topic.MCP_CALLS, "same-key", encode(w.mcp_call())) for _ in range(20)]
    messages.insert(5, (Topic.MCP_CALLS, "same-key", b"{broken"))
    messages += [(Topic.RAW_OBOT_LLM, "k", b'{"id":"r","tenant":"t","time":"2026-11-20T10:00:00Z","source":"s",'
                                            b'"type":"x","received_at":"2026-11-20T10:00:00Z"}')]

    async def main() -> None:
        async with running_sink(settings, insert_fn=insert, query_fn=query) as state:
            await publish(settings, messages)
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())

    def index(pred: Any) -> int:
        found = [i for i, c in enumerate(calls) if pred(c)]
        assert len(found) == 1, found
        return found[0]

    batches = [orjson.loads(c[3]) for c in calls if c[0] == "insert" and c[1] == "sink_batches"]
    assert {b["topic"].split(".", 1)[1] for b in batches} == {"mcp.calls", "raw.obot.llm"}
    full_chains = 0

    def range_of(tok: str | None) -> str | None:
        # a token is the range plus "@<first message timestamp>", then a step suffix
        if tok is None or "@" not in tok:
            return tok
        head, tail = tok.split("@", 1)
        return head + (tail[tail.index("/"):] if "/" in tail else "")

    calls = [(c[0], c[1], range_of(c[2]), *c[3:]) if c[0] == "insert" else c for c in calls]
    for b in batches:
        token = f"{b['topic']}:{b['partition']}:{b['first_offset']}-{b['last_offset']}"
        steps = [
            index(lambda c, b=b: c[0] == "insert" and c[1] == "sink_batches" and orjson.loads(c[3]) == b),
            index(lambda c, t=token: c[0] == "insert" and c[2] == t + "/prior") if "mcp" in token else None,
            index(lambda c, t=token: c[0] == "insert" and c[2] == t),
            index(lambda c, t=token: c[0] == "insert" and c[2] == t + "/feed") if "mcp" in token else None,
            index(lambda c, t=token: c[0] == "insert" and c[2] == t + "/dead")
            if any(c[2] == token + "/dead" for c in calls if c[0] == "insert") else None,
            index(lambda c, b=b: c[0] == "commit" and c[1:] == (b["topic"], b["partition"], b["last_offset"] + 1)),
        ]
        present = [s for s in steps if s is not None]
        assert present == sorted(present), (token, steps)
        full_chains += all(s is not None for s in steps)
    assert full_chains == 1, "the batch with the broken message went through every step"
