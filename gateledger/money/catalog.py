"""The price catalog: the built-in file merged with the user's own, versioned, looked up by provider + model + time.

Precedence (documented in docs/money.md): the user's file (``GATELEDGER_PRICES_FILE``) is consulted
first for every lookup: a user model entry, alias, tool price or adjustment that matches wins over
any built-in one; user provider aliases and fallbacks replace the built-in ones of the same name.
The catalog ``version`` is a hash of every price-relevant value of both files (sources and notes
excluded, so fixing a citation does not restate history), prefixed by the built-in file's date.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateledger import jsonutil
from gateledger.money.amounts import MAX_PRICE_DECIMALS, canonical, decimals_of, mul
from gateledger.money.names import ModelRef, infer_provider, loose, model_ref
from gateledger.money.yamlio import YamlFileError, load_yaml_file

log = logging.getLogger(__name__)

BUILTIN_PRICES = Path(__file__).with_name("prices.yaml")


class CatalogError(ValueError):
    """A price file that is not a valid catalog."""


def _as_utc(value: Any) -> Any:
    """Dates and times in catalog files: a bare date means 00:00 UTC that day."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        return _as_utc(datetime.fromisoformat(text))
    return value


def _check_price(v: Decimal | None, what: str) -> Decimal | None:
    if v is None:
        return None
    if v < 0:
        raise ValueError(f"{what} is negative")
    if decimals_of(v) > MAX_PRICE_DECIMALS:
        raise ValueError(f"{what} {v} has more than {MAX_PRICE_DECIMALS} decimals (costs are stored with 12)")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Rates(_Strict):
    """Prices per million tokens. cache_read / cache_write absent: those tokens cost the input price."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None

    @model_validator(mode="after")
    def _valid(self) -> Rates:
        for name in ("input", "output", "cache_read", "cache_write", "cache_write_1h"):
            _check_price(getattr(self, name), name)
        return self

    def scaled(self, factor: Decimal) -> Rates:
        """Every rate multiplied by ``factor`` (exactly)."""
        def s(v: Decimal | None) -> Decimal | None:
            return None if v is None else mul(v, factor)
        return Rates(input=mul(self.input, factor), output=mul(self.output, factor), cache_read=s(self.cache_read),
                     cache_write=s(self.cache_write), cache_write_1h=s(self.cache_write_1h))


class LongContext(Rates):
    """Rates for a whole request whose input tokens (cache included) exceed ``above_input_tokens``."""

    above_input_tokens: int = Field(gt=0)


class PricePoint(Rates):
    """One price of a model, effective from ``from`` until the next point's ``from``."""

    effective_from: datetime = Field(alias="from")
    long_context: LongContext | None = None
    source: dict[str, Any] | None = None
    note: str | None = None

    @field_validator("effective_from", mode="before")
    @classmethod
    def _utc(cls, v: Any) -> Any:
        return _as_utc(v)


class ModelEntry(_Strict):
    provider: str
    model: str
    match: list[str] = Field(default_factory=list)
    prices: list[PricePoint] = Field(min_length=1)
    note: str | None = None

    @field_validator("provider", "model")
    @classmethod
    def _lower(cls, v: str) -> str:
        v = v.strip().lower()
        if not v:
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> ModelEntry:
        starts = [p.effective_from for p in self.prices]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError(f"{self.provider}/{self.model}: prices must be in increasing `from` order, no repeats")
        return self

    def patterns(self) -> list[str]:
        return [self.model, *self.match]

    def price_at(self, at: datetime) -> PricePoint | None:
        """The point in effect at ``at`` (None before the first one)."""
        found = None
        for p in self.prices:
            if p.effective_from <= at:
                found = p
            else:
                break
        return found


class ToolPricePoint(_Strict):
    effective_from: datetime = Field(alias="from")
    per_call: Decimal
    bill_failed: bool = False
    source: dict[str, Any] | None = None
    note: str | None = None

    @field_validator("effective_from", mode="before")
    @classmethod
    def _utc(cls, v: Any) -> Any:
        return _as_utc(v)

    @field_validator("per_call")
    @classmethod
    def _valid(cls, v: Decimal) -> Decimal:
        if v < 0 or decimals_of(v) > 12:
            raise ValueError("per_call must be >= 0 with at most 12 decimals")
        return v


class ToolEntry(_Strict):
    """A price per MCP ``tools/call``: ``server`` matches the server id, name or catalog entry; ``tool`` the tool name."""

    server: str
    tool: str = "*"
    prices: list[ToolPricePoint] = Field(min_length=1)
    note: str | None = None

    def price_at(self, at: datetime) -> ToolPricePoint | None:
        found = None
        for p in sorted(self.prices, key=lambda p: p.effective_from):
            if p.effective_from <= at:
                found = p
        return found


