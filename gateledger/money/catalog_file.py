"""The price catalog's file format: the models a catalog file (built-in or the user's) must satisfy.

Strict (unknown keys refused) so a typo in a price file is an error, not a silently missing price;
``gateledger/money/catalog.py`` merges the validated files and looks prices up.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateledger.money.amounts import MAX_PRICE_DECIMALS, canonical, decimals_of, mul
from gateledger.money.names import loose
from gateledger.money.yamlio import YamlFileError, load_yaml_file

log = logging.getLogger(__name__)


class CatalogError(ValueError):
    """A price file that is not a valid catalog."""


def as_utc(value: Any) -> Any:
    """Dates and times in catalog files: a bare date means 00:00 UTC that day."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        return as_utc(datetime.fromisoformat(text))
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
        return as_utc(v)


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
        return as_utc(v)

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
        return as_utc(v)


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
