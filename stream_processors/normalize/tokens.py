"""Token counts under one naming: OTel's (input includes cached input tokens).

Upstreams differ: AxonFlow and OpenAI say prompt/completion, Obot and OTel say input/output;
OpenAI's prompt count already includes cached tokens (``prompt_tokens_details.cached_tokens``),
Anthropic's ``input_tokens`` excludes cache reads and cache writes
(``cache_read_input_tokens``, ``cache_creation_input_tokens``), so those are added back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tokens:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    total: int = 0
    reported: bool = False  # False: upstream sent no usage at all


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v if v >= 0 else None
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return None


def _first(d: dict[str, Any], *names: str) -> int | None:
    for n in names:
        v = _int(d.get(n))
        if v is not None:
            return v
    return None


def normalize_usage(usage: Any) -> Tokens:
    """Tokens from any usage object we know (AxonFlow, OpenAI, Anthropic, OTel, gateledger names)."""
    if not isinstance(usage, dict):
        return Tokens()
    anthropic_read = _first(usage, "cache_read_input_tokens")
    anthropic_write = _first(usage, "cache_creation_input_tokens")
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = _first(details, "cached_tokens") if isinstance(details, dict) else None
    cache_read = _first(usage, "cache_read_tokens", "gen_ai.usage.cache_read.input_tokens", "cached_tokens")
    cache_write = _first(usage, "cache_write_tokens", "gen_ai.usage.cache_creation.input_tokens")
    inp = _first(usage, "input_tokens", "prompt_tokens", "gen_ai.usage.input_tokens", "inputTokens", "promptTokens")
    out = _first(usage, "output_tokens", "completion_tokens", "gen_ai.usage.output_tokens", "outputTokens",
                 "completionTokens")
    total = _first(usage, "total_tokens", "totalTokens")
    if inp is None and out is None and total is None and anthropic_read is None and cached is None:
        return Tokens()
    inp = inp or 0
    out = out or 0
    if anthropic_read is not None or anthropic_write is not None:
        # Anthropic reports uncached input only; OTel's input includes both cache kinds.
        cache_read = anthropic_read or 0
        cache_write = anthropic_write or 0
        inp += cache_read + cache_write
    else:
        cache_read = cache_read if cache_read is not None else (cached or 0)
        cache_write = cache_write or 0
    if total is None or total < inp + out:
        total = inp + out
    return Tokens(inp, out, cache_read, cache_write, total, True)