class Adjustment(_Strict):
    """A multiplier on matching models' prices for some endpoints of a provider (e.g. Bedrock regional +10 %)."""

    name: str
    provider: str
    endpoints: list[Literal["global", "geo", "in_region"]] = Field(min_length=1)
    match: list[str] = Field(min_length=1)
    multiplier: Decimal = Field(gt=0)
    effective_from: datetime = Field(alias="from")
    until: datetime | None = None
    source: dict[str, Any] | None = None
    note: str | None = None

    @field_validator("effective_from", "until", mode="before")
    @classmethod
    def _utc(cls, v: Any) -> Any:
        return _as_utc(v)


class Alias(_Strict):
    """Price a model name (glob) as another model, e.g. an Azure deployment name as ``gpt-4o``."""

    match: str
    model: str
    provider: str | None = None  # only for events of this (canonical) provider
    note: str | None = None


class CatalogFile(_Strict):
    """One price file as written (built-in or the user's)."""

    schema_: int = Field(default=1, alias="schema")
    updated: str | None = None
    currency: Literal["USD"] = "USD"
    sources: dict[str, Any] = Field(default_factory=dict)
    providers: dict[str, list[str]] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    adjustments: list[Adjustment] = Field(default_factory=list)
    aliases: list[Alias] = Field(default_factory=list)
    models: list[ModelEntry] = Field(default_factory=list)
    tools: list[ToolEntry] = Field(default_factory=list)

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, v: int) -> int:
        if v != 1:
            raise ValueError(f"unsupported catalog schema {v} (this gateledger reads schema 1)")
        return v

    @model_validator(mode="after")
    def _unique_models(self) -> CatalogFile:
        seen: set[tuple[str, str]] = set()
        for m in self.models:
            key = (m.provider, loose(m.model))
            if key in seen:
                raise ValueError(f"model {m.provider}/{m.model} is listed twice")
            seen.add(key)
        return self

    def price_data(self) -> Any:
        """Everything that affects a price (for the version hash): no sources, no notes."""
        raw = self.model_dump(mode="python", by_alias=True, exclude={"sources", "updated"})
        return _strip_docs(raw)


