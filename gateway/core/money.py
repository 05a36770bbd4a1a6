"""Money as integer nano-dollars (1 USD = 10**9). Prices parse as Decimal once, at load."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

NANOS_PER_USD = 1_000_000_000
_NANO = Decimal(NANOS_PER_USD)


def usd_to_nanos(usd: Decimal | str | int) -> int:
    """Exact conversion, rounding half-even to the nearest nano-dollar."""
    value = usd if isinstance(usd, Decimal) else Decimal(str(usd))
    return int((value * _NANO).to_integral_value(rounding=ROUND_HALF_EVEN))


def nanos_to_usd(nanos: int) -> Decimal:
    return Decimal(nanos) / _NANO


def format_usd(nanos: int | None) -> str:
    """Header/CLI rendering: up to 9 decimals, no float round-trip; `unknown` for None."""
    if nanos is None:
        return "unknown"
    text = f"{nanos_to_usd(nanos):.9f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def per_token_nanos(usd_per_million_tokens: Decimal) -> Decimal:
    """Nano-dollars per token for a $/Mtok price, kept as Decimal to multiply before rounding."""
    return usd_per_million_tokens * _NANO / Decimal(1_000_000)


def tokens_cost_nanos(tokens: int, nanos_per_token: Decimal) -> int:
    return int((nanos_per_token * tokens).to_integral_value(rounding=ROUND_HALF_EVEN))
