"""Publishing envelopes to Kafka: a call returns only after the broker acknowledged every message."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateledger.contracts.events import DeadLetter
from gateledger.kafka import KafkaTarget, make_producer
from gateledger.settings import KafkaSettings
from gateledger.topics import Topic, topic_name
from producers import telemetry
from producers.formats import Published

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The broker did not acknowledge in time; nothing may be reported as accepted."""


class Publisher:
    """An aiokafka producer (acks=all) that publishes batches and waits for every acknowledgement."""

    def __init__(
        self,
        kafka: KafkaSettings,
        target: KafkaTarget,
        producer: AIOKafkaProducer | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.kafka = kafka
        self.target = target
        self._producer = producer or make_producer(kafka, target)
        self._started = False
        # How long one call may wait for acknowledgements before reporting the broker unavailable.
        self.timeout_s = timeout_s if timeout_s is not None else kafka.delivery_timeout_s

    async def start(self) -> None:
        """Connect to the broker."""
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._started:
            await self._producer.stop()
            self._started = False

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _topic(self, topic: Topic) -> str:
        return topic_name(topic, self.target.topic_prefix)

    async def publish(self, items: Sequence[Published], source: str = "unknown") -> None:
        """Send all items and wait until the broker acknowledged each one (or raise PublishError)."""
        if not items:
            return
        started = time.perf_counter()

        async def send_all() -> None:
            futures = []
            for item in items:
                env = item.envelope
                futures.append(
                    await self._producer.send(
                        self._topic(item.topic),
                        value=env.model_dump_json(exclude_none=True).encode(),
                        key=item.key.encode(),
                        headers=[("ce_type", env.type.encode()), ("ce_id", env.id.encode())],
                    )
                )
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(send_all(), self.timeout_s)
        except (KafkaError, TimeoutError, OSError) as exc:
            telemetry.PUBLISH_FAILURES.labels(source=source).inc()
            raise PublishError(f"Kafka did not acknowledge {len(items)} event(s): {exc!r}") from exc
        telemetry.PUBLISH_LATENCY.labels(source=source).observe(time.perf_counter() - started)
        telemetry.ACCEPTED.labels(source=source).inc(len(items))

    async def dead_letter(self, letters: Sequence[DeadLetter], source: str = "unknown") -> None:
        """Publish dead letters (acknowledged, like everything else)."""
        if not letters:
            return

        async def send_all() -> None:
            futures = [
                await self._producer.send(
                    self._topic(Topic.DEAD_LETTERS),
                    value=dl.model_dump_json().encode(),
                    key=dl.id.encode(),
                )
                for dl in letters
            ]
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(send_all(), self.timeout_s)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise PublishError(f"Kafka did not acknowledge {len(letters)} dead letter(s): {exc!r}") from exc
        for dl in letters:
            telemetry.DEAD_LETTERED.labels(source=source, reason=dl.reason).inc()
