"""Every wire format by name: the registry's formats (gateledger/sources.py), each mapped by its system's folder.

Each format is wrapped the same way: events dated in the future refused, identity fields masked.
"""

from __future__ import annotations

from gateledger.sources import SOURCES, Format, formats_of
from producers.axonflow import formats as axonflow
from producers.cloudevents import formats as cloudevents
from producers.formats import FormatFn, bounded_time, masked_identity
from producers.obot import formats as obot

_BY_SYSTEM: dict[str, dict[Format, FormatFn]] = {
    "obot": obot.FORMATS, "axonflow": axonflow.FORMATS, "cloudevents": cloudevents.FORMATS,
}


def _collect() -> dict[Format, FormatFn]:
    """The registry's formats in ``Format`` order; RuntimeError when a system maps more or fewer than it lists."""
    systems = dict.fromkeys(s.system for s in SOURCES)
    out: dict[Format, FormatFn] = {}
    for system in systems:
        mapped = _BY_SYSTEM.get(system, {})
        if set(mapped) != set(formats_of(system)):
            raise RuntimeError(f"producers/{system}/formats.py maps {sorted(mapped)}, "
                               f"gateledger/sources.py lists {sorted(formats_of(system))}")
        out.update((f, mapped[f]) for f in formats_of(system))
    if set(out) != set(Format):
        raise RuntimeError(f"formats in no source: {sorted(set(Format) - set(out))}")
    return {f: out[f] for f in Format}


FORMATS: dict[Format, FormatFn] = {name: masked_identity(bounded_time(fn)) for name, fn in _collect().items()}


def get_format(name: str) -> FormatFn:
    """The format called ``name``; ValueError naming the valid ones otherwise."""
    try:
        return FORMATS[name]  # type: ignore[index]  # a Format is the str it names
    except KeyError:
        raise ValueError(f"unknown format {name!r}; one of: {', '.join(FORMATS)}") from None
