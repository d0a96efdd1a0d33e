"""Which alerts each webhook already has: a compacted Kafka topic, read fully at start.

A record ``<alert id>|<webhook>`` is written (and acknowledged by the broker) right after the
webhook answered 2xx, before the alert's offset is committed. After a restart the notifier
re-reads this topic, so an alert whose offset was not yet committed is consumed again but not
sent again. The one window left is a crash between the receiver's 2xx and the broker's ack of the
record; for that, every POST carries ``Idempotency-Key: <alert id>`` so receivers can drop the
repeat. Kafka keeps the record with the alerts themselves (no local disk to lose with a container).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateledger import jsonutil
from gateledger.clock import utcnow
from gateledger.kafka import KafkaTarget, common_config, true_highwaters
from gateledger.settings import KafkaSettings

log = logging.getLogger(__name__)


class KafkaSentStore:
    """Delivered (alert, webhook) pairs, durable in a compacted topic."""

    def __init__(self, kafka: KafkaSettings, target: KafkaTarget, topic: str, producer: AIOKafkaProducer) -> None:
        self.kafka = kafka
        self.target = target
        self.topic = topic
        self.producer = producer
        self._done: dict[tuple[str, str], str] = {}

    @staticmethod
    def key(alert_id: str, webhook: str) -> str:
        return f"{alert_id}|{webhook}"

    async def load(self, timeout_s: float = 30.0) -> int:
        """Read every record up to the topic's true end; returns how many pairs are known."""
        consumer = AIOKafkaConsumer(**common_config(self.kafka, self.target.bootstrap), enable_auto_commit=False,
                                    group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            await consumer.topics()  # refresh metadata so the topic's partitions are known
            partitions = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            if not tps:
                return 0
            high = await true_highwaters(self.kafka, self.target.bootstrap, tps)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if high.get(tp, 0) > 0}
            deadline = asyncio.get_running_loop().time() + timeout_s
            while pending:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"could not read {self.topic} to its end in {timeout_s}s")
                batch = await consumer.getmany(*pending, timeout_ms=200)
                for msgs in batch.values():
                    for m in msgs:
                        if m.value is None:
                            continue
                        rec = jsonutil.loads(m.value)
                        self._done[(rec["alert_id"], rec["webhook"])] = rec.get("status", "sent")
                for tp in list(pending):
                    if await consumer.position(tp) >= high[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        log.info("notifier: %d delivered (alert, webhook) pairs known", len(self._done))
        return len(self._done)

    def status(self, alert_id: str, webhook: str) -> str | None:
        """``sent`` / ``dead_lettered`` when the pair was handled, else None."""
        return self._done.get((alert_id, webhook))

    async def mark(self, alert_id: str, webhook: str, status: str, detail: str = "") -> None:
        """Record a handled pair; returns once the broker acknowledged it."""
        rec = {"alert_id": alert_id, "webhook": webhook, "status": status, "detail": detail[:500],
               "at": utcnow().isoformat()}
        await self.producer.send_and_wait(self.topic, jsonutil.dumps(rec), key=self.key(alert_id, webhook).encode())
        self._done[(alert_id, webhook)] = status
