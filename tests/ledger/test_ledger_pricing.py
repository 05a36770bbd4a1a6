"""Pricebook: policy prices override connector prices, baseline = same usage at the baseline
backend, unknown prices stay None."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.core.config import Pricing
from gateway.core.pricing import Price
from gateway.core.types import Usage
from gateway.ledger.pricing import Pricebook
from gateway.policy.models import Policy


def _policy(baseline: str = "ar") -> Policy:
    return Policy.model_validate(
        {
            "backends": {
                "dllm": {"type": "dllm", "engine": "vllm", "base_url": "http://127.0.0.1:1/v1",
                         "model": "d", "pricing": {"gpu_hour_usd": "3.60"}},
                "cheap": {"type": "dllm", "engine": "vllm", "base_url": "http://127.0.0.1:1/v1",
                          "model": "c", "pricing": {"input_per_mtok_usd": "0.10",
                                                    "output_per_mtok_usd": "0.40"}},
                "ar": {"type": "litellm", "model": "openai/gpt-4.1-mini"},
                "mystery": {"type": "litellm", "model": "openai/unknown-model"},
            },
            "baseline": baseline,
            "routes": [{"name": "all", "target": "dllm"}],
            "default_route": "all",
        }
    )  # fmt: skip


AR = Price(
    input_nanos_per_token=Decimal(400),  # $0.40 / Mtok
    output_nanos_per_token=Decimal(1600),  # $1.60 / Mtok
    cached_nanos_per_token=Decimal(100),
)


def test_attempt_cost_and_baseline() -> None:
    book = Pricebook(_policy(), {"ar": AR, "cheap": AR})
    usage = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    # policy pricing wins over the connector's price for "cheap": 1000*100 + 200*400
    assert book.attempt_costs("cheap", usage, elapsed_s=1.0) == (
        180_000,
        600 * 400 + 400 * 100 + 200 * 1600,
    )
    # GPU-hour: $3.60/h for 0.5 s = $0.0005; baseline is the AR price of the same usage
    assert book.attempt_costs("dllm", usage, elapsed_s=0.5) == (500_000, 600_000)


def test_unknown_price_is_none_not_zero() -> None:
    book = Pricebook(_policy(), {"ar": AR})
    usage = Usage(prompt_tokens=10, completion_tokens=10)
    assert book.attempt_costs("mystery", usage, elapsed_s=0.1) == (None, 400 * 10 + 1600 * 10)
    assert book.unknown() == ["mystery"]
    no_baseline = Pricebook(_policy(baseline="mystery"), {"ar": AR})
    assert no_baseline.attempt_costs("ar", usage, elapsed_s=0.1) == (20_000, None)


def test_gpu_hour_rate_is_exact_and_schemes_do_not_mix() -> None:
    # $0.0000000015/h is 1.5 nano-dollars an hour: truncating it to 1 would lose a third.
    price = Price.from_policy(Pricing(gpu_hour_usd=Decimal("0.0000000015")))
    assert price.cost_nanos(Usage(prompt_tokens=1, completion_tokens=1), elapsed_s=3600 * 1000) == (
        1500
    )
    with pytest.raises(ValueError, match="not both"):
        Price(gpu_hour_nanos=Decimal(1), input_nanos_per_token=Decimal(1))
    with pytest.raises(ValueError, match="both the input and the output"):
        Price(input_nanos_per_token=Decimal(1))
