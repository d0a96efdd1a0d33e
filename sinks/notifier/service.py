"""The notifier loop: consume ``budget.alerts``, deliver each alert to each webhook once, then commit.

Per message, in order (pinned by tests):
  1. parse the alert (a bad message is dead-lettered),
  2. for every webhook that wants it and does not have it yet: POST, retrying with exponential
     backoff (honouring Retry-After) until 2xx, a permanent refusal (4xx) or ``give_up_after_s``;
     then record the pair in the sent store (refusals and give-ups are dead-lettered first),
  3. commit the offset after the message.
A crash anywhere before 3 re-delivers the message; the sent store keeps it from being re-sent.
Partitions are handled concurrently, messages of one partition in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from gateledger import jsonutil
from gateledger.contracts.events import BudgetAlert
from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from sinks.notifier import telemetry
from sinks.notifier.delivery import post_with_backoff
from sinks.notifier.payloads import render, wanted
from sinks.notifier.sent_store import KafkaSentStore
from sinks.notifier.settings import NotifierSettings, WebhookTarget

log = logging.getLogger(__name__)


class Stopping(Exception):
    """The service was asked to stop in the middle of a delivery (the message is not committed)."""


class NotifierService:
    """Delivers budget alerts to webhooks, exactly once in effect."""

    def __init__(
        self,
        settings: NotifierSettings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: KafkaSentStore,
        session: aiohttp.ClientSession,
        targets: list[WebhookTarget],
        dead_letter_topic: str,
        masker: Masker,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        after_mark: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.session = session
        self.targets = targets
        self.dead_letter_topic = dead_letter_topic
        self.masker = masker
        self._monotonic = monotonic
        self._after_mark = after_mark  # fault injection in tests: called between step 2 and 3
        self._stopping = asyncio.Event()
        self.handled = 0

    def stop(self) -> None:
        """Finish the current message's POST attempt, then return from ``run`` (uncommitted work is redone)."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until ``stop()``."""
        while not self._stopping.is_set():
            batch = await self.consumer.getmany(timeout_ms=200, max_records=100)
            if not batch:
                continue
            results = await asyncio.gather(*(self._partition(tp, msgs) for tp, msgs in batch.items()),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, Stopping):
                    return
                if isinstance(r, BaseException):
                    raise r

    async def _partition(self, tp: TopicPartition, msgs: list[Any]) -> None:
        for msg in msgs:
            await self.handle(tp, msg.offset, msg.value)
            await self._commit(tp, msg.offset + 1)
            self.handled += 1

    async def handle(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        """Steps 1 and 2 for one message."""
        try:
            alert = BudgetAlert.model_validate(jsonutil.loads(value or b""))
        except (jsonutil.JSONDecodeError, ValidationError) as exc:
            await self._dead_letter(value or b"", "invalid_alert", str(exc), tp, offset)
            return
        for target in self.targets:
            if not wanted(target, alert):
                continue
            if self.store.status(alert.id, target.name) is not None:
                telemetry.DUPLICATES.labels(target.name).inc()
                continue
            await self._deliver(target, alert, tp, offset)
            if self._after_mark is not None:
                self._after_mark(alert.id, target.name)

    async def _deliver(self, target: WebhookTarget, alert: BudgetAlert, tp: TopicPartition, offset: int) -> None:
        body, headers = render(target, alert)
        outcome = await post_with_backoff(
            self.session, target.name, target.url, body, headers, self.settings, pause=self._pause,
            clock=self._monotonic, give_up=lambda elapsed, _wait: elapsed >= self.settings.give_up_after_s)
        telemetry.RETRYING.labels(target.name).set(0)
        if outcome.kind == "delivered":
            await self.store.mark(alert.id, target.name, "sent", outcome.detail)
            telemetry.DELIVERED.labels(target.name).inc()
            return
        reason = "webhook_rejected" if outcome.kind == "permanent" else "webhook_gave_up"
        await self._dead_letter(jsonutil.dumps(alert.model_dump(mode="json")), reason,
                                f"{target.name}: {outcome.detail}", tp, offset,
                                {"webhook": target.name, "alert_id": alert.id})
        await self.store.mark(alert.id, target.name, "dead_lettered", outcome.detail)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return
        raise Stopping()

    async def _dead_letter(self, raw: bytes, reason: str, error: str, tp: TopicPartition, offset: int,
                           details: dict[str, Any] | None = None) -> None:
        dl = make_dead_letter(stage="notify", origin=tp.topic, reason=reason, error=error, original=raw,
                              masker=self.masker, kafka_topic=tp.topic, kafka_partition=tp.partition,
                              kafka_offset=offset, details=details)
        await self.producer.send_and_wait(self.dead_letter_topic, jsonutil.dumps(dl.model_dump(mode="json")),
                                          key=dl.id.encode())
        telemetry.DEAD_LETTERS.labels(reason).inc()

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(offset, "")})
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("commit of %s@%d failed after a rebalance (the sent store absorbs the repeat): %s",
                        tp, offset, exc)
        except KafkaError as exc:
            log.warning("commit of %s@%d failed, retried with the next message: %s", tp, offset, exc)
