"""What `stepgate classifier eval` reports: tier and kind figures under a policy, broken down,
and the operating-point curve of P(deep).

Tier = whether the policy, deciding on the classifier's profile with `model: "auto"`, targets a
fast (dLLM) backend. The curve replays the same decisions with every route's P(deep) cap
(`max_p_deep`, `difficulty`) lifted and one threshold applied instead, so an operator sees what
each `max_p_deep` would give: the share of steps the dLLM serves against the deep->fast rate
(deep-labeled steps sent to the fast tier: the dangerous error).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.classify.classifier import Classifier
from gateway.classify.train import Step, is_fast_route
from gateway.core.profile import STEP_KINDS
from gateway.policy.models import Policy
from gateway.routing import decide

CURVE = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


@dataclass(frozen=True, slots=True)
class Judged:
    step: Step
    kind: str  # predicted
    tier: str  # predicted under the policy
    p_deep: float
    fast_without_cap: bool  # the policy would pick a fast route with no P(deep) cap


def judge(classifier: Classifier, steps: Iterable[Step], policy: Policy) -> list[Judged]:
    uncapped = _uncapped(policy)
    out = []
    for step in steps:
        profile = classifier.classify(step.request, step.headers)
        meta = step.request.metadata
        decision = decide(policy, profile, model="auto", metadata=meta)
        free = decide(uncapped, profile, model="auto", metadata=meta)
        out.append(
            Judged(
                step,
                profile.kind,
                "fast" if is_fast_route(policy, decision.target) else "deep",
                profile.difficulty,
                is_fast_route(uncapped, free.target),
            )
        )
    return out


def _uncapped(policy: Policy) -> Policy:
    routes = [
        r
        if r.match is None
        else r.model_copy(
            update={"match": r.match.model_copy(update={"max_p_deep": None, "difficulty": None})}
        )
        for r in policy.routes
    ]
    return policy.model_copy(update={"routes": routes})


def tier_line(judged: Sequence[Judged]) -> str:
    n = len(judged)
    if not n:
        return "0 steps"
    deep = [j for j in judged if j.step.tier == "deep"]
    fast = [j for j in judged if j.step.tier == "fast"]
    d2f = sum(j.tier == "fast" for j in deep)
    f2d = sum(j.tier == "deep" for j in fast)
    ok = sum(j.tier == j.step.tier for j in judged)
    kinds = sum(j.kind == j.step.kind for j in judged)
    served = sum(j.tier == "fast" for j in judged)
    return (
        f"{n} steps  tier accuracy {ok / n:.1%}  deep->fast {d2f}/{len(deep)} "
        f"({_rate(d2f, len(deep))})  fast->deep {f2d}/{len(fast)} ({_rate(f2d, len(fast))})  "
        f"served fast {served / n:.1%}  kind accuracy {kinds / n:.1%}"
    )


def breakdown(judged: Sequence[Judged], field: str) -> list[str]:
    groups: dict[str, list[Judged]] = {}
    for j in judged:
        value = getattr(j.step, field, None) or "-"
        groups.setdefault(str(value), []).append(j)
    if len(groups) < 2:
        return []
    lines = [f"by {field}:"]
    for value in sorted(groups):
        lines.append(f"  {value:<12} {tier_line(groups[value])}")
    return lines


def confusion(judged: Sequence[Judged]) -> list[str]:
    tiers = Counter((j.step.tier, j.tier) for j in judged)
    lines = ["tier (labeled \\ routed):   fast   deep"]
    for t in ("fast", "deep"):
        lines.append(f"  {t:<24}{tiers[(t, 'fast')]:>6} {tiers[(t, 'deep')]:>6}")
    kinds = Counter((j.step.kind, j.kind) for j in judged)
    lines.append("kind (labeled \\ predicted): " + " ".join(f"{k[:6]:>6}" for k in STEP_KINDS))
    for k in STEP_KINDS:
        lines.append(f"  {k:<26}" + " ".join(f"{kinds[(k, p)]:>6}" for p in STEP_KINDS))
    return lines


def curve(judged: Sequence[Judged], thresholds: Sequence[float] = CURVE) -> list[str]:
    n = len(judged)
    deep = [j for j in judged if j.step.tier == "deep"]
    lines = ["max_p_deep  served fast  deep->fast  tier accuracy"]
    for t in thresholds:
        fast = [j.fast_without_cap and j.p_deep <= t for j in judged]
        served = sum(fast)
        d2f = sum(f for f, j in zip(fast, judged, strict=True) if j.step.tier == "deep")
        ok = sum(
            (f and j.step.tier == "fast") or (not f and j.step.tier == "deep")
            for f, j in zip(fast, judged, strict=True)
        )
        lines.append(
            f"{t:>10.2f}  {served / n:>11.1%}  {_rate(d2f, len(deep)):>10}  {ok / n:>13.1%}"
        )
    return lines


def _rate(num: int, den: int) -> str:
    return f"{num / den:.1%}" if den else "-"
