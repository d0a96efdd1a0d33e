"""faust's table recovery, completed in an order that cannot lose source records.

When recovery completes, faust (0.15.3, ``Recovery.on_recovery_completed``) resumes the source
partitions, then seeks them to their committed offsets, then resumes flow control, which clears
every stream queue. Records fetched in between (flow is already active from reading the
changelogs) reach the agents' queues and may be cleared before an agent takes them, while the
consumer's position is past them. And the seek moves only partitions with a committed offset
above 0: a partition never committed keeps a position that records dropped during the rebalance
(``stream_processors/consumer_thread.py``) may have moved to the end. Either way those records are
never processed, and since faust commits only up to the first unacknowledged offset, the
partition's commit stops for good (a restarted worker that consumes nothing, or events missing
until the next restart): about one run in three of ``tests/stream_processors/test_recovery.py``.

Here completion seeks while the source partitions are still paused, sends partitions without a
commit to the beginning (where ``auto_offset_reset=earliest`` starts them), clears the queues by
resuming flow control, and only then resumes the partitions: the first record fetched from each is
the first one not committed, and it lands in an empty queue.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import TopicPartition
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery


class OrderedRecovery(Recovery):
    """faust's recovery service; completion seeks, clears and only then resumes source partitions."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Call when active table recovery is completed."""
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]))
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again app id %s param %s",
                             app.consumer_generation_id, generation_id)
            return
        streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        # The source partitions are still paused (faust pauses everything on assignment): nothing
        # is fetched from them while the seek runs.
        consumer.pause_partitions(streams)
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
            # aiokafka seeks only partitions with a committed offset above 0; the others keep their
            # position, which records dropped during the rebalance may have moved. Start those
            # where a consumer without a commit starts (auto_offset_reset is earliest).
            uncommitted = [TopicPartition(tp.topic, tp.partition) for tp in sorted(streams)
                           if not consumer._committed_offset.get(tp)]
            if uncommitted:
                self.log.info("Seek %d stream partitions without a commit to the beginning.", len(uncommitted))
                await self._wait(consumer._thread.seek_to_beginning(*uncommitted),
                                 timeout=app.conf.broker_request_timeout)
        self.completed.set()
        # Resuming flow control clears the stream queues: do it while they can hold nothing of the
        # source partitions, then let the fetcher deliver from the committed offsets.
        app.flow_control.resume()
        consumer.resume_flow()
        self.log.info("Resume stream partitions")
        consumer.resume_partitions(streams)
        await cast(Any, app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class OrderedRecoveryTableManager(TableManager):
    """faust's table manager, recovering with ``OrderedRecovery``."""

    async def on_start(self) -> None:
        """Start at once. faust's TableManager.on_start sleeps a second first so that tables declared
        while the app starts can register; every gateledger table is declared by create_app, before
        the app starts, and that second delayed every worker start and restart."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        """Recovery service used by this table manager."""
        if self._recovery is None:
            self._recovery = OrderedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
