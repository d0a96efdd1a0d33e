"""The stages of the worker, each a module with ``register(app, ctx)``: new stages plug in here.

A stage module declares its faust topics, tables, agents and timers on the app and returns its
``StageRunner`` (or None). Stages talk to each other only through topics; the money stages (cost,
budgets) add themselves to ``STAGES`` and read the output topics (``llm.calls``, ``mcp.calls``,
``interactions``) or internal ones, never another stage's state.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from gateledger.clock import Clock
from gateledger.kafka import KafkaTarget
from gateledger.masking import Masker
from gateledger.settings import Settings
from stream_processors.settings import ProcessorSettings

STAGES: list[str] = [
    "stream_processors.normalize.agent",
    "stream_processors.correlate.agent",
    "stream_processors.cost.agent",
    "stream_processors.budgets.agent",
]


@dataclass
class StageContext:
    """What every stage gets: settings, the broker, the clock, the masker, and the other runners."""

    settings: Settings
    proc: ProcessorSettings
    target: KafkaTarget
    clock: Clock
    masker: Masker
    runners: dict[str, Any] = field(default_factory=dict)

    def internal_topic(self, name: str) -> str:
        """Physical name of a processor-internal topic (prefixed like faust's changelogs)."""
        return internal_topic_name(self.target.topic_prefix, self.proc.app_id, name)


def internal_topic_name(prefix: str, app_id: str, name: str) -> str:
    """Physical name of a processor-internal topic, also for code that runs before the stages exist."""
    return f"{prefix}{app_id}-{name}"


def register_all(app: Any, ctx: StageContext, stages: list[str] | None = None) -> dict[str, Any]:
    """Register every stage on the app; returns their runners by stage name."""
    for name in stages or STAGES:
        runner = importlib.import_module(name).register(app, ctx)
        if runner is not None:
            ctx.runners[runner.stage] = runner
    return ctx.runners
