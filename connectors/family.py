"""A backend family as a plug-in: everything the gateway needs to know of one, in one object.

The policy's `Backend` union, `policy check`'s hints and cross-checks, the runtime that builds
connectors, list prices (live and in `simulate`), telemetry's provider name, which tier a
backend serves and what is warmed up at start all read `connectors.families.FAMILIES`; adding
a family is one package exporting a `Family` and one line there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from connectors.base import Connector
from connectors.cost_map import CostMap
from gateway.core.config import Problem
from gateway.core.pricing import Price

# "fast": the cheap tier whose answers are checked (token confidence, agreement) and escalated;
# "deep": the strong tier that escalation reaches.
Tier = Literal["fast", "deep"]


class Builder(Protocol):
    """Makes one family's connectors for one gateway process, and holds what they share (a
    lazily imported SDK, for instance)."""

    def build(self, name: str, config: Any, *, list_price: Price | None) -> Connector: ...

    @property
    def warmed(self) -> bool:
        """False while something the connectors need is still loading."""

    async def warm(self) -> None:
        """Load it now (start-up, off the request path); a no-op when there is nothing."""


def _no_price(config: Any, cost_map: CostMap) -> Price | None:
    return None


def _no_problems(name: str, config: Any) -> list[Problem]:
    return []


@dataclass(frozen=True)
class Family:
    tag: str  # the policy's `type:` value
    config: type[BaseModel]  # its config model; a `type: Literal[<tag>]` field
    tier: Tier
    builder: Callable[[], Builder]
    # `gen_ai.provider.name` (OpenTelemetry) for a call, from the attempt's model string.
    provider: Callable[[str], str]
    # The provider's list price for a backend without a policy `pricing` block.
    list_price: Callable[[Any, CostMap], Price | None] = _no_price
    # Policy problems only this family knows of (engine-only fields, ...), for `policy check`.
    problems: Callable[[str, Any], list[Problem]] = _no_problems
    # Whether `STEPGATE_PRELOAD_AR` warms this family's builder at start.
    preload: bool = False


class Ready:
    """A builder part with nothing to warm."""

    warmed = True

    async def warm(self) -> None:
        return None