def _strip_docs(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_docs(v) for k, v in sorted(obj.items()) if k not in ("source", "note", "sources")}
    if isinstance(obj, list):
        return [_strip_docs(v) for v in obj]
    if isinstance(obj, Decimal):
        return canonical(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def parse_catalog(data: Any, where: str) -> CatalogFile:
    """Validate parsed YAML as a catalog file."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogError(f"{where}: a price catalog is a mapping (schema, models, ...)")
    try:
        return CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"{where}: {exc}") from None


def read_catalog_file(path: Path) -> CatalogFile:
    """Load and validate one price file."""
    try:
        return parse_catalog(load_yaml_file(path), str(path))
    except YamlFileError as exc:
        raise CatalogError(str(exc)) from None


# --- lookups ------------------------------------------------------------------------------------


def _has_wildcard(p: str) -> bool:
    return any(c in p for c in "*?[")


def _specificity(pattern: str) -> tuple[int, int]:
    """Exact names beat globs; among globs the one with more literal characters wins."""
    literal = sum(1 for c in pattern if c not in "*?[]")
    return (0 if _has_wildcard(pattern) else 1, literal)


def _matches(pattern: str, *names: str) -> bool:
    lp = loose(pattern)
    return any(fnmatchcase(loose(n), lp) for n in names if n)


@dataclass(frozen=True)
class PriceMatch:
    """How one LLM call is priced: the entry, the point in effect, and any adjustment."""

    provider: str  # canonical provider of the event
    priced_provider: str  # provider whose entry priced it (differs after a fallback)
    model: str  # canonical model name of the entry
    point: PricePoint
    multiplier: Decimal = Decimal(1)
    notes: tuple[str, ...] = ()

    @property
    def entry_key(self) -> str:
        """``provider/model@from``: which catalog entry and which dated price."""
        return f"{self.priced_provider}/{self.model}@{self.point.effective_from.date().isoformat()}"

    def rates(self, input_tokens: int) -> tuple[Rates, bool]:
        """The rates for a request with this many input tokens (cache included); True when long-context."""
        base: Rates = self.point
        long = self.point.long_context
        is_long = long is not None and input_tokens > long.above_input_tokens
        chosen: Rates = long if (is_long and long is not None) else base
        plain = Rates(input=chosen.input, output=chosen.output, cache_read=chosen.cache_read,
                      cache_write=chosen.cache_write, cache_write_1h=chosen.cache_write_1h)
        return (plain if self.multiplier == 1 else plain.scaled(self.multiplier)), is_long


@dataclass(frozen=True)
class Unpriced:
    """Why a call could not be priced."""

    provider: str
    reason: Literal["unknown_model", "no_price_at_time"]
    detail: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolPriceMatch:
    entry: ToolEntry
    point: ToolPricePoint

    @property
    def entry_key(self) -> str:
        return f"tool/{self.entry.server}/{self.entry.tool}@{self.point.effective_from.date().isoformat()}"


@dataclass
class PriceCatalog:
    """The merged catalog a process prices with."""

    builtin: CatalogFile
    user: CatalogFile | None = None
    user_path: Path | None = None
    version: str = field(init=False)
    _provider_alias: dict[str, str] = field(init=False, repr=False)
    _fallbacks: dict[str, list[str]] = field(init=False, repr=False)
    _entry_cache: dict[tuple[str, str, str], ModelEntry | None] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        files = [self.builtin] + ([self.user] if self.user else [])
        aliases: dict[str, str] = {}
        fallbacks: dict[str, list[str]] = {}
        for f in files:  # later (user) files override earlier ones
            for canonical_name, names in f.providers.items():
                canon = canonical_name.strip().lower()
                aliases[canon] = canon
                for n in names:
                    aliases[n.strip().lower()] = canon
            for prov, chain in f.fallbacks.items():
                fallbacks[prov.strip().lower()] = [c.strip().lower() for c in chain]
        self._provider_alias = aliases
        self._fallbacks = fallbacks
        digest = hashlib.sha256(jsonutil.canonical_bytes({
            "builtin": self.builtin.price_data(),
            "user": self.user.price_data() if self.user else None,
        })).hexdigest()
        label = self.builtin.updated or "catalog"
        self.version = f"{label}.{digest[:12]}" + ("+user" if self.user else "")
        self._check_adjusted_decimals()

    def _check_adjusted_decimals(self) -> None:
        # A multiplier must not push a price past six decimals, or stored costs would be truncated.
        for f in self._files():
            for adj in f.adjustments:
                for entry in self._entries():
                    if not any(_matches(p, entry.model) for p in adj.match):
                        continue
                    for point in entry.prices:
                        for rates in (point, point.long_context):
                            if rates is None:
                                continue
                            for v in (rates.input, rates.output, rates.cache_read, rates.cache_write,
                                      rates.cache_write_1h):
                                if v is not None and decimals_of(mul(v, adj.multiplier)) > MAX_PRICE_DECIMALS:
                                    raise CatalogError(
                                        f"adjustment {adj.name} makes {entry.provider}/{entry.model} price "
                                        f"{v} x {adj.multiplier} exceed {MAX_PRICE_DECIMALS} decimals")

    def _files(self) -> list[CatalogFile]:
        """Files in lookup order: the user's first."""
        return ([self.user] if self.user else []) + [self.builtin]

    def _entries(self) -> list[ModelEntry]:
        return [m for f in self._files() for m in f.models]

    def canonical_provider(self, raw: str | None) -> str | None:
        """The canonical provider for a name as received (None for empty input)."""
        if raw is None or not raw.strip():
            return None
        key = raw.strip().lower()
        return self._provider_alias.get(key, key)

    def providers(self) -> list[str]:
        """Canonical providers known to the catalog."""
        return sorted(set(self._provider_alias.values()))

    def _resolve_alias(self, provider: str, ref: ModelRef) -> tuple[ModelRef, str | None]:
        for f in self._files():
            for a in f.aliases:
                if a.provider and a.provider.strip().lower() != provider:
                    continue
                if _matches(a.match, ref.raw_lower, ref.base):
                    target = model_ref(a.model)
                    return (ModelRef(ref.raw, target.base, ref.snapshot, ref.endpoint, ref.vendor),
                            f"alias {a.match} -> {a.model}")
        return ref, None

    def _find_entry(self, provider: str, ref: ModelRef) -> ModelEntry | None:
        # The catalog never changes after construction (a reload builds a new one): memoize lookups.
        key = (provider, ref.base, ref.raw_lower)
        if key in self._entry_cache:
            return self._entry_cache[key]
        found = self._search_entry(provider, ref)
        if len(self._entry_cache) < 100_000:
            self._entry_cache[key] = found
        return found

    def _search_entry(self, provider: str, ref: ModelRef) -> ModelEntry | None:
        for f in self._files():
            best: tuple[tuple[int, int], int, ModelEntry] | None = None
            for i, entry in enumerate(f.models):
                if entry.provider != provider:
                    continue
                for p in entry.patterns():
                    if _matches(p, ref.base, ref.raw_lower):
                        score = _specificity(p)
                        if best is None or score > best[0] or (score == best[0] and i < best[1]):
                            best = (score, i, entry)
            if best is not None:
                return best[2]
        return None

    def resolve(self, provider_raw: str | None, model_raw: str, at: datetime) -> PriceMatch | Unpriced:
        """How to price ``model_raw`` served by ``provider_raw`` at event time ``at``."""
        at = _as_utc(at)
        ref = model_ref(model_raw)
        notes: list[str] = []
        provider = self.canonical_provider(provider_raw)
        if provider is None:
            provider = infer_provider(ref) or ""
            if provider:
                notes.append("provider inferred from model name")
        ref, alias_note = self._resolve_alias(provider, ref)
        if alias_note:
            notes.append(alias_note)
        if not ref.base:
            return Unpriced(provider, "unknown_model", "no model name", tuple(notes))
        chain = [provider, *self._fallbacks.get(provider, [])]
        entry: ModelEntry | None = None
        priced_by = provider
        for candidate in chain:
            entry = self._find_entry(candidate, ref)
            if entry is not None:
                priced_by = candidate
                if candidate != provider:
                    notes.append(f"{provider} priced at {candidate} list prices")
                break
        if entry is None:
            where = provider or "an unknown provider"
            return Unpriced(provider, "unknown_model", f"no catalog entry for {model_raw!r} from {where}",
                            tuple(notes))
        point = entry.price_at(at)
        if point is None:
            return Unpriced(provider, "no_price_at_time",
                            f"{entry.provider}/{entry.model} has no price before "
                            f"{entry.prices[0].effective_from.date().isoformat()}", tuple(notes))
        multiplier = Decimal(1)
        for f in self._files():
            for adj in f.adjustments:
                if adj.provider.strip().lower() != provider or ref.endpoint not in adj.endpoints:
                    continue
                if not (adj.effective_from <= at and (adj.until is None or at < adj.until)):
                    continue
                if any(_matches(p, entry.model, ref.base) for p in adj.match):
                    multiplier = mul(multiplier, adj.multiplier)
                    notes.append(f"{adj.name} x{canonical(adj.multiplier)} ({ref.endpoint} endpoint)")
        return PriceMatch(provider, priced_by, entry.model, point, multiplier, tuple(notes))

    def tool_price(self, server_keys: list[str], tool: str | None, at: datetime) -> ToolPriceMatch | None:
        """The price of one call of ``tool`` on a server known by any of ``server_keys`` (None: not priced)."""
        at = _as_utc(at)
        keys = [k for k in server_keys if k]
        if not keys or not tool:
            return None
        for f in self._files():
            best: tuple[int, int, ToolEntry] | None = None
            for i, entry in enumerate(f.tools):
                if not any(fnmatchcase(k, entry.server) for k in keys) or not fnmatchcase(tool, entry.tool):
                    continue
                score = _specificity(entry.server)[1] + _specificity(entry.tool)[1]
                if best is None or score > best[0]:
                    best = (score, i, entry)
            if best is not None:
                point = best[2].price_at(at)
                return None if point is None else ToolPriceMatch(best[2], point)
        return None


def load_catalog(user_file: Path | None = None, builtin_file: Path = BUILTIN_PRICES) -> PriceCatalog:
    """The built-in catalog merged with the user's file (if any)."""
    builtin = read_catalog_file(builtin_file)
    user = read_catalog_file(user_file) if user_file is not None else None
    return PriceCatalog(builtin, user, user_file)


class CatalogLoader:
    """Keeps the current catalog and reloads it when either file changes (a bad edit keeps the last good one)."""

    def __init__(self, user_file: Path | None = None, builtin_file: Path = BUILTIN_PRICES) -> None:
        self.user_file = user_file
        self.builtin_file = builtin_file
        self._stamp = self._stat()
        self._catalog = load_catalog(user_file, builtin_file)
        self.last_error: str | None = None

    def _stat(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for p in (self.builtin_file, self.user_file):
            if p is None:
                out.append(None)
                continue
            try:
                st = os.stat(p)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append("missing")
        return tuple(out)

    def current(self) -> PriceCatalog:
        """The catalog to price with now."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._catalog = load_catalog(self.user_file, self.builtin_file)
                self.last_error = None
                log.info("price catalog reloaded: version %s", self._catalog.version)
            except CatalogError as exc:
                self.last_error = str(exc)
                log.error("price catalog not reloaded, keeping version %s: %s", self._catalog.version, exc)
        return self._catalog
