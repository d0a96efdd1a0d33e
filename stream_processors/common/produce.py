"""Produce a stage's messages as whole record batches, one per topic-partition, not one send each.

aiokafka's per-message ``send`` costs ~20 µs in Python before a byte moves (metadata wait that
copies the partition set, serialization hooks, the partitioner's pure-Python murmur2, a future per
message). Grouping a flush's messages per topic-partition and appending them to a ``BatchBuilder``
(``send_batch``) pays that once per partition. The partition of a keyed message is the one Kafka's
default partitioner gives (``partitioning.partition_for``), so consumers see exactly what
``send`` produced: same partitions, same order within each partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from stream_processors.common.partitioning import partition_for


def kafka_producer(app: Any) -> Any:
    """The aiokafka producer under faust's (faust exposes no batch send; its commit flushes this one)."""
    return app.producer._ensure_producer()


class PartitionBatches:
    """Messages collected per topic-partition, handed to aiokafka as closed record batches."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.messages: dict[tuple[str, int | None], list[tuple[bytes | None, bytes | None]]] = {}

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """One message; ``partition`` None: the default partitioner's choice for ``key`` (a key is needed)."""
        self.messages.setdefault((topic, partition), []).append((key, value))

    def __len__(self) -> int:
        return sum(len(m) for m in self.messages.values())

    async def send(self) -> list[Awaitable[Any]]:
        """Queue every collected message; futures that resolve when the broker acknowledged them."""
        producer = self.producer
        counts: dict[str, int] = {}
        by_tp: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for (topic, partition), msgs in self.messages.items():
            if partition is not None:
                by_tp.setdefault((topic, partition), []).extend(msgs)
                continue
            n = counts.get(topic)
            if n is None:
                n = counts[topic] = len(await producer.client._wait_on_metadata(topic))
            for key, value in msgs:
                if key is None:
                    raise ValueError(f"a message for {topic} without a partition needs a key")
                by_tp.setdefault((topic, partition_for(key, n)), []).append((key, value))
        self.messages = {}
        futures: list[Awaitable[Any]] = []
        for (topic, partition), msgs in by_tp.items():
            batch = producer.create_batch()
            for key, value in msgs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    # Full (a batch is at most the producer's max_batch_size): ship it, start another;
                    # a first message always fits, however large.
                    futures.append(await self._ship(batch, topic, partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await self._ship(batch, topic, partition))
        return futures

    async def _ship(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        # Closed: nothing else joins it, and the sender takes it at once instead of lingering.
        batch.close()
        return await self.producer.send_batch(batch, topic, partition=partition)
