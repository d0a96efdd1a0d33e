"""Cost rows: worked examples per provider convention (the same numbers as docs/money.md), unpriced
cases, tool prices, ids and versions, and an exactness property."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateledger.contracts.events import CostKind, FindingKind, LlmCall, LlmCallStatus, McpCall, McpCallStatus
from gateledger.money.amounts import decimals_of
from gateledger.money.catalog import load_catalog
from gateledger.money.cost import cost_row_id, cost_version, llm_cost, restatement_round, tool_cost
from gateledger.money.teams import TeamDirectory
from gateledger.money.usage import TokenUsage

T = datetime(2026, 11, 20, 12, tzinfo=UTC)
_CATALOG = load_catalog()
COMPUTED = datetime(2026, 11, 20, 12, 0, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def call(provider: str, model: str, usage: TokenUsage | None = None, **kw) -> LlmCall:
    u = usage or TokenUsage()
    return LlmCall(id=kw.pop("id", "llm-1"), tenant="acme", time=kw.pop("time", T), source="test", provider=provider,
                   model=model, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                   cache_read_tokens=u.cache_read_tokens, cache_write_tokens=u.cache_write_tokens,
                   total_tokens=u.total_tokens, user_id=kw.pop("user_id", "alice"), client_id="support-bot", **kw)


def cost(catalog, c: LlmCall, **kw):
    return llm_cost(c, catalog, computed_at=COMPUTED, **kw)


def test_openai_prompt_completion_without_cache(catalog) -> None:
    # AxonFlow audit: token_usage {prompt_tokens: 1200, completion_tokens: 300} for gpt-4o.
    r = cost(catalog, call("openai", "gpt-4o", TokenUsage.from_axonflow({"prompt_tokens": 1200, "completion_tokens": 300})))
    e = r.entry
    assert (e.input_cost_usd, e.output_cost_usd, e.total_cost_usd) == (Decimal("0.003"), Decimal("0.003"), Decimal("0.006"))
    assert e.price_entry == "openai/gpt-4o@2024-10-02" and e.priced_model == "gpt-4o" and not e.unpriced
    assert r.finding is None


def test_openai_cached_prompt_tokens_are_inside_prompt_tokens(catalog) -> None:
    # prompt_tokens 10,000 of which cached_tokens 8,000; completion 500; gpt-5.4 ($2.50 / $0.25 / $15).
    u = TokenUsage.from_openai(10_000, 500, cached_tokens=8_000)
    e = cost(catalog, call("openai", "gpt-5.4-2026-03-05", u)).entry
    assert e.input_tokens == 10_000 and e.cache_read_tokens == 8_000
    assert e.input_cost_usd == Decimal("0.005")  # 2,000 uncached x 2.50 / 1e6
    assert e.cache_read_cost_usd == Decimal("0.002")  # 8,000 x 0.25 / 1e6
    assert e.output_cost_usd == Decimal("0.0075")
    assert e.total_cost_usd == Decimal("0.0145")


def test_anthropic_input_excludes_cache_reads_and_writes(catalog) -> None:
    # Anthropic usage: input_tokens 1,000 (uncached), cache_read 50,000, cache_creation 2,000, output 800.
    u = TokenUsage.from_anthropic(1_000, 800, cache_read_input_tokens=50_000, cache_creation_input_tokens=2_000)
    assert u.input_tokens == 53_000
    e = cost(catalog, call("anthropic", "claude-sonnet-4-5-20250929", u)).entry
    assert (e.input_cost_usd, e.cache_read_cost_usd, e.cache_write_cost_usd, e.output_cost_usd) == (
        Decimal("0.003"), Decimal("0.015"), Decimal("0.0075"), Decimal("0.012"))
    assert e.total_cost_usd == Decimal("0.0375")


def test_bedrock_geo_profile_costs_ten_percent_more(catalog) -> None:
    u = TokenUsage.from_bedrock_converse(1_000, 800, cacheReadInputTokens=50_000, cacheWriteInputTokens=2_000)
    geo = cost(catalog, call("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", u)).entry
    glob = cost(catalog, call("aws.bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", u)).entry
    assert glob.total_cost_usd == Decimal("0.0375")
    assert geo.total_cost_usd == Decimal("0.04125")
    assert geo.price_entry.endswith("*1.1") and "geo endpoint" in (geo.pricing_note or "")
    assert geo.provider == "bedrock"


def test_gemini_long_context_prices_the_whole_request_at_the_higher_tier(catalog) -> None:
    # promptTokenCount 250,000 (incl. 100,000 cached), candidates 1,000 + thoughts 3,000: gemini-2.5-pro > 200k tier.
    u = TokenUsage.from_gemini(250_000, 1_000, cachedContentTokenCount=100_000, thoughtsTokenCount=3_000)
    e = cost(catalog, call("vertex_ai", "publishers/google/models/gemini-2.5-pro", u)).entry
    assert e.input_cost_usd == Decimal("0.375")  # 150,000 x 2.50
    assert e.cache_read_cost_usd == Decimal("0.025")  # 100,000 x 0.25
    assert e.output_cost_usd == Decimal("0.06")  # 4,000 x 15
    assert e.total_cost_usd == Decimal("0.46")
    assert e.price_entry == "google/gemini-2.5-pro@2025-06-17#long_context"
    short = cost(catalog, call("gemini", "gemini-2.5-pro", TokenUsage.from_gemini(200_000, 1_000))).entry
    assert short.price_entry == "google/gemini-2.5-pro@2025-06-17"  # exactly 200k is not "over"
    assert short.total_cost_usd == Decimal("0.26")


def test_haiku_55_prompt_band_counts_cache_tokens(catalog) -> None:
    # 60k uncached + 50k cache reads = 110k prompt > 100k: every token at the upper band.
    u = TokenUsage.from_anthropic(60_000, 1_000, cache_read_input_tokens=50_000)
    e = cost(catalog, call("anthropic", "claude-haiku-5-5", u)).entry
    assert e.price_entry.endswith("#long_context")
    assert e.total_cost_usd == Decimal("0.03") + Decimal("0.0025") + Decimal("0.0025")


def test_missing_cache_price_means_input_price(catalog) -> None:
    e = cost(catalog, call("mistral", "mistral-medium-2508", TokenUsage.from_openai(1_000, 0, cached_tokens=400))).entry
    assert e.cache_read_cost_usd == Decimal("0.00016") and e.input_cost_usd == Decimal("0.00024")
    assert e.total_cost_usd == Decimal("0.0004")


def test_inconsistent_usage_is_read_as_input_excluding_cache_and_noted(catalog) -> None:
    c = call("anthropic", "claude-haiku-4-5", TokenUsage(100, 10))
    c = c.model_copy(update={"cache_read_tokens": 500})  # a source that sent Anthropic's raw numbers
    e = cost(catalog, c).entry
    assert e.input_tokens == 600 and "input excluded cached tokens" in (e.pricing_note or "")
    assert e.total_cost_usd == Decimal("0.0001") + Decimal("0.00005") + Decimal("0.00005")


def test_unknown_model_is_flagged_with_a_finding(catalog) -> None:
    r = cost(catalog, call("openai", "gpt-9-ultra", TokenUsage(1000, 10)), interaction_id="int-1")
    assert r.entry.unpriced and r.entry.unpriced_reason == "unknown_model" and r.entry.total_cost_usd == 0
    assert r.entry.price_entry is None and "gpt-9-ultra" in (r.entry.pricing_note or "")
    f = r.finding
    assert f is not None and f.kind == FindingKind.UNPRICED_MODEL and f.evidence_event_ids == ["llm-1"]
    assert f.interaction_id == "int-1" and f.id == cost(catalog, call("openai", "gpt-9-ultra", TokenUsage(1, 1))).finding.id


def test_usage_problems_are_unpriced_not_free(catalog) -> None:
    zero = cost(catalog, call("openai", "gpt-4o", TokenUsage())).entry
    assert zero.unpriced and zero.unpriced_reason == "zero_usage"
    missing = cost(catalog, call("openai", "gpt-4o", TokenUsage(), tokens_reported=False)).entry
    assert missing.unpriced and missing.unpriced_reason == "no_usage"
    failed = cost(catalog, call("openai", "gpt-4o", TokenUsage(), status=LlmCallStatus.ERROR)).entry
    assert not failed.unpriced and failed.total_cost_usd == 0 and "without usage" in failed.pricing_note


def test_answering_model_is_priced_when_known(catalog) -> None:
    c = call("openai", "my-router-default", TokenUsage(1000, 0), response_model="gpt-4o-mini-2024-07-18")
    e = cost(catalog, c).entry
    assert e.priced_model == "gpt-4o-mini" and e.model == "gpt-4o-mini-2024-07-18"


def test_team_is_stamped_and_fields_carried(catalog) -> None:
    teams = TeamDirectory.from_data({"teams": {"ml": ["alice"]}})
    e = cost(catalog, call("openai", "gpt-4o", TokenUsage(10, 10)), teams=teams, interaction_id="i").entry
    assert (e.team, e.user_id, e.client_id, e.tenant, e.interaction_id, e.event_id, e.kind) == (
        "ml", "alice", "support-bot", "acme", "i", "llm-1", CostKind.LLM)
    assert e.price_version == catalog.version and e.time == T


def test_ids_and_versions(catalog) -> None:
    a = cost(catalog, call("openai", "gpt-4o", TokenUsage(10, 10))).entry
    b = cost(catalog, call("openai", "gpt-4o", TokenUsage(10, 10))).entry
    assert a.id == b.id == cost_row_id(CostKind.LLM, "llm-1") and a == b
    assert a.version == cost_version(1, 0) == 1 << 16
    v2 = cost(catalog, call("openai", "gpt-4o", TokenUsage(10, 10)).model_copy(update={"version": 2})).entry
    assert v2.version > cost_version(1, 65535), "a newer call version outranks every restatement of the old"
    assert restatement_round(cost_version(3, 7)) == 7


def mcp(status: McpCallStatus = McpCallStatus.SUCCESS, tool: str = "search_issues") -> McpCall:
    return McpCall(id="mcp-1", tenant="acme", time=T, source="obot", method="tools/call", tool_name=tool,
                   mcp_server_id="ms1abc", mcp_server_name="GitHub", catalog_entry="github", status=status,
                   user_id="alice", client_name="Cursor")


def test_tool_prices(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("""
tools:
  - server: github
    tool: "search_*"
    prices: [{from: "2026-01-01", per_call: "0.002"}]
  - server: GitHub
    tool: create_issue
    prices: [{from: "2026-01-01", per_call: "0.01", bill_failed: true}]
