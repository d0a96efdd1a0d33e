"""The price catalog: sourced entries, name normalization, effective dates, overrides, versions, reloads."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateledger.money.catalog import BUILTIN_PRICES, CatalogError, CatalogLoader, PriceMatch, Unpriced, load_catalog
from gateledger.money.names import infer_provider, model_ref
from gateledger.money.yamlio import load_yaml_file

NOW = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def priced(catalog, provider, model, at=NOW) -> PriceMatch:
    r = catalog.resolve(provider, model, at)
    assert isinstance(r, PriceMatch), r
    return r


def test_every_builtin_price_names_its_source_and_read_date(catalog) -> None:
    raw = load_yaml_file(BUILTIN_PRICES)
    assert raw["models"], "the catalog has models"
    providers = {m["provider"] for m in raw["models"]}
    assert {"openai", "anthropic", "google", "bedrock", "mistral"} <= providers
    for m in raw["models"]:
        for p in m["prices"]:
            src = p.get("source")
            assert src and src["url"].startswith("https://") and src["read"], (m["model"], p)
            datetime.fromisoformat(src["read"])
    for adj in raw["adjustments"]:
        assert adj["source"]["url"].startswith("https://")
    # each model is found under its own canonical name
    for f in (catalog.builtin,):
        for m in f.models:
            assert priced(catalog, m.provider, m.model, m.prices[-1].effective_from).model == m.model


@pytest.mark.parametrize(("provider", "raw", "model", "endpoint"), [
    ("openai", "gpt-4o-2024-08-06", "gpt-4o", None),
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", None),
    ("openai", "gpt-5.5-2026-04-23", "gpt-5.5", None),
    ("openai", "gpt-5-5", "gpt-5.5", None),  # dots and dashes are the same
    ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", None),
    ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku", None),
    ("anthropic", "claude-sonnet-4.5", "claude-sonnet-4-5", None),
    ("anthropic", "claude-sonnet-4-5[1m]", "claude-sonnet-4-5", None),
    ("aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", "in_region"),
    ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", "geo"),
    ("bedrock", "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", "geo"),
    ("bedrock", "global.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5", "global"),
    ("bedrock", "anthropic.claude-opus-4-6-v1", "claude-opus-4-6", "in_region"),
    ("bedrock", "amazon.nova-pro-v1:0", "nova-pro", "in_region"),
    ("bedrock", "us.amazon.nova-lite-v1:0", "nova-lite", "geo"),
    ("gcp.gemini", "models/gemini-2.5-pro", "gemini-2.5-pro", None),
    ("vertex_ai", "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash", None),
    ("vertex_ai", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5", None),
    ("gemini", "gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite", None),
    ("mistral_ai", "mistral-medium-2508", "mistral-medium-3", None),
    ("azure.ai.openai", "gpt-4.1", "gpt-4.1", None),
    ("openai", "openai/gpt-4o", "gpt-4o", None),
])
def test_aliases_snapshots_and_prefixes(catalog, provider: str, raw: str, model: str, endpoint: str | None) -> None:
    assert model_ref(raw).endpoint == endpoint
    assert priced(catalog, provider, raw).model == model


def test_more_specific_pattern_wins(catalog) -> None:
    # gemini-2.5-flash-lite-preview* must not be taken for gemini-2.5-flash-preview*
    assert priced(catalog, "google", "gemini-2.5-flash-preview-05-20").model == "gemini-2.5-flash"
    assert priced(catalog, "google", "gemini-2.5-flash-lite").model == "gemini-2.5-flash-lite"


def test_provider_names_normalize(catalog) -> None:
    for name, canon in [("OpenAI", "openai"), ("azure", "azure_openai"), ("gcp.vertex_ai", "google"),
                        ("gemini", "google"), ("AWS", "bedrock"), ("aws.bedrock", "bedrock"),
                        ("mistralai", "mistral"), ("anthropic", "anthropic"), ("groq", "groq")]:
        assert catalog.canonical_provider(name) == canon
    assert catalog.canonical_provider("") is None


def test_missing_provider_is_inferred_from_the_model_and_noted(catalog) -> None:
    m = priced(catalog, None, "claude-haiku-4-5-20251001")
    assert m.provider == "anthropic" and "provider inferred from model name" in m.notes
    assert infer_provider(model_ref("us.anthropic.claude-x-v1:0")) == "bedrock"
    assert infer_provider(model_ref("llama-3.3-70b")) is None


def test_unknown_models_are_unpriced_never_free(catalog) -> None:
    for provider, model in [("openai", "gpt-9-ultra"), ("groq", "llama-3.3-70b"), ("mistral", "mistral-large-latest"),
                            (None, "some-local-model"), ("openai", "")]:
        r = catalog.resolve(provider, model, NOW)
        assert isinstance(r, Unpriced) and r.reason == "unknown_model", (provider, model, r)


def test_fallbacks_are_recorded(catalog) -> None:
    m = priced(catalog, "azure", "gpt-4o")
    assert m.priced_provider == "openai" and m.provider == "azure_openai"
    assert any("openai list prices" in n for n in m.notes)
    v = priced(catalog, "vertex_ai", "claude-opus-4-5@20251101")
    assert v.priced_provider == "anthropic"


def test_bedrock_regional_premium_applies_to_claude_45_and_later_only(catalog) -> None:
    geo = priced(catalog, "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    glob = priced(catalog, "bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert geo.rates(1)[0].input == Decimal("3.3") and geo.rates(1)[0].output == Decimal("16.5")
    assert glob.rates(1)[0].input == Decimal("3") and glob.multiplier == 1
    old = priced(catalog, "bedrock", "us.anthropic.claude-3-haiku-20240307-v1:0")
    assert old.multiplier == 1 and old.rates(1)[0].input == Decimal("0.25")
    # Claude 3.5 Haiku direct has no Bedrock uplift either
    assert priced(catalog, "anthropic", "claude-sonnet-4-5").multiplier == 1


def test_price_history_by_effective_date(catalog) -> None:
    before = priced(catalog, "openai", "o3", datetime(2025, 5, 1, tzinfo=UTC))
    after = priced(catalog, "openai", "o3", datetime(2025, 6, 10, tzinfo=UTC))
    assert (before.point.input, before.point.output) == (Decimal("10.00"), Decimal("40.00"))
    assert (after.point.input, after.point.output) == (Decimal("2.00"), Decimal("8.00"))
    # the boundary instant belongs to the new price
    assert priced(catalog, "openai", "o3", datetime(2025, 6, 9, 23, 59, 59, 999999, tzinfo=UTC)).point.input == 10
    # a scheduled change: Gemini 3.8 Flash doubles on 2027-01-01
    assert priced(catalog, "google", "gemini-3.8-flash", datetime(2026, 12, 31, 23, tzinfo=UTC)).point.input == Decimal("0.75")
    assert priced(catalog, "google", "gemini-3.8-flash", datetime(2027, 1, 1, tzinfo=UTC)).point.input == Decimal("1.50")
    # Sonnet 5.5's cache-read cut
    assert priced(catalog, "anthropic", "claude-sonnet-5-5", datetime(2026, 10, 6, tzinfo=UTC)).point.cache_read == Decimal("0.20")
    assert priced(catalog, "anthropic", "claude-sonnet-5-5", datetime(2026, 10, 7, tzinfo=UTC)).point.cache_read == Decimal("0.10")
    # before a model's first price: unpriced with the reason
    early = catalog.resolve("openai", "gpt-5.5", datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(early, Unpriced) and early.reason == "no_price_at_time"


def test_long_context_tier_is_chosen_by_input_including_cache(catalog) -> None:
    m = priced(catalog, "openai", "gpt-5.4")
    assert m.rates(272_000) == (m.rates(1)[0], False)
    rates, is_long = m.rates(272_001)
    assert is_long and rates.input == Decimal("5.00") and rates.output == Decimal("22.50")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_user_file_wins_and_changes_the_version(tmp_path: Path, catalog) -> None:
    user = write(tmp_path / "prices.yaml", """
