"""Which method normalizes each envelope type: derived from the registry of sources, not listed by hand.

Each handler names the registry's envelope types it takes (``@handles``, beside its code: ``axonflow.py``,
``obot_mcp.py``, ``stage.py``); ``handler_table`` maps every type gateledger/topics.py lists to the one
method marked for it. A type no method takes, a type two methods take, or a method marked for a type no
source lists stops the stage at start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from gateledger.contracts.envelope import Envelope
from gateledger.topics import EventType, Source

Handler = Callable[[Envelope, int, int], None]  # (envelope, event time µs, received µs)
F = TypeVar("F", bound=Callable[..., Any])
_MARK = "_normalizes"


def handles(*types: EventType) -> Callable[[F], F]:
    """Mark a method of the normalize stage as the handler of these envelope types."""

    def mark(fn: F) -> F:
        setattr(fn, _MARK, types)
        return fn

    return mark


def handler_table(stage: object, sources: Iterable[Source]) -> dict[EventType, Handler]:
    """Every envelope type ``sources`` list, with the method of ``stage`` marked for it."""
    marked: dict[EventType, str] = {}
    for cls in type(stage).__mro__:
        for name, fn in vars(cls).items():
            for t in getattr(fn, _MARK, ()):
                if marked.setdefault(t, name) != name:
                    raise RuntimeError(f"normalize: {t} is handled by both {marked[t]} and {name}")
    listed = {t for s in sources for t in s.types}
    if set(marked) != listed:
        raise RuntimeError(f"normalize handles {sorted(marked)}, gateledger/topics.py lists {sorted(listed)}")
    return {t: getattr(stage, marked[t]) for t in listed}
