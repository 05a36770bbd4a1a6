"""Train the linear step model from labeled steps and measure it against a routing policy.

Data lines: `{"id", "request": {OpenAI chat body}, "headers"?: {...}, "kind", "tier"}` where
`tier` is what the step deserves: "fast" (the dLLM route) or "deep" (the AR model).
Training is pure Python SGD on a multinomial logistic loss (kind) plus a binary logistic loss
(deep vs fast, which becomes `difficulty`), over the same sparse features the classifier scores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.classify.classifier import Classifier
from gateway.classify.features import HASH_BITS, extract
from gateway.classify.model import DEEP, N_OUT, LinearModel
from gateway.classify.profile import STEP_KINDS
from gateway.core.types import ChatRequest
from gateway.policy.models import Policy
from gateway.routing import decide

TIERS = ("fast", "deep")


class DataError(ValueError):
    """A labeled-steps file is unreadable or has a malformed line (message names the line)."""


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    request: ChatRequest
    headers: Mapping[str, str]
    kind: str
    tier: str


@dataclass(frozen=True, slots=True)
class TrainOptions:
    epochs: int = 24
    learning_rate: float = 0.6
    l2: float = 1e-5
    # Extra loss weight on deep steps: sending a deep step to the fast route costs more than
    # the reverse (a wrong cheap answer vs. a slower right one).
    deep_weight: float = 2.0
    prune_below: float = 2e-3
    seed: int = 7


@dataclass(frozen=True, slots=True)
class EvalReport:
    steps: int
    kind_accuracy: float
    tier_accuracy: float
    deep_steps: int
    deep_to_fast: int  # deep-labeled steps the policy would send to a dLLM route
    fast_to_deep: int
    misses: tuple[tuple[str, str, str], ...]  # (id, labeled kind/tier, predicted kind/tier)

    @property
    def deep_to_fast_rate(self) -> float:
        """Share of deep-labeled steps sent to the fast tier."""
        return self.deep_to_fast / self.deep_steps if self.deep_steps else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "kind_accuracy": round(self.kind_accuracy, 4),
            "tier_accuracy": round(self.tier_accuracy, 4),
            "deep_steps": self.deep_steps,
            "deep_to_fast": self.deep_to_fast,
            "deep_to_fast_rate": round(self.deep_to_fast_rate, 4),
            "fast_to_deep": self.fast_to_deep,
        }


def read_steps(path: Path) -> list[Step]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    steps = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            kind, tier = row["kind"], row["tier"]
            if kind not in STEP_KINDS or tier not in TIERS:
                raise ValueError(f"kind {kind!r} / tier {tier!r} not in {STEP_KINDS} / {TIERS}")
            headers = {str(k).lower(): str(v) for k, v in (row.get("headers") or {}).items()}
            request = ChatRequest.model_validate(row["request"])
            steps.append(Step(str(row.get("id", n)), request, headers, kind, tier))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{n}: {exc}") from exc
    return steps


def train(steps: Iterable[Step], options: TrainOptions | None = None) -> LinearModel:
    opts = options or TrainOptions()
    examples = []
    for step in steps:
        f = extract(step.request)
        t_scale = 1.0 / math.sqrt(len(f.text_ids)) if f.text_ids else 0.0
        i_scale = 1.0 / math.sqrt(len(f.instr_ids)) if f.instr_ids else 0.0
        xs = (
            [(i, t_scale) for i in f.text_ids]
            + [(i, i_scale) for i in f.instr_ids]
            + [(i, 1.0) for i in f.struct_ids]
        )
        examples.append((xs, STEP_KINDS.index(step.kind), 1.0 if step.tier == "deep" else 0.0))
    rng = random.Random(opts.seed)
    weights: dict[int, list[float]] = {}
    bias = [0.0] * N_OUT
    kinds = range(DEEP)
    for epoch in range(opts.epochs):
        rng.shuffle(examples)
        lr = opts.learning_rate / (1.0 + 0.25 * epoch)
        decay = 1.0 - lr * opts.l2
        for xs, label, deep in examples:
            rows = [weights.setdefault(i, [0.0] * N_OUT) for i, _ in xs]
            logits = bias[:]
            for row, (_, v) in zip(rows, xs, strict=True):
                for j in range(N_OUT):
                    logits[j] += row[j] * v
            peak = max(logits[:DEEP])
            exps = [math.exp(logits[j] - peak) for j in kinds]
            total = sum(exps)
            grads = [exps[j] / total - (1.0 if j == label else 0.0) for j in kinds]
            p_deep = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logits[DEEP]))))
            grads.append((p_deep - deep) * (opts.deep_weight if deep else 1.0))
            for j in range(N_OUT):
                bias[j] -= lr * grads[j]
            for row, (_, v) in zip(rows, xs, strict=True):
                for j in range(N_OUT):
                    row[j] = row[j] * decay - lr * grads[j] * v
    kept = {i: tuple(w) for i, w in weights.items() if max(abs(x) for x in w) >= opts.prune_below}
    return LinearModel(weights=kept, bias=tuple(bias), hash_bits=HASH_BITS)


def is_fast_route(policy: Policy, target: str) -> bool:
    backend = policy.backends.get(target)
    return backend is not None and backend.type == "dllm"


def evaluate(classifier: Classifier, steps: Iterable[Step], policy: Policy) -> EvalReport:
    """Tier = whether `decide(policy, profile, model="auto")` targets a dLLM backend."""
    n = kind_ok = tier_ok = deep = deep_fast = fast_deep = 0
    misses = []
    for step in steps:
        profile = classifier.classify(step.request, step.headers)
        decision = decide(policy, profile, model="auto", metadata=step.request.metadata)
        tier = "fast" if is_fast_route(policy, decision.target) else "deep"
        n += 1
        kind_ok += profile.kind == step.kind
        tier_ok += tier == step.tier
        if step.tier == "deep":
            deep += 1
            deep_fast += tier == "fast"
        elif tier == "deep":
            fast_deep += 1
        if tier != step.tier or profile.kind != step.kind:
            misses.append(
                (
                    step.id,
                    f"{step.kind}/{step.tier}",
                    f"{profile.kind}/{tier} d={profile.difficulty}",
                )
            )
    return EvalReport(
        steps=n,
        kind_accuracy=kind_ok / n if n else 0.0,
        tier_accuracy=tier_ok / n if n else 0.0,
        deep_steps=deep,
        deep_to_fast=deep_fast,
        fast_to_deep=fast_deep,
        misses=tuple(misses),
    )