schema: 1
providers:
  openai: [openai, my-proxy]
aliases:
  - {match: "prod-gpt4o-*", model: gpt-4o, provider: azure_openai}
models:
  - provider: openai
    model: gpt-4o
    prices:
      - {from: "2024-01-01", input: "2.00", output: "8.00"}
  - provider: groq
    model: llama-3.3-70b
    prices:
      - {from: 2025-01-01, input: 0.59, output: 0.79}
tools:
  - server: github
    tool: "search_*"
    prices:
      - {from: "2026-01-01", per_call: "0.002"}
""")
    merged = load_catalog(user)
    assert merged.version != catalog.version and merged.version.endswith("+user")
    assert priced(merged, "openai", "gpt-4o").point.input == Decimal("2.00")  # user entry wins
    assert priced(merged, "my-proxy", "gpt-4o-2024-11-20").priced_provider == "openai"
    alias = priced(merged, "azure", "prod-gpt4o-eastus")
    assert alias.model == "gpt-4o" and any("alias" in n for n in alias.notes)
    llama = priced(merged, "groq", "llama-3.3-70b")
    assert llama.point.input == Decimal("0.59"), "YAML floats are read as the exact decimal written"
    assert priced(merged, "anthropic", "claude-haiku-4-5").point.input == Decimal("1.00"), "built-ins still apply"
    tool = merged.tool_price(["ms1abc", "github"], "search_issues", NOW)
    assert tool is not None and tool.point.per_call == Decimal("0.002")
    assert merged.tool_price(["github"], "create_issue", NOW) is None
    assert load_catalog(user).version == merged.version, "the version is a pure function of the files"


def test_version_ignores_sources_but_not_prices(tmp_path: Path) -> None:
    text = BUILTIN_PRICES.read_text()
    a = load_catalog(builtin_file=write(tmp_path / "a.yaml", text))
    b = load_catalog(builtin_file=write(tmp_path / "b.yaml", text.replace("read: \"2026-11-21\"", "read: \"2026-11-22\"")))
    c = load_catalog(builtin_file=write(tmp_path / "c.yaml", text.replace('input: "2.50", cache_read: "1.25"',
                                                                         'input: "2.60", cache_read: "1.25"')))
    assert a.version == b.version
    assert a.version != c.version


@pytest.mark.parametrize(("body", "message"), [
    ("models: [{provider: x, model: m, prices: [{from: 2026-01-01, input: '0.1234567', output: '1'}]}]",
     "more than 6 decimals"),
    ("models: [{provider: x, model: m, prices: [{from: 2026-01-01, input: '-1', output: '1'}]}]", "negative"),
    ("models: [{provider: x, model: m, prices: [{from: 2026-02-01, input: '1', output: '1'},"
     " {from: 2026-01-01, input: '1', output: '1'}]}]", "increasing"),
    ("models: [{provider: x, model: m, prices: [{from: 2026-01-01, input: '1', output: '1', typo: 1}]}]",
     "typo"),
    ("schema: 2", "schema"),
    ("[1, 2]", "mapping"),
    ("models: [{provider: x, model: m, prices: [{from: 2026-01-01, input: '1', output: '1'}]},"
     " {provider: x, model: M, prices: [{from: 2026-01-01, input: '1', output: '1'}]}]", "twice"),
])
def test_bad_user_files_are_refused_clearly(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_catalog(write(tmp_path / "bad.yaml", body))


def test_adjustments_may_not_exceed_six_decimals(tmp_path: Path) -> None:
    user = write(tmp_path / "p.yaml", """
adjustments:
  - {name: odd, provider: bedrock, endpoints: [geo], match: ["claude-haiku-4-5*"], multiplier: "1.0000001", from: 2025-01-01}
""")
    with pytest.raises(CatalogError, match="exceed 6 decimals"):
        load_catalog(user)


def test_loader_reloads_changes_and_keeps_the_last_good_catalog(tmp_path: Path) -> None:
    user = write(tmp_path / "p.yaml", "models: []\n")
    loader = CatalogLoader(user)
    v1 = loader.current().version
    assert loader.current() is loader.current(), "no reload without a change"
    write(user, "models: [{provider: x, model: m, prices: [{from: 2026-01-01, input: '1', output: '1'}]}]\n")
    os.utime(user, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    v2 = loader.current().version
    assert v2 != v1 and isinstance(loader.current().resolve("x", "m", NOW), PriceMatch)
    write(user, "models: [oops\n")
    os.utime(user, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
    assert loader.current().version == v2 and loader.last_error
