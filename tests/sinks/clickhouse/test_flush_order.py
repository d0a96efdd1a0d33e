"""The flush order, pinned: batch log -> rollup snapshot -> rows -> rollup feed -> dead letters -> commit,
each once per flush (the batches of one table's partitions, under one token)."""

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
        calls.append(("commit", frozenset((tp.topic, tp.partition, om.offset) for tp, om in offsets.items())))

    monkeypatch.setattr(AIOKafkaConsumer, "commit", commit)
    w = World(seed=3)
    # several keys: several partitions, so a flush holds several batches
    messages = [(Topic.MCP_CALLS, f"key-{i % 4}", encode(w.mcp_call())) for i in range(20)]
    messages.insert(5, (Topic.MCP_CALLS, "key-1", b"{broken"))
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

    recorded = [[orjson.loads(line) for line in c[3].splitlines()] for c in calls
                if c[0] == "insert" and c[1] == "sink_batches"]
    assert {b["topic"].split(".", 1)[1] for f in recorded for b in f} == {"mcp.calls", "raw.obot.llm"}
    full_chains = 0

    def range_of(tok: str | None) -> str | None:
        # a batch token is the range plus "@<first message timestamp>", then a step suffix
        if tok is None or "@" not in tok:
            return tok
        head, tail = tok.split("@", 1)
        return head + (tail[tail.index("/"):] if "/" in tail else "")

    calls = [(c[0], c[1], range_of(c[2]), *c[3:]) if c[0] == "insert" else c for c in calls]
    for flush in recorded:
        b = flush[0]
        # a flush of several batches has a token of its own (recorded with them), one batch its range
        token = b["flush"] or f"{b['topic']}:{b['partition']}:{b['first_offset']}-{b['last_offset']}"
        assert all(x["flush"] == b["flush"] for x in flush) and (len(flush) > 1) == bool(b["flush"])
        steps = [
            index(lambda c, f=flush: c[0] == "insert" and c[1] == "sink_batches"
                  and [orjson.loads(line) for line in c[3].splitlines()] == f),
            index(lambda c, t=token: c[0] == "insert" and c[2] == t + "/prior") if "mcp" in b["topic"] else None,
            index(lambda c, t=token: c[0] == "insert" and c[2] == t),
            index(lambda c, t=token: c[0] == "insert" and c[2] == t + "/feed") if "mcp" in b["topic"] else None,
            index(lambda c, t=token: c[0] == "insert" and c[2] == t + "/dead")
            if any(c[2] == token + "/dead" for c in calls if c[0] == "insert") else None,
        ]
        commits = [index(lambda c, x=x: c[0] == "commit" and (x["topic"], x["partition"], x["last_offset"] + 1) in c[1])
                   for x in flush]
        assert len(set(commits)) == 1, "one commit for the flush's batches"
        steps.append(commits[0])
        present = [s for s in steps if s is not None]
        assert present == sorted(present), (token, steps)
        full_chains += all(s is not None for s in steps)
    assert full_chains == 1, "the flush with the broken message went through every step"
    assert any(len(f) > 1 for f in recorded), f"no flush held several batches: {recorded}"
