"""What a stage produces: messages for topics, and state writes for its table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateledger.contracts.events import OutputEvent


@dataclass(slots=True)
class Emit:
    """One message to produce. ``topic`` is logical: an output ``Topic`` or an internal name."""

    topic: str
    key: str
    value: bytes | None
    event_us: int | None = None  # event time, for the emit-delay histogram
    obj: Any = None  # an internal message not yet serialized (packed with others by the runner)


@dataclass
class Batch:
    """Outputs of one processing step, in production order."""

    emits: list[Emit] = field(default_factory=list)

    def row(self, model: OutputEvent, event_us: int | None = None) -> None:
        """An output row on its model's topic, serialized exactly as the contract model's JSON."""
        self.emits.append(Emit(str(model.topic), model.id, model.__pydantic_serializer__.to_json(model), event_us))

    def internal(self, topic: str, key: str, value: Any, event_us: int | None = None) -> None:
        """A message on an internal topic (facts): packed per partition by the runner."""
        self.emits.append(Emit(topic, key, None, event_us, value))

    def extend(self, other: Batch) -> None:
        self.emits.extend(other.emits)

    def __len__(self) -> int:
        return len(self.emits)
