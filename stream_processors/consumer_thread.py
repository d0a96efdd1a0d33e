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

The consumer also delivers a record without faust's per-record tasks when the delivery does not
have to wait (``ActiveOnlyConsumer.wait_first``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

_FLOW_WAIT = asyncio.Event.wait.__code__  # faust's suspend_flow is an asyncio.Event


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


class _Rest:
    """The rest of a coroutine that suspended on its first step, awaitable: driven exactly as a Task
    drives a coroutine (each future it yields is handed up, then it is resumed or thrown into)."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Any, pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, None, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                yield pending
            except BaseException as exc:  # noqa: BLE001 (cancellation and errors go to the coroutine)
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(None)
                except StopIteration as done:
                    return done.value


class ActiveOnlyConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer using ``ActiveOnlyConsumerThread``."""

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        """faust's fetcher delivers every record as ``wait_first(callback(message), suspend_flow.wait())``:
        four tasks, an ``asyncio.wait`` and three cancellations per record (~15 % of the worker's CPU,
        docs/benchmarks.md). Here the delivery's first step runs at once; when it completes without
        waiting (its queue has room, flow not suspended: the usual case) that is the whole delivery.
        When it has to wait, the rest of it races the flow event and the service's stop exactly as in
        faust (``_Rest``), so a rebalance still cuts a waiting delivery short before faust seeks.
        """
        if (len(coros) != 2 or timeout is not None or getattr(coros[1], "cr_code", None) is not _FLOW_WAIT
                or not hasattr(coros[0], "send") or self.suspend_flow.is_set() or self.should_stop
                or self._crashed.is_set()):
            return await super().wait_first(*coros, timeout=timeout)
        delivery, flow = coros
        try:
            pending = delivery.send(None)
        except StopIteration as done:
            flow.close()
            return WaitResults([delivery], [done.value], False)
        except BaseException:
            flow.close()
            raise
        return await super().wait_first(_Rest(delivery, pending), flow)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ActiveOnlyConsumerThread(self, loop=self.loop, beacon=self.beacon)