""")
    cat = load_catalog(f)
    e = tool_cost(mcp(), cat, computed_at=COMPUTED)
    assert e is not None and e.total_cost_usd == e.tool_cost_usd == Decimal("0.002")
    assert e.kind == CostKind.TOOL and e.mcp_server_id == "ms1abc" and e.client_id == "Cursor"
    assert e.id == cost_row_id(CostKind.TOOL, "mcp-1")
    failed = tool_cost(mcp(McpCallStatus.FAILURE), cat, computed_at=COMPUTED)
    assert failed is not None and failed.total_cost_usd == 0 and "not billed" in failed.pricing_note
    billed = tool_cost(mcp(McpCallStatus.FAILURE, "create_issue"), cat, computed_at=COMPUTED)
    assert billed is not None and billed.total_cost_usd == Decimal("0.01")
    assert tool_cost(mcp(tool="list_repos"), cat, computed_at=COMPUTED) is None, "unpriced tools cost nothing"
    listing = mcp().model_copy(update={"method": "tools/list"})
    assert tool_cost(listing, cat, computed_at=COMPUTED) is None


# Rates per million tokens written out by hand from gateledger/money/prices.yaml (and the provider
# pages it cites), not taken from the catalog code under test: (input, cache_read, cache_write, output),
# None = billed as plain input; then the long-context threshold (whole input above it) and its rates.
R = tuple[str, str | None, str | None, str]
EXPECTED_RATES: dict[tuple[str, str], tuple[R, int | None, R | None]] = {
    ("openai", "gpt-5.5"): (("5.00", "0.50", None, "30.00"), 272_000, ("10.00", "1.00", None, "45.00")),
    ("openai", "gpt-4o-mini"): (("0.15", "0.075", None, "0.60"), None, None),
    ("anthropic", "claude-opus-4-1"): (("15.00", "1.50", "18.75", "75.00"), None, None),
    # Bedrock serves Claude at Anthropic's list price; a "us." geo inference profile adds 10 %.
    ("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0"): (("1.10", "0.11", "1.375", "5.50"), None, None),
    ("google", "gemini-2.5-pro"): (("1.25", "0.125", None, "10.00"), 200_000, ("2.50", "0.25", None, "15.00")),
    ("mistral", "codestral-2508"): (("0.30", None, None, "0.90"), None, None),
    ("bedrock", "amazon.nova-micro-v1:0"): (("0.035", None, None, "0.14"), None, None),
    ("anthropic", "claude-haiku-5-5"): (("0.10", "0.01", "0.125", "0.50"), 100_000, ("0.50", "0.05", "0.625", "2.50")),
}


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(sorted(EXPECTED_RATES)),
    uncached=st.integers(0, 2_000_000), read=st.integers(0, 500_000), write=st.integers(0, 100_000),
    out=st.integers(0, 300_000),
)
def test_cost_is_the_exact_formula(model: tuple[str, str], uncached: int, read: int, write: int, out: int) -> None:
    u = TokenUsage(uncached + read + write, out, read, write)
    if u.total_tokens == 0:
        return
    e = llm_cost(call(*model, u), _CATALOG, computed_at=COMPUTED).entry
    base, above, long = EXPECTED_RATES[model]
    inp, cache_read, cache_write, output = long if above is not None and u.input_tokens > above else base
    rate = {k: Fraction(v or inp) for k, v in
            (("input", inp), ("read", cache_read), ("write", cache_write), ("output", output))}
    expected = (uncached * rate["input"] + read * rate["read"] + write * rate["write"]
                + out * rate["output"]) / 10**6
    assert Fraction(e.total_cost_usd) == expected
    assert e.total_cost_usd == e.input_cost_usd + e.cache_read_cost_usd + e.cache_write_cost_usd + e.output_cost_usd
    assert decimals_of(e.total_cost_usd) <= 12, "fits Decimal(38, 12) without truncation"
