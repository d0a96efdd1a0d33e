"""faust on Tansu: table recovery with true high watermarks.

Tansu answers ListOffsets(latest) with the base offset of the last record batch + 1, not the high
watermark. faust's table recovery asks the consumer for end offsets (``Consumer.highwaters`` ->
``AIOKafkaConsumerThread._highwaters`` -> ``AIOKafkaConsumer.end_offsets``) to decide when a
changelog has been read to its end, so with batched changelog writes a restarted worker stops
reading early and silently runs on stale state.

Here the consumer thread answers ``highwaters`` with the high watermark a real fetch reports
(``gateledger.kafka.true_highwaters``), which is right on Tansu and on Apache Kafka. Only the
transport changes; faust's recovery logic is untouched. Used when ``KafkaTarget.tansu`` is true.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from gateledger.kafka import true_highwaters
from gateledger.settings import KafkaSettings
from stream_processors.consumer_thread import ActiveOnlyConsumer, ActiveOnlyConsumerThread

log = logging.getLogger(__name__)


class TrueHighwaterConsumerThread(ActiveOnlyConsumerThread):
    """The consumer thread, with high watermarks from a fetch instead of ListOffsets."""

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        if self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        app: Any = self.consumer.app
        kafka: KafkaSettings = app.gateledger_kafka
        tps = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        high = await true_highwaters(kafka, app.gateledger_bootstrap, tps)
        out = {TP(tp.topic, tp.partition): hw for tp, hw in high.items()}
        log.debug("true high watermarks for recovery: %s", out)
        return out


class TansuConsumer(ActiveOnlyConsumer):
    """faust's aiokafka consumer using ``TrueHighwaterConsumerThread``."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return TrueHighwaterConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with ``TansuConsumer``."""

    Consumer = TansuConsumer


class IdempotentProducer(faust_aiokafka.Producer):
    """faust's aiokafka producer, idempotent when the settings ask for it (faust does so only
    inside transactions, which gateledger does not use: docs/operations.md)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        extra = dict(super()._settings_extra())
        if self.app.gateledger_kafka.enable_idempotence:
            extra.update(acks="all", enable_idempotence=True)
        return extra


class KafkaTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with ``IdempotentProducer`` and ``ActiveOnlyConsumer`` (Apache Kafka)."""

    Consumer = ActiveOnlyConsumer
    Producer = IdempotentProducer


class GateledgerApp(faust.App):
    """A faust App that knows its broker settings and swaps in the Tansu transport when needed."""

    gateledger_kafka: KafkaSettings
    gateledger_bootstrap: str
    gateledger_tansu: bool = False
    gateledger_monitor: bool = True

    def on_init_dependencies(self) -> Any:
        deps = super().on_init_dependencies()
        if not self.gateledger_monitor:
            # faust adds its Monitor sensor here, at start: without it, no per-message statistics
            # for faust's /stats pages (ProcessorSettings.faust_monitor).
            self.sensors.remove(self.monitor)
        return deps

    def _new_transport(self) -> Any:
        if self.gateledger_tansu:
            return TansuTransport(self.conf.broker_consumer, self)
        return KafkaTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        # The producer comes from its own transport; the consumer's Tansu fix does not concern it.
        return KafkaTransport(self.conf.broker_producer, self)
