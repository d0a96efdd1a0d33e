"""The cost of one LLM call or one priced MCP tool call, as a ``CostEntry`` row.

Formula (all per-million prices, exact Decimal, nothing rounded):

    uncached   = input_tokens - cache_read_tokens - cache_write_tokens      (usage in OTel convention)
    input      = uncached           * rate.input       / 1e6
    cache_read = cache_read_tokens  * rate.cache_read  / 1e6   (rate.input when the catalog has none)
    cache_write= cache_write_tokens * rate.cache_write / 1e6   (rate.input when the catalog has none)
    output     = output_tokens      * rate.output      / 1e6
    total      = input + cache_read + cache_write + output

``rate`` is the long-context rate set when the request's input (cache included) exceeds the
entry's threshold, times any adjustment (Bedrock regional +10 %).

Ids and versions: a cost row's id is ``stable_id("cost", kind, event_id)``: the same call always
has the same cost row. Its version is ``event_version << 16 | restatement_round``, so a newer
version of the call outranks every restatement of an older one, and each restatement of the same
call version outranks the last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateledger import findings
from gateledger.clock import to_utc
from gateledger.contracts.events import (
    CostEntry,
    CostKind,
    Finding,
    LlmCall,
    LlmCallStatus,
    McpCall,
    McpCallStatus,
)
from gateledger.ids import stable_id
from gateledger.money.amounts import ZERO, add, canonical, per_token_cost
from gateledger.money.catalog import PriceCatalog, PriceMatch, Unpriced
from gateledger.money.teams import TeamDirectory
from gateledger.money.usage import TokenUsage

RESTATEMENT_BITS = 16
MAX_RESTATEMENTS = (1 << RESTATEMENT_BITS) - 1

UNPRICED_NO_USAGE = "no_usage"
UNPRICED_ZERO_USAGE = "zero_usage"
# Unpriced because of the call itself, not the catalog: a restatement cannot change these.
USAGE_REASONS = (UNPRICED_NO_USAGE, UNPRICED_ZERO_USAGE)


def cost_row_id(kind: CostKind | str, event_id: str) -> str:
    """The deterministic id of the cost row of one event."""
    return stable_id("cost", str(kind), event_id)


def cost_version(event_version: int, restatement_round: int = 0) -> int:
    """The row version: the event's version in the high bits, the restatement round in the low 16."""
    if not 0 <= restatement_round <= MAX_RESTATEMENTS:
        raise ValueError(f"restatement round {restatement_round} out of range")
    return (event_version << RESTATEMENT_BITS) | restatement_round


def restatement_round(version: int) -> int:
    """How many times a row's current version has been restated."""
    return version & MAX_RESTATEMENTS


@dataclass(frozen=True)
class Priced:
    """The cost fields of one LLM call."""

    input_cost: Decimal
    output_cost: Decimal
    cache_read_cost: Decimal
    cache_write_cost: Decimal
    total: Decimal
    entry: str
    note: str | None
    model: str


@dataclass(frozen=True)
class CostResult:
    """A cost row, and the finding to emit with it (an unknown model), if any."""

    entry: CostEntry
    finding: Finding | None = None


def price_usage(match: PriceMatch, usage: TokenUsage) -> Priced:
    """Apply a catalog match to usage: the exact cost fields."""
    rates, is_long = match.rates(usage.input_tokens)
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    input_cost = per_token_cost(uncached, rates.input)
    read_cost = per_token_cost(usage.cache_read_tokens, rates.cache_read if rates.cache_read is not None else rates.input)
    write_cost = per_token_cost(usage.cache_write_tokens,
                                rates.cache_write if rates.cache_write is not None else rates.input)
    output_cost = per_token_cost(usage.output_tokens, rates.output)
    entry = match.entry_key + ("#long_context" if is_long else "")
    if match.multiplier != 1:
        entry += f"*{canonical(match.multiplier)}"
    return Priced(input_cost, output_cost, read_cost, write_cost, add(input_cost, read_cost, write_cost, output_cost),
                  entry, "; ".join(match.notes) or None, match.model)


def _join(*notes: str | None) -> str | None:
    parts = [n for n in notes if n]
    return "; ".join(parts) or None


def _priced_row(kind: CostKind, call: LlmCall | McpCall, catalog: PriceCatalog, *, computed_at: datetime,
                teams: TeamDirectory | None, interaction_id: str | None, restatement: int) -> dict[str, Any]:
    """The fields every cost row takes from its call and its pricing run, whatever the kind."""
    return dict(
        id=cost_row_id(kind, call.id),
        version=cost_version(call.version, restatement),
        tenant=call.tenant,
        time=call.time,
        kind=kind,
        event_id=call.id,
        interaction_id=interaction_id,
        user_id=call.user_id,
        team=(teams or TeamDirectory()).team_of(call.user_id),
        price_version=catalog.version,
        restated=restatement > 0,
        computed_at=to_utc(computed_at),
    )


