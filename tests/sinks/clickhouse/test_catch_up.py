"""The sink behind ClickHouse lands larger batches, not more of them (real broker, real chDB).

A flush takes one batch per partition and costs about the same whatever its rows (its parts, the
rollup views' parts, the look-ups). When batches were cut every ``batch_max_wait_ms`` whether or not
an earlier one still waited, a sink that fell behind kept landing batches as small as when it kept
up and never caught up (docs/benchmarks-soak.md, the run of 2026-12-04 17:45 and its reading).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from gateledger.kafka import resolve
from gateledger.settings import Settings
from gateledger.topics import Topic, topic_name
from sinks.clickhouse.writer import client_insert
from tests.sinks.checks import q
from tests.sinks.conftest import fast_sink, publish, running_sink, wait_caught_up
from tests.sinks.events import World, encode

WAVES = 6
PER_WAVE = 5


def test_messages_arriving_while_a_flush_is_slow_land_in_one_batch_per_partition(settings: Settings,
                                                                                   ch_client) -> None:
    db = settings.clickhouse.database
    w = World(seed=3)
    waves = [[w.interaction() for _ in range(PER_WAVE)] for _ in range(WAVES)]
    release = threading.Event()
    held: list[str] = []

    def slow_first_insert(client: Any, table: str, body: bytes, ch_settings: dict[str, Any]) -> None:
        # ClickHouse slow on the first flush of interactions: the real insert, once released.
        if table.endswith("`interactions`") and not held:
            held.append(table)
            release.wait(60)
        client_insert(client, table, body, ch_settings)

    async def main() -> None:
        sink = fast_sink(batch_max_wait_ms=100)
        async with running_sink(settings, sink, insert_fn=slow_first_insert) as state:
            for i, wave in enumerate(waves):
                # One key: every message in one partition, in order.
                await publish(settings, ((Topic.INTERACTIONS, "one", encode(e)) for e in wave))
                while i == 0 and not held:  # the first wave's flush is under way (and held)
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.4)  # longer than batch_max_wait_ms: a batch's time is up
            release.set()
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())
    topic = topic_name(Topic.INTERACTIONS, resolve(settings.kafka, settings.core).topic_prefix)
    ranges = q(ch_client, f"SELECT first_offset, last_offset FROM {db}.sink_batches"
                          " WHERE topic = {t:String} ORDER BY first_offset", t=topic)
    got = [(int(a), int(b)) for a, b in ranges]
    # The held flush's batch, the one closed on time behind it, and all the rest together (one batch
    # per wave before: 6), contiguous.
    assert got[0] == (0, PER_WAVE - 1) and len(got) <= 3, got
    assert all(nxt[0] == prev[1] + 1 for prev, nxt in zip(got, got[1:], strict=False)), got
    assert got[-1][1] == WAVES * PER_WAVE - 1, got
    (rows, distinct), = q(ch_client, f"SELECT count(), uniqExact(id) FROM {db}.interactions")
    assert rows == distinct == WAVES * PER_WAVE
