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
from producers.accept import Published

log = logging.getLogger(__name__)


# The largest event value sent: aiokafka's max_request_size and Kafka's message.max.bytes are both
# 1 MiB by default; the rest is headroom for the key, headers and record-batch overhead. A larger
# record could never be acknowledged, so it is refused (too_large) instead of retried forever.
MAX_RECORD_BYTES = 1_000_000


class PublishError(RuntimeError):
    """The broker did not acknowledge in time; nothing may be reported as accepted."""


class RecordsTooLarge(ValueError):
    """Some events are over the record limit; nothing of the call was sent. ``heads``: their first bytes."""

    def __init__(self, indexes: list[int], sizes: list[int], heads: list[bytes], limit: int) -> None:
        super().__init__(f"{len(indexes)} event(s) over the {limit}-byte record limit: sizes {sizes[:5]}")
        self.indexes = indexes
        self.sizes = sizes
        self.heads = heads
        self.limit = limit


class Publisher:
    """An aiokafka producer (acks=all) that publishes batches and waits for every acknowledgement."""

    def __init__(
        self,
        kafka: KafkaSettings,
        target: KafkaTarget,
        producer: AIOKafkaProducer | None = None,
        timeout_s: float | None = None,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.kafka = kafka
        self.max_record_bytes = max_record_bytes
        self.target = target
        # The producer must be able to send what the limit lets through (aiokafka's default is 1 MiB).
        self._producer = producer or make_producer(
            kafka, target, max_request_size=max(1024 * 1024, max_record_bytes + 64 * 1024))
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

    @staticmethod
    def encode(item: Published) -> bytes:
        """The Kafka value of an item."""
        return item.envelope.model_dump_json(exclude_none=True).encode()

    def fits(self, value: bytes) -> bool:
        """True when an encoded value is within the record limit."""
        return len(value) <= self.max_record_bytes

    async def publish(self, items: Sequence[Published], source: str = "unknown",
                      values: Sequence[bytes] | None = None) -> None:
        """Send all items and wait until the broker acknowledged each one (or raise PublishError).

        ``values``: the items already encoded (``encode``), so a caller that checked ``fits`` first
        does not encode twice. RecordsTooLarge (nothing sent) when any item is over the record limit.
        """
        if not items:
            return
        values = list(values) if values is not None else [self.encode(item) for item in items]
        big = [i for i, v in enumerate(values) if len(v) > self.max_record_bytes]
        if big:
            raise RecordsTooLarge(big, [len(values[i]) for i in big], [values[i][:64 * 1024] for i in big],
                                  self.max_record_bytes)
        started = time.perf_counter()

        async def send_all() -> None:
            futures = []
            for item, value in zip(items, values, strict=True):
                env = item.envelope
                futures.append(
                    await self._producer.send(
                        self._topic(item.topic),
                        value=value,
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

    def _fitting(self, dl: DeadLetter) -> bytes:
        """The dead letter's value, its original cut until it fits (escaping can make JSON 6x the text)."""
        value = dl.model_dump_json().encode()
        keep = len(dl.original)
        while len(value) > self.max_record_bytes and keep > 0:
            keep //= 2
            cut = dl.model_copy(update={"original": dl.original[:keep], "details": {**dl.details, "truncated": True}})
            value = cut.model_dump_json().encode()
        return value

    async def dead_letter(self, letters: Sequence[DeadLetter], source: str = "unknown") -> None:
        """Publish dead letters (acknowledged, like everything else)."""
        if not letters:
            return

        async def send_all() -> None:
            futures = [
                await self._producer.send(
                    self._topic(Topic.DEAD_LETTERS),
                    value=self._fitting(dl),
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
