"""Token usage conventions: every source ends up with input including cached tokens."""

from __future__ import annotations

import pytest

from gateledger.money.usage import TokenUsage, UsageError


def test_each_convention() -> None:
    assert TokenUsage.from_openai(1000, 50, 800) == TokenUsage(1000, 50, 800, 0)
    assert TokenUsage.from_anthropic(200, 50, 800, 100) == TokenUsage(1100, 50, 800, 100)
    assert TokenUsage.from_bedrock_converse(200, 50, 800, 100) == TokenUsage(1100, 50, 800, 100)
    assert TokenUsage.from_gemini(1000, 40, 600, thoughtsTokenCount=60, toolUsePromptTokenCount=5) == TokenUsage(
        1005, 100, 600, 0)
    assert TokenUsage.from_axonflow({"prompt_tokens": 12, "completion_tokens": 3}) == TokenUsage(12, 3)
    assert TokenUsage.from_axonflow(None) == TokenUsage()
    assert TokenUsage.from_obot(7, 8) == TokenUsage(7, 8)
    otel = {"gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 500, "gen_ai.usage.cache_creation.input_tokens": 100}
    assert TokenUsage.from_otel(otel) == TokenUsage(900, 10, 500, 100)


@pytest.mark.parametrize(("usage", "expected"), [
    ({"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 60}},
     TokenUsage(100, 5, 60)),
    ({"input_tokens": 100, "output_tokens": 5, "input_tokens_details": {"cached_tokens": 60}}, TokenUsage(100, 5, 60)),
    ({"input_tokens": 40, "output_tokens": 5, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0},
     TokenUsage(100, 5, 60)),
    ({"inputTokens": 40, "outputTokens": 5, "cacheReadInputTokens": 60}, TokenUsage(100, 5, 60)),
    ({"promptTokenCount": 100, "candidatesTokenCount": 5, "cachedContentTokenCount": 60}, TokenUsage(100, 5, 60)),
])
def test_recognises_raw_usage_objects(usage: dict, expected: TokenUsage) -> None:
    assert TokenUsage.from_provider_usage(usage) == expected


def test_contradictions_are_errors() -> None:
    with pytest.raises(UsageError, match="exceed"):
        TokenUsage(10, 0, 20, 0)
    with pytest.raises(UsageError):
        TokenUsage.from_openai(-1, 0)
    with pytest.raises(UsageError, match="unrecognised"):
        TokenUsage.from_provider_usage({"tokens": 3})
    assert TokenUsage(100, 5, 60, 10).uncached_input_tokens == 30
