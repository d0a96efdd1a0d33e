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
from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from gateledger import jsonutil
from gateledger.money.amounts import MAX_PRICE_DECIMALS, canonical, decimals_of, mul
from gateledger.money.catalog_file import (
    CatalogError,
    CatalogFile,
    ModelEntry,
    PricePoint,
    Rates,
    ToolEntry,
    ToolPricePoint,
    as_utc,
    read_catalog_file,
)
from gateledger.money.names import ModelRef, infer_provider, loose, model_ref

log = logging.getLogger(__name__)

BUILTIN_PRICES = Path(__file__).with_name("prices.yaml")


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
        at = as_utc(at)
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
        at = as_utc(at)
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