def llm_cost(
    call: LlmCall,
    catalog: PriceCatalog,
    *,
    computed_at: datetime,
    teams: TeamDirectory | None = None,
    interaction_id: str | None = None,
    restatement: int = 0,
) -> CostResult:
    """The cost row of one LLM call (flagged ``unpriced`` with a reason when it cannot be priced)."""
    usage, usage_note = TokenUsage.repaired(call.input_tokens, call.output_tokens, call.cache_read_tokens,
                                        call.cache_write_tokens)
    usage_note = _join(call.usage_note, usage_note)
    base = _priced_row(CostKind.LLM, call, catalog, computed_at=computed_at, teams=teams,
                       interaction_id=interaction_id, restatement=restatement) | dict(
        client_id=call.client_id,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    has_tokens = usage.input_tokens + usage.output_tokens > 0
    if not call.tokens_reported or not has_tokens:
        if call.status != LlmCallStatus.SUCCESS:
            # A failed or canceled call that reports no usage is not billed by any of the providers.
            return CostResult(CostEntry(**base, provider=catalog.canonical_provider(call.provider) or call.provider,
                                        model=call.model, pricing_note=_join(
                                            f"{call.status.value} call without usage: no charge", usage_note)))
        reason = UNPRICED_NO_USAGE if not call.tokens_reported else UNPRICED_ZERO_USAGE
        return CostResult(CostEntry(**base, provider=catalog.canonical_provider(call.provider) or call.provider,
                                    model=call.model, unpriced=True, unpriced_reason=reason,
                                    pricing_note=_join("successful call without token usage", usage_note)))
    return _priced_or_flagged(call, catalog, usage, usage_note, base, computed_at, interaction_id)


def llm_pricing(catalog: PriceCatalog, provider: str | None, names: list[str], at: datetime, usage: TokenUsage,
                usage_note: str | None = None) -> tuple[dict[str, object], Unpriced | None]:
    """The pricing fields of a cost row for an LLM call (and why it is unpriced, if it is).

    ``names``: the model names to try in order (the answering model first, then the requested one).
    """
    resolution: PriceMatch | Unpriced | None = None
    priced_name = names[0] if names else ""
    for name in names:
        resolution = catalog.resolve(provider, name, at)
        priced_name = name
        if isinstance(resolution, PriceMatch):
            break
    if resolution is None:
        resolution = catalog.resolve(provider, "", at)
    if isinstance(resolution, PriceMatch):
        p = price_usage(resolution, usage)
        return {
            "provider": resolution.provider, "model": priced_name, "priced_model": p.model,
            "input_cost_usd": p.input_cost, "output_cost_usd": p.output_cost,
            "cache_read_cost_usd": p.cache_read_cost, "cache_write_cost_usd": p.cache_write_cost,
            "total_cost_usd": p.total, "price_entry": p.entry, "pricing_note": _join(p.note, usage_note),
            "unpriced": False, "unpriced_reason": None,
        }, None
    return {
        "provider": resolution.provider or provider or None, "model": names[-1] if names else "",
        "priced_model": None, "input_cost_usd": ZERO, "output_cost_usd": ZERO, "cache_read_cost_usd": ZERO,
        "cache_write_cost_usd": ZERO, "total_cost_usd": ZERO, "price_entry": None,
        "pricing_note": _join(resolution.detail, *resolution.notes, usage_note),
        "unpriced": True, "unpriced_reason": resolution.reason,
    }, resolution


def _priced_or_flagged(call: LlmCall, catalog: PriceCatalog, usage: TokenUsage, usage_note: str | None,
                       base: dict[str, object], computed_at: datetime, interaction_id: str | None) -> CostResult:
    # The model that answered (gen_ai.response.model) is what was billed; fall back to the requested one.
    names = [n for n in (call.response_model, call.model) if n] or [call.model]
    fields, why = llm_pricing(catalog, call.provider, names, call.time, usage, usage_note)
    entry = CostEntry(**base, **fields)  # type: ignore[arg-type]
    finding = None if why is None else findings.unpriced_model(call, why, computed_at, interaction_id)
    return CostResult(entry, finding)


def tool_cost(
    call: McpCall,
    catalog: PriceCatalog,
    *,
    computed_at: datetime,
    teams: TeamDirectory | None = None,
    interaction_id: str | None = None,
    restatement: int = 0,
) -> CostEntry | None:
    """The cost row of one MCP tool call, or None when its tool has no price (tool calls are free by default)."""
    if call.method != "tools/call" or not call.tool_name:
        return None
    match = catalog.tool_price([call.mcp_server_id or "", call.mcp_server_name or "", call.catalog_entry or ""],
                               call.tool_name, call.time)
    if match is None:
        return None
    billed = call.status == McpCallStatus.SUCCESS or match.point.bill_failed
    amount = match.point.per_call if billed else ZERO
    return CostEntry(
        **_priced_row(CostKind.TOOL, call, catalog, computed_at=computed_at, teams=teams,
                      interaction_id=interaction_id, restatement=restatement),
        client_id=call.client_name,
        mcp_server_id=call.mcp_server_id,
        mcp_server_name=call.mcp_server_name or call.catalog_entry,
        tool_name=call.tool_name,
        tool_cost_usd=amount,
        total_cost_usd=amount,
        price_entry=match.entry_key,
        pricing_note=None if billed else f"{call.status.value} call not billed",
    )
