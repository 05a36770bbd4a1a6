"""Train the linear step model from labeled steps and measure it against a routing policy.

Data lines: `{"id", "request": {OpenAI chat body}, "headers"?: {...}, "kind", "tier"}` where
`tier` is what the step deserves: "fast" (the dLLM route) or "deep" (the AR model).
Training is full-batch Adam (numpy, a training-time dependency) on a multinomial logistic loss
(kind) plus a binary logistic loss (deep vs fast), over the same sparse features the classifier
scores; `calibrate` then fits the deep logit to P(deep) (`difficulty`) on held-out steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from connectors.families import family
from gateway.classify.classifier import Classifier
from gateway.classify.features import HASH_BITS, extract
from gateway.classify.model import DEEP, N_OUT, LinearModel
from gateway.core.profile import STEP_KINDS
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
    lang: str | None = None  # for reports only
    source: str | None = None
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class TrainOptions:
    iterations: int = 300
    learning_rate: float = 0.05
    l2: float = 1e-4
    # Extra loss weight on deep steps: sending a deep step to the fast route costs more than
    # the reverse (a wrong cheap answer vs. a slower right one).
    deep_weight: float = 2.0
    # Weights below this (largest output) are dropped: a smaller file that loads fast, at no
    # measured cost in accuracy on the grouped validation split.
    prune_below: float = 0.15
    # context n-grams, instruction n-grams, instruction prefixes, structure (see LinearModel)
    group_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)


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
            extra = {k: str(row[k]) for k in ("lang", "source", "domain") if row.get(k)}
            steps.append(Step(str(row.get("id", n)), request, headers, kind, tier, **extra))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{n}: {exc}") from exc
    return steps


Groups = tuple[float, float, float, float]


def _example(step: Step, groups: Groups) -> tuple[list[int], list[float]]:
    """The step's feature ids and values, exactly as `LinearModel.score` weighs them."""
    f = extract(step.request)
    ids: list[int] = []
    values: list[float] = []
    for group, g in zip((f.text_ids, f.instr_ids, f.prefix_ids), groups, strict=False):
        if group and g:
            ids += group
            values += [g / math.sqrt(len(group))] * len(group)
    ids += f.struct_ids
    values += [groups[3]] * len(f.struct_ids)
    return ids, values


def train(steps: Iterable[Step], options: TrainOptions | None = None) -> LinearModel:
    """Full-batch Adam on the kind softmax loss plus the (deep-weighted) binary deep loss.

    numpy is a training-time dependency only (the dev extra); serving never imports it.
    """
    import numpy as np

    opts = options or TrainOptions()
    steps = list(steps)
    if not steps:
        raise DataError("no labeled steps to train on")
    examples = [_example(s, opts.group_weights) for s in steps]
    n = len(steps)
    lengths = np.array([len(ids) for ids, _ in examples])
    rows = np.repeat(np.arange(n), lengths)
    raw_cols = np.fromiter((i for ids, _ in examples for i in ids), dtype=np.int64)
    vals = np.fromiter((v for _, vs in examples for v in vs), dtype=np.float64)
    feature_ids, cols = np.unique(raw_cols, return_inverse=True)
    dim = len(feature_ids)
    kinds = np.array([STEP_KINDS.index(s.kind) for s in steps])
    one_hot = np.zeros((n, DEEP))
    one_hot[np.arange(n), kinds] = 1.0
    deep = np.array([1.0 if s.tier == "deep" else 0.0 for s in steps])
    deep_w = np.where(deep > 0, opts.deep_weight, 1.0)
    weights = np.zeros((dim, N_OUT))
    bias = np.zeros(N_OUT)
    m_w, v_w = np.zeros_like(weights), np.zeros_like(weights)
    m_b, v_b = np.zeros_like(bias), np.zeros_like(bias)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for it in range(1, opts.iterations + 1):
        logits = np.empty((n, N_OUT))
        for j in range(N_OUT):
            logits[:, j] = np.bincount(rows, weights=vals * weights[cols, j], minlength=n)
        logits += bias
        kind_logits = logits[:, :DEEP]
        kind_logits = kind_logits - kind_logits.max(axis=1, keepdims=True)
        probs = np.exp(kind_logits)
        probs /= probs.sum(axis=1, keepdims=True)
        grad_out = np.empty((n, N_OUT))
        grad_out[:, :DEEP] = (probs - one_hot) / n
        p_deep = 1.0 / (1.0 + np.exp(-np.clip(logits[:, DEEP], -30, 30)))
        grad_out[:, DEEP] = (p_deep - deep) * deep_w / n
        grad_w = np.empty_like(weights)
        for j in range(N_OUT):
            grad_w[:, j] = np.bincount(cols, weights=vals * grad_out[rows, j], minlength=dim)
        grad_w += opts.l2 * weights
        grad_b = grad_out.sum(axis=0)
        lr = opts.learning_rate
        for param, grad, m, v in ((weights, grad_w, m_w, v_w), (bias, grad_b, m_b, v_b)):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            param -= lr * (m / (1 - beta1**it)) / (np.sqrt(v / (1 - beta2**it)) + eps)
    keep = np.abs(weights).max(axis=1) >= opts.prune_below
    kept = {
        int(fid): tuple(float(x) for x in row)
        for fid, row in zip(feature_ids[keep], weights[keep], strict=True)
    }
    return LinearModel(
        weights=kept,
        bias=tuple(float(b) for b in bias),
        hash_bits=HASH_BITS,
        group_weights=opts.group_weights,
    )


def calibrate(model: LinearModel, steps: Iterable[Step]) -> LinearModel:
    """Fit P(deep) = sigmoid(a * logit + b) on `steps` (ones the model was not trained on), by
    Newton's method on the log loss; returns the model with that calibration."""
    zs: list[float] = []
    ys: list[float] = []
    for step in steps:
        f = extract(step.request)
        zs.append(model.deep_logit(f.text_ids, f.instr_ids, f.struct_ids, f.prefix_ids))
        ys.append(1.0 if step.tier == "deep" else 0.0)
    if not zs or len(set(ys)) < 2:
        raise DataError("calibration needs held-out steps of both tiers")
    a, b = 1.0, 0.0
    for _ in range(50):
        ga = gb = haa = hab = hbb = 0.0
        for z, y in zip(zs, ys, strict=True):
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, a * z + b))))
            r = p - y
            w = max(p * (1 - p), 1e-9)
            ga += r * z
            gb += r
            haa += w * z * z
            hab += w * z
            hbb += w
        haa += 1e-6
        hbb += 1e-6
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) + abs(db) < 1e-9:
            break
    return LinearModel(
        weights=model.weights,
        bias=model.bias,
        hash_bits=model.hash_bits,
        calibration=(a, b),
        group_weights=model.group_weights,
    )


def is_fast_route(policy: Policy, target: str) -> bool:
    backend = policy.backends.get(target)
    return backend is not None and family(backend.type).tier == "fast"


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
