"""Exact money arithmetic: Decimal with enough precision that nothing is ever rounded by accident.

Prices are quoted per million tokens; a per-token amount is the same digits shifted six places,
so ``tokens * price / 10**6`` is exact. Nothing is rounded until display (``display_usd``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from typing import Any

# 60 significant digits: a trillion tokens at a thousand dollars per million still has room for
# every fractional digit a six-decimal price can produce.
MONEY_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)

ZERO = Decimal(0)
MILLION = Decimal(10) ** 6

# ClickHouse stores money as Decimal(38, 12); a per-million price with at most six decimals gives
# per-token amounts with at most twelve, so the sink never truncates a cost.
MAX_PRICE_DECIMALS = 6
STORED_DECIMALS = 12


class MoneyError(ValueError):
    """A value that cannot be an exact amount of money."""


def to_decimal(value: Any, what: str = "amount") -> Decimal:
    """An exact Decimal from a string, int or Decimal; floats are refused (they are already rounded)."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise MoneyError(f"{what}: a boolean is not an amount")
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise MoneyError(f"{what}: {value!r} is not a decimal number") from None
    elif isinstance(value, float):
        raise MoneyError(f"{what}: {value!r} is a float; write it as a quoted decimal string")
    else:
        raise MoneyError(f"{what}: {type(value).__name__} is not an amount")
    if not d.is_finite():
        raise MoneyError(f"{what}: {value!r} is not finite")
    return d


def decimals_of(d: Decimal) -> int:
    """How many digits a Decimal has after the point (0 for integers)."""
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def per_token_cost(tokens: int, per_million: Decimal) -> Decimal:
    """The exact cost of ``tokens`` at a price per million tokens."""
    with localcontext(MONEY_CONTEXT):
        return (Decimal(tokens) * per_million) / MILLION


def add(*amounts: Decimal) -> Decimal:
    """An exact sum."""
    with localcontext(MONEY_CONTEXT):
        total = ZERO
        for a in amounts:
            total += a
        return total


def mul(a: Decimal, b: Decimal) -> Decimal:
    """An exact product."""
    with localcontext(MONEY_CONTEXT):
        return a * b


def ratio(numerator: Decimal, denominator: Decimal, places: int = STORED_DECIMALS) -> Decimal:
    """numerator / denominator rounded half-even to ``places`` decimals (ratios are for display and gauges)."""
    if denominator == 0:
        raise MoneyError("ratio with a zero denominator")
    with localcontext(MONEY_CONTEXT):
        return (numerator / denominator).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def canonical(d: Decimal) -> str:
    """A stable text form of an amount (no exponent, trailing zeros removed) for ids and hashing."""
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text


def display_usd(d: Decimal, places: int = 2) -> str:
    """An amount rounded for humans only, e.g. ``$1,234.57``."""
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"${q:,}"
