"""faust's aiokafka consumer thread, fetching only records faust will deliver.

faust hands its *live* set of active partitions to the consumer thread, which asks aiokafka for
records of those partitions and waits up to a second for some. aiokafka reads an empty set as
"every partition". So when faust pauses the last active partitions while a fetch waits (the
changelogs at the end of table recovery, with the source partitions still paused), aiokafka hands
over the source partitions' records, faust drops them as not active, and the consumer's position
has already moved past them: those records are never processed. A worker restarted before its
first commit then waits for records it already skipped (seen in
``tests/stream_processors/test_recovery.py``: "FETCHED raw.axonflow 0-149 active=False").

Here each fetch works on a copy of the set taken when it starts, and an empty set fetches nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class ActiveOnlyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The aiokafka consumer thread; a fetch returns records of the partitions active when it began."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust passes fetch_max_wait_ms=1500 with no setting for it; aiokafka reads it at start().
        consumer._fetch_max_wait_ms = self.consumer.app.gateledger_kafka.fetch_max_wait_ms  # noqa: SLF001
        return consumer

    async def _fetch_records(self, consumer: Any, active_partitions: Any, timeout: float | None = None,
                             max_records: int | None = None) -> Any:
        if active_partitions is None:  # client-only mode: every partition, as faust means it
            return await super()._fetch_records(consumer, None, timeout=timeout, max_records=max_records)
        snapshot = set(active_partitions)
        if not snapshot:
            # faust checked the set before handing it over; it emptied since. Nothing to fetch.
            await asyncio.sleep(min(timeout or 0.0, 0.1))
            return {}
        return await super()._fetch_records(consumer, snapshot, timeout=timeout, max_records=max_records)


class ActiveOnlyConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer using ``ActiveOnlyConsumerThread``."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ActiveOnlyConsumerThread(self, loop=self.loop, beacon=self.beacon)
