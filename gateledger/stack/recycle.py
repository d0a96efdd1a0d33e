"""When to recycle the embedded broker, and the check that makes a recycle safe.

Tansu's memory engine never gives memory back while a topic exists (retention and compaction are
not honoured there; docs/operations.md, "Memory of the embedded broker"), so ``gateledger up``
restarts it empty on a schedule: once its resident memory passes a bound, or once it has run for a
given time. The restart loses whatever was only in the broker, so it happens behind the drain and
the re-drive: the ingest refuses new records (503 + Retry-After), the pipeline drains, and the
broker is stopped only once the sink has landed every raw event the ingest accepted, because the
re-drive at the next start rebuilds everything else from those.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateledger.kafka import consumer_group_lag
from gateledger.settings import KafkaSettings, StackSettings

Groups = dict[str, list[str]]


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (from /proc), None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class RecycleSchedule:
    """The recycle settings of ``gateledger up`` (``GATELEDGER_STACK_BROKER_RECYCLE_*``)."""

    rss_mib: float  # 0: no memory bound
    interval_s: float  # 0: no time bound
    min_uptime_s: float

    @classmethod
    def of(cls, stack: StackSettings) -> RecycleSchedule:
        """The schedule the stack settings ask for."""
        return cls(stack.broker_recycle_rss_mib, stack.broker_recycle_interval_h * 3600,
                   stack.broker_recycle_min_uptime_s)

    def due(self, rss: float | None, uptime_s: float) -> str | None:
        """Why the broker should be recycled now, or None.

        Never before ``min_uptime_s``: a bound set below what the broker needs with its topics empty
        would otherwise restart it over and over.
        """
        if uptime_s < self.min_uptime_s:
            return None
        if self.rss_mib > 0 and rss is not None and rss > self.rss_mib:
            return f"its resident memory {rss:.0f} MiB passed GATELEDGER_STACK_BROKER_RECYCLE_RSS_MIB={self.rss_mib:g}"
        if self.interval_s > 0 and uptime_s >= self.interval_s:
            return f"it ran {uptime_s / 3600:.2f} h (GATELEDGER_STACK_BROKER_RECYCLE_INTERVAL_H)"
        return None


async def raw_events_landed(kafka: KafkaSettings, bootstrap: str, sink: Groups, raw_topics: list[str],
                            progress: Callable[[str], None], timeout_s: float, poll_s: float = 1.0) -> bool:
    """Wait until the sink's group committed every raw topic to its high watermark and the raw topics
    stopped growing over two polls (a record the ingest accepted just before it began refusing is
    on them by then); False when ``timeout_s`` ran out first."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while True:
        lag = total = 0
        for group in sink:
            parts = await consumer_group_lag(kafka, bootstrap, group, raw_topics)
            lag += sum(p.lag for p in parts)
            total += sum(p.highwater for p in parts)
        if lag <= 0 and total == last:
            return True
        last = total
        if time.monotonic() >= deadline:
            progress(f"  recycle: the sink is still {lag:,} raw event(s) behind after {timeout_s:.0f}s")
            return False
        await asyncio.sleep(poll_s)
