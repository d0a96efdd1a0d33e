"""Before the ingest opens: every budget's earlier spend is counted again, so an exhausted block
budget blocks from the first request after a start, not seconds later.

On a fresh memory-only broker the accountant starts empty; the processors back-fill every budget
from ClickHouse (stream_processors/budgets/backfill.py), record one marker per budget when its
contributions are acknowledged, and the accountant publishes the periods' state on
``budget.state``, which the ingest's enforcement view reads from the beginning. So the supervisor
waits until the marker topic holds a marker per budget and the processors' group has committed
the whole contributions topic (state is published before offsets are committed), then starts the
ingest and waits until its view has read ``budget.state`` to the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import TopicPartition

from gateledger.kafka import consumer_group_lag, true_highwaters
from gateledger.settings import KafkaSettings


@dataclass(frozen=True)
class BudgetGate:
    """Where the back-fill's progress shows (from the processors' own names, via the CLI)."""

    budgets: int  # budgets in the budgets file at start (0: nothing to wait for)
    group: str
    markers_topic: str
    contributions_topic: str
    timeout_s: float = 120.0


async def budgets_restored(kafka: KafkaSettings, bootstrap: str, gate: BudgetGate,
                           progress: Callable[[str], None], poll_s: float = 0.5) -> bool:
    """Wait for the back-fill and its accounting; False when ``gate.timeout_s`` ran out first."""
    if gate.budgets <= 0:
        return True
    started = time.monotonic()
    progress(f"  budgets: counting the earlier spend of {gate.budgets} budget(s) from ClickHouse before ingest opens")
    marker = TopicPartition(gate.markers_topic, 0)
    while time.monotonic() - started < gate.timeout_s:
        markers = (await true_highwaters(kafka, bootstrap, [marker])).get(marker, 0)
        if markers >= gate.budgets:
            lags = await consumer_group_lag(kafka, bootstrap, gate.group, [gate.contributions_topic])
            if sum(p.lag for p in lags) <= 0:
                progress(f"  budgets: spend restored in {time.monotonic() - started:.1f}s")
                return True
        await asyncio.sleep(poll_s)
    progress(f"  budgets: spend not restored after {gate.timeout_s:.0f}s; ingest opens anyway "
             "(block budgets enforce once it is)")
    return False
