"""Realistic multi-tenant traffic in the upstream wire formats, with a ground truth to assert against.

As a library (for the tests of other stages and for benchmarks)::

    from producers.simulator import Faults, simulate
    sim = simulate(200, seed=7, start=datetime(2026, 11, 20, tzinfo=UTC), faults=Faults(missing_audits=0.1))
    sim.records("axonflow-precheck")      # wire records, in delivery order
    sim.truth.dropped_audits              # context ids whose audit was deliberately never sent
    sim.truth.interaction(request_id)     # what really happened in one interaction
    published(sim.deliveries, masker)     # the envelopes ingest would publish (producers/simulator/envelopes.py)
    await deliver(sim, "http://127.0.0.1:8480")   # through the upstream-compatible endpoints

Knobs: ``seed``, ``tenants``, ``rate`` (or ``span``), ``start``; ``Mix`` (users per tenant, custom-gateway
and Obot-LLM shares, LLM failures, verdict weights, tool calls and their rejections / errors);
``Faults`` (duplicates, reordering, late and malformed records, missing / orphan audits, bypasses,
zero-token audits, rejected tool calls that run anyway).
The same seed, start and knobs give the same records, byte for byte.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateledger.clock import utcnow
from producers.simulator.deliver import Deliverer, DeliveryStats
from producers.simulator.files import write_files
from producers.simulator.traffic import Delivery, Faults, TrafficGenerator
from producers.simulator.world import Mix
from producers.simulator.truth import GroundTruth, InteractionTruth, LlmTruth, ObotLlmTruth, ToolCallTruth


@dataclass
class Simulation:
    """Deliveries in delivery order, and what really happened."""

    deliveries: list[Delivery]
    truth: GroundTruth

    def by_format(self) -> dict[str, list[Delivery]]:
        """Deliveries grouped by format (delivery order kept)."""
        out: dict[str, list[Delivery]] = defaultdict(list)
        for d in self.deliveries:
            out[d.fmt].append(d)
        return dict(out)

    def records(self, fmt: str, tenant: str | None = None, include_malformed: bool = False) -> list[Any]:
        """The wire records of one format (duplicates included, as delivered)."""
        return [d.value for d in self.deliveries
                if d.fmt == fmt and (tenant is None or d.tenant == tenant)
                and (include_malformed or d.kind != "malformed")]

    def write(self, directory: Path) -> dict[Path, int]:
        """Per-tenant, per-format JSONL files plus truth.json."""
        return write_files(directory, self.deliveries, self.truth)


def simulate(count: int, *, seed: int = 42, start: datetime | None = None, tenants: int = 3, rate: float = 50.0,
             span: timedelta | None = None, faults: Faults | None = None, mix: Mix | None = None) -> Simulation:
    """Generate ``count`` interactions from ``start`` at ``rate`` per second (or spread over ``span``).

    ``start`` defaults to now; pass it for byte-identical runs. ``mix`` says what the traffic is made
    of (sources, users, failures, verdicts), ``faults`` what goes wrong on the way.
    """
    if span is not None:
        rate = count / span.total_seconds()
    gen = TrafficGenerator(seed, start or utcnow(), tenants=tenants, rate=rate, faults=faults, mix=mix)
    deliveries: list[Delivery] = []
    for _ in range(count):
        deliveries.extend(gen.next())
    deliveries.extend(gen.drain())
    return Simulation(deliveries, gen.truth)


async def deliver(sim: Simulation, target: str, *, tokens: dict[str, str] | None = None, token: str | None = None,
                  webhook_secret: str | None = None) -> DeliveryStats:
    """POST a simulation to an ingest service, in delivery order, retrying while it answers 503."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        d = Deliverer(session, target, tokens=tokens, token=token, webhook_secret=webhook_secret)
        await d.send(sim.deliveries)
        return d.stats


__all__ = [
    "Delivery", "DeliveryStats", "Faults", "GroundTruth", "InteractionTruth", "LlmTruth", "Mix", "ObotLlmTruth",
    "Simulation", "ToolCallTruth", "TrafficGenerator", "deliver", "simulate",
]
