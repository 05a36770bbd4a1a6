"""Replay one traffic step: classify once, route under each policy, price each decision.

No backend is called and nothing is written: the same `Classifier` and `gateway.routing.decide`
the gateway runs, then `CostModel`. A step the gateway would reject (an unknown `model`, a
malformed hint) raises `TrafficLineError`, like a malformed line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.classify.classifier import Classifier
from gateway.core.errors import StepgateError
from gateway.core.money import format_usd
from gateway.core.profile import StepProfile
from gateway.core.types import Usage
from gateway.policy.models import Policy
from gateway.routing import AUTO, decide
from gateway.simulate.costing import CostModel
from gateway.simulate.traffic import TrafficLineError, TrafficStep

UsageSource = Literal["recorded", "estimated"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one policy sends a step, and what that costs."""

    route: str
    backend: str
    backend_type: str
    cost_nanos: int | None
    baseline_nanos: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "backend": self.backend,
            "backend_type": self.backend_type,
            "cost_usd": format_usd(self.cost_nanos) if self.cost_nanos is not None else None,
            "baseline_cost_usd": (
                format_usd(self.baseline_nanos) if self.baseline_nanos is not None else None
            ),
            "cost_nanos": self.cost_nanos,
            "baseline_cost_nanos": self.baseline_nanos,
        }


@dataclass(frozen=True, slots=True)
class StepResult:
    id: str
    line: int
    profile: StepProfile
    usage: Usage
    usage_source: UsageSource
    classify_us: float
    decisions: tuple[Decision, ...]  # one per policy, in the order given to the Replayer

    def to_json(self) -> dict[str, Any]:
        """The `--out` line: the first policy's decision flat, a compared one under `compare`."""
        first = self.decisions[0]
        out: dict[str, Any] = {
            "id": self.id,
            "line": self.line,
            "kind": self.profile.kind,
            "difficulty": self.profile.difficulty,
            **first.to_json(),
            "classify_us": round(self.classify_us, 1),
            "usage_source": self.usage_source,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
        }
        if len(self.decisions) > 1:
            out["compare"] = self.decisions[1].to_json()
        return out


@dataclass(frozen=True, slots=True)
class Scenario:
    """One policy under simulation, with its prices."""

    name: str
    policy: Policy
    costs: CostModel


@dataclass
class Replayer:
    classifier: Classifier
    scenarios: tuple[Scenario, ...]
    # Route every step as `model: auto` (traffic recorded before the gateway names provider
    # models); otherwise a model that is no route or alias is rejected, as the gateway would.
    force_auto: bool = False
    _types: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._types = [
            {name: b.type for name, b in s.policy.backends.items()} for s in self.scenarios
        ]

    def replay(self, step: TrafficStep) -> StepResult:
        started = time.perf_counter_ns()
        try:
            profile = self.classifier.classify(step.request, step.headers)
        except StepgateError as exc:
            raise TrafficLineError(
                step.line, f"the gateway would reject it: {exc.message}"
            ) from None
        classify_us = (time.perf_counter_ns() - started) / 1000
        source: UsageSource
        if step.usage is not None:
            usage, source = step.usage, "recorded"
        else:
            usage = Usage(profile.prompt_tokens, profile.expected_output_tokens)
            source = "estimated"
        model = AUTO if self.force_auto else step.request.model
        decisions = []
        for scenario, types in zip(self.scenarios, self._types, strict=True):
            try:
                decision = decide(
                    scenario.policy,
                    profile,
                    model=model,
                    team=step.team,
                    metadata=step.request.metadata,
                )
            except StepgateError as exc:
                raise TrafficLineError(
                    step.line, f"the gateway would reject it under {scenario.name}: {exc.message}"
                ) from None
            cost, baseline = scenario.costs.costs(decision.target, usage)
            decisions.append(
                Decision(decision.route, decision.target, types[decision.target], cost, baseline)
            )
        return StepResult(
            id=step.id,
            line=step.line,
            profile=profile,
            usage=usage,
            usage_source=source,
            classify_us=classify_us,
            decisions=tuple(decisions),
        )
