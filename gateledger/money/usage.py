"""Token usage in one convention, from each provider's own.

gateledger's convention is OpenTelemetry's (``gen_ai.usage.*``): ``input_tokens`` counts every
input token **including** cache reads and cache writes; ``cache_read_tokens`` and
``cache_write_tokens`` say how many of them were served from / written to a prompt cache;
``output_tokens`` counts every generated token, reasoning ("thinking") included. ``LlmCall``
carries usage in this convention, and the cost formula relies on it:

    uncached input = input - cache_read - cache_write

Providers disagree, which is where peers get costs wrong:

| source | input field | includes cache? | cache fields |
|---|---|---|---|
| OpenAI (chat) / Azure / Mistral | ``prompt_tokens`` | yes (``prompt_tokens_details.cached_tokens``) | reads only; no write fee |
| OpenAI Responses API | ``input_tokens`` | yes (``input_tokens_details.cached_tokens``) | reads only |
| Anthropic Messages | ``input_tokens`` | **no** | ``cache_read_input_tokens``, ``cache_creation_input_tokens`` |
| Bedrock Converse | ``inputTokens`` | **no** | ``cacheReadInputTokens``, ``cacheWriteInputTokens`` |
| Gemini | ``promptTokenCount`` (+ ``toolUsePromptTokenCount``) | yes (``cachedContentTokenCount``) | reads only; output = candidates + thoughts |
| AxonFlow audit | ``prompt_tokens`` | as the upstream provider reported (OpenAI style) | none |
| Obot LLM log | ``inputTokens`` | as the upstream provider reported | none |

The stream processors read every upstream usage object with ``normalize_usage`` (lenient: a record
with odd counts is still recorded); the cost stage prices through ``TokenUsage.repaired``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UsageError(ValueError):
    """Usage numbers that contradict each other."""


def _n(v: Any) -> int:
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise UsageError("a token count cannot be a boolean")
    n = int(v)
    if n < 0:
        raise UsageError(f"negative token count {n}")
    return n


@dataclass(frozen=True)
class TokenUsage:
    """Usage in gateledger's (OpenTelemetry's) convention: input includes cached tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} is negative")
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise UsageError(
                f"cache tokens ({self.cache_read_tokens} read + {self.cache_write_tokens} written) exceed "
                f"input tokens ({self.input_tokens}): input must include cached tokens"
            )

    @classmethod
    def repaired(cls, input_tokens: int, output_tokens: int, cache_read: int,
                 cache_write: int) -> tuple[TokenUsage, str | None]:
        """Usage in the convention; if the cache counts exceed the input, the input excluded them (noted)."""
        if cache_read + cache_write > input_tokens:
            return (cls(input_tokens + cache_read + cache_write, output_tokens, cache_read, cache_write),
                    "input excluded cached tokens (Anthropic convention); added them")
        return cls(input_tokens, output_tokens, cache_read, cache_write), None

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_openai(cls, prompt_tokens: Any, completion_tokens: Any, cached_tokens: Any = 0) -> TokenUsage:
        """OpenAI / Azure OpenAI / Mistral chat usage: prompt_tokens already includes cached_tokens."""
        return cls(_n(prompt_tokens), _n(completion_tokens), _n(cached_tokens), 0)

    @classmethod
    def from_anthropic(cls, input_tokens: Any, output_tokens: Any, cache_read_input_tokens: Any = 0,
                       cache_creation_input_tokens: Any = 0) -> TokenUsage:
        """Anthropic Messages usage: input_tokens excludes both cache reads and cache writes."""
        read, write = _n(cache_read_input_tokens), _n(cache_creation_input_tokens)
        return cls(_n(input_tokens) + read + write, _n(output_tokens), read, write)

    @classmethod
    def from_bedrock_converse(cls, inputTokens: Any, outputTokens: Any, cacheReadInputTokens: Any = 0,  # noqa: N803
                              cacheWriteInputTokens: Any = 0) -> TokenUsage:
        """Bedrock Converse usage: inputTokens excludes cache reads and writes (Anthropic's convention)."""
        read, write = _n(cacheReadInputTokens), _n(cacheWriteInputTokens)
        return cls(_n(inputTokens) + read + write, _n(outputTokens), read, write)

    @classmethod
    def from_gemini(cls, promptTokenCount: Any, candidatesTokenCount: Any = 0,  # noqa: N803
                    cachedContentTokenCount: Any = 0, thoughtsTokenCount: Any = 0,  # noqa: N803
                    toolUsePromptTokenCount: Any = 0) -> TokenUsage:  # noqa: N803
        """Gemini usageMetadata: prompt includes cached content; thinking is billed as output."""
        return cls(_n(promptTokenCount) + _n(toolUsePromptTokenCount),
                   _n(candidatesTokenCount) + _n(thoughtsTokenCount), _n(cachedContentTokenCount), 0)

    @classmethod
    def from_otel(cls, attributes: Mapping[str, Any]) -> TokenUsage:
        """OpenTelemetry GenAI span/event attributes."""
        return cls(_n(attributes.get("gen_ai.usage.input_tokens")), _n(attributes.get("gen_ai.usage.output_tokens")),
                   _n(attributes.get("gen_ai.usage.cache_read.input_tokens")),
                   _n(attributes.get("gen_ai.usage.cache_creation.input_tokens")))

    @classmethod
    def from_axonflow(cls, token_usage: Mapping[str, Any] | None) -> TokenUsage:
        """AxonFlow's audit ``token_usage{prompt_tokens, completion_tokens}`` (no cache detail)."""
        u = token_usage or {}
        return cls(_n(u.get("prompt_tokens")), _n(u.get("completion_tokens")), 0, 0)

    @classmethod
    def from_obot(cls, inputTokens: Any, outputTokens: Any) -> TokenUsage:  # noqa: N803
        """Obot's LLM gateway log (input/output only)."""
        return cls(_n(inputTokens), _n(outputTokens), 0, 0)

    @classmethod
    def from_provider_usage(cls, usage: Mapping[str, Any]) -> TokenUsage:
        """Recognise a raw provider ``usage`` object by its field names (raises UsageError when unknown)."""
        if "promptTokenCount" in usage or "candidatesTokenCount" in usage:
            return cls.from_gemini(usage.get("promptTokenCount"), usage.get("candidatesTokenCount"),
                                   usage.get("cachedContentTokenCount"), usage.get("thoughtsTokenCount"),
                                   usage.get("toolUsePromptTokenCount"))
        if "inputTokens" in usage and "outputTokens" in usage:
            return cls.from_bedrock_converse(usage.get("inputTokens"), usage.get("outputTokens"),
                                             usage.get("cacheReadInputTokens"), usage.get("cacheWriteInputTokens"))
        if "cache_creation_input_tokens" in usage or "cache_read_input_tokens" in usage:
            return cls.from_anthropic(usage.get("input_tokens"), usage.get("output_tokens"),
                                      usage.get("cache_read_input_tokens"), usage.get("cache_creation_input_tokens"))
        if "prompt_tokens" in usage:
            details = usage.get("prompt_tokens_details") or {}
            return cls.from_openai(usage.get("prompt_tokens"), usage.get("completion_tokens"),
                                   details.get("cached_tokens") if isinstance(details, Mapping) else 0)
        if "input_tokens" in usage and "output_tokens" in usage:
            # OpenAI Responses API shape (input includes cached tokens).
            details = usage.get("input_tokens_details") or {}
            return cls.from_openai(usage.get("input_tokens"), usage.get("output_tokens"),
                                   details.get("cached_tokens") if isinstance(details, Mapping) else 0)
        raise UsageError(f"unrecognised usage object with keys {sorted(usage)}")


@dataclass(frozen=True)
class Tokens:
    """Usage as an upstream record reported it, in the convention above, with its total."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    total: int = 0
    reported: bool = False  # False: upstream sent no usage at all


def token_fields(t: Tokens) -> dict[str, Any]:
    """``t`` as the token fields of an ``LlmCall``."""
    return {
        "input_tokens": t.input,
        "output_tokens": t.output,
        "cache_read_tokens": t.cache_read,
        "cache_write_tokens": t.cache_write,
        "total_tokens": t.total,
        "tokens_reported": t.reported,
    }


def _int(v: Any) -> int | None:
    # Lenient: an upstream's odd count ("12", 12.0) is read, a nonsensical one is no count.
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
