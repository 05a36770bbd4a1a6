"""AR prices come from litellm's offline cost map, read without importing litellm."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from typing import Any

from connectors.cost_map import CostMap
from gateway.core.types import Usage


def test_known_models_are_priced_from_the_map_and_unknown_ones_are_none() -> None:
    cost_map = CostMap()
    price = cost_map.price("openai/gpt-4.1-mini")  # $0.40 in / $1.60 out per Mtok in 1.110.2
    assert price is not None
    assert price.input_nanos_per_token == Decimal(400)
    assert price.output_nanos_per_token == Decimal(1600)
    assert price.cost_nanos(Usage(1000, 100), elapsed_s=0) == 400_000 + 160_000
    assert cost_map.price("openai/no-such-model-anywhere") is None


def test_reading_the_map_does_not_import_litellm() -> None:
    code = (
        "import sys; from connectors.cost_map import CostMap; "
        "assert CostMap().price('openai/gpt-4.1-mini'); assert 'litellm' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_gateway_costs_an_unpriced_ar_backend_from_the_map(client: Any, fake_openai: Any) -> None:
    fake_openai.set_reply(content="ok", prompt_tokens=1000, completion_tokens=100)
    r = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-cost-usd"] == "0.00056"
