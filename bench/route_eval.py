"""Score Stepgate's step router on labeled steps: tier and kind accuracy, confusions, breakdowns.

Input: JSONL, one labeled step a line (data/steps/*.jsonl, the steps-ood set, the TwinRouterBench
export of bench/twinrouter.py):

    {"id", "request": {OpenAI chat body}, "headers"?: {...}, "team"?, "kind"?, "tier"?,
     "lang"?, "domain"?, "source"?, "shape"?}

`tier` is what the step deserves: "fast" (the dLLM route) or "deep" (the AR model); `kind` is one
of the seven step kinds. A line may lack either; its figures are then left out of that count.
`shape` is derived when absent, by the steps-ood rule: "multi_turn" when the conversation already
holds an assistant turn or a tool result, else "single".

The prediction is the gateway's own decision, made by `predict_tier`: the shipped `Classifier`
(`classify(request, headers)` -> StepProfile), then `gateway.routing.decide` under the policy with
`model: "auto"` (as `stepgate simulate --auto` and `gateway.classify.train.evaluate` do), and the
step counts as fast when the chosen route's first candidate is a `dllm` backend
(`gateway.classify.train.is_fast_route`). Swap the predictor to score another router; anything
that maps a `LabeledStep` to a `Prediction` will do.

Report: tier accuracy, deep->fast rate (share of deep-labeled steps predicted fast: the dangerous
error), fast->deep rate, the 2x2 tier confusion, kind accuracy and the 7x7 kind confusion, and the
tier figures per kind, lang, source, domain and shape. When predictions carry a probability of
"deep" (`Prediction.p_deep`; the shipped classifier's `StepProfile.difficulty`), also its AUROC for
the deep label and the curve of a plain threshold on it (what a difficulty cut alone would do).

    python bench/route_eval.py --policy policies/support.yaml --steps FILE.jsonl \
        [--steps FILE2.jsonl ...] [--combined] [--json out.json]

Import with bench/ on `sys.path`, as the other bench scripts import each other.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from gateway.classify.classifier import Classifier
from gateway.classify.train import is_fast_route
from gateway.core.errors import StepgateError
from gateway.core.profile import STEP_KINDS
from gateway.core.types import ChatRequest
from gateway.policy.loader import PolicyLoadError, load_policy
from gateway.policy.models import Policy
from gateway.routing import AUTO, decide
from gateway.simulate.traffic import TrafficLineError, parse_line

TIERS = ("fast", "deep")
GROUPS = ("kind", "lang", "source", "domain", "shape")
CURVE_STEP = 0.05


class StepsError(ValueError):
    """A labeled-steps file is unreadable or has a malformed line (the message names it)."""


@dataclass(frozen=True, slots=True)
class LabeledStep:
    id: str
    request: ChatRequest
    headers: Mapping[str, str]  # lower-case names
    team: str | None
    kind: str | None  # labeled step kind
    tier: str | None  # labeled tier: "fast" | "deep"
    groups: Mapping[str, str]  # lang / domain / source / shape, where the line gives them


@dataclass(frozen=True, slots=True)
class Prediction:
    tier: str  # "fast" | "deep"
    kind: str | None = None
    p_deep: float | None = None  # grows with "needs the deep tier"; None: no curve
    route: str | None = None
    backend: str | None = None


Predictor = Callable[[LabeledStep], Prediction]


def predict_tier(step: LabeledStep, *, policy: Policy, classifier: Classifier) -> Prediction:
    """Where the gateway sends `step` under `policy`, and whether that is the fast tier.

    Raises StepgateError where the gateway would reject the request (a malformed hint).
    """
    profile = classifier.classify(step.request, step.headers)
    decision = decide(policy, profile, model=AUTO, team=step.team, metadata=step.request.metadata)
    fast = is_fast_route(policy, decision.target)
    return Prediction(
        tier="fast" if fast else "deep",
        kind=profile.kind,
        p_deep=profile.difficulty,
        route=decision.route,
        backend=decision.target,
    )


def stepgate_predictor(policy: Policy, classifier: Classifier | None = None) -> Predictor:
    """`predict_tier` bound to a policy and the shipped classifier (or the one given)."""
    return partial(predict_tier, policy=policy, classifier=classifier or Classifier.load())


# --- reading ---------------------------------------------------------------------------------


def parse_step(raw: bytes, *, source: str, line: int) -> LabeledStep:
    """One labeled line. The request and headers are read as `stepgate simulate` reads them."""
    try:
        traffic = parse_line(raw, line)
    except TrafficLineError as exc:
        raise StepsError(f"{source}:{line}: {exc.message}") from None
    data = orjson.loads(raw)
    kind, tier = data.get("kind"), data.get("tier")
    if kind is not None and kind not in STEP_KINDS:
        raise StepsError(f"{source}:{line}: kind {kind!r} is not one of {', '.join(STEP_KINDS)}")
    if tier is not None and tier not in TIERS:
        raise StepsError(f"{source}:{line}: tier {tier!r} is not one of {', '.join(TIERS)}")
    groups = {g: str(data[g]) for g in GROUPS if g != "kind" and data.get(g) is not None}
    groups.setdefault("shape", derived_shape(traffic.request))
    return LabeledStep(
        id=traffic.id,
        request=traffic.request,
        headers=traffic.headers,
        team=traffic.team,
        kind=kind,
        tier=tier,
        groups=groups,
    )


def derived_shape(request: ChatRequest) -> str:
    """steps-ood's rule: multi_turn once the conversation holds an assistant turn or tool result."""
    later = any(m.role in ("assistant", "tool", "function") for m in request.messages)
    return "multi_turn" if later else "single"


def read_steps(path: Path) -> list[LabeledStep]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise StepsError(f"{path}: cannot read ({exc.strerror})") from exc
    return [
        parse_step(raw, source=str(path), line=n)
        for n, raw in enumerate(lines, start=1)
        if raw.strip()
    ]


# --- figures ---------------------------------------------------------------------------------


def tier_figures(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """(labeled, predicted) tier pairs -> counts, rates and the 2x2 confusion (rows: labeled)."""
    counts = Counter(pairs)
    n = sum(counts.values())
    deep = counts["deep", "fast"] + counts["deep", "deep"]
    fast = counts["fast", "fast"] + counts["fast", "deep"]
    correct = counts["fast", "fast"] + counts["deep", "deep"]
    return {
        "steps": n,
        "accuracy": _rate(correct, n),
        "deep_steps": deep,
        "deep_to_fast": counts["deep", "fast"],
        "deep_to_fast_rate": _rate(counts["deep", "fast"], deep),
        "fast_steps": fast,
        "fast_to_deep": counts["fast", "deep"],
        "fast_to_deep_rate": _rate(counts["fast", "deep"], fast),
        "predicted_fast_share": _rate(counts["fast", "fast"] + counts["deep", "fast"], n),
        "confusion": {
            "labels": list(TIERS),
            "rows": [[counts[want, got] for got in TIERS] for want in TIERS],
        },
    }


def kind_figures(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """(labeled, predicted) kind pairs -> accuracy and the 7x7 confusion (rows: labeled)."""
    counts = Counter(pairs)
    n = sum(counts.values())
    correct = sum(counts[k, k] for k in STEP_KINDS)
    return {
        "steps": n,
        "accuracy": _rate(correct, n),
        "confusion": {
            "labels": list(STEP_KINDS),
            "rows": [[counts[want, got] for got in STEP_KINDS] for want in STEP_KINDS],
        },
    }


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(score of a random positive > a random negative), ties counting half. None if a side is
    empty. Rank form (Mann-Whitney U) with average ranks for ties: O(n log n)."""
    if not positives or not negatives:
        return None
    scored = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum = 0.0
    i = 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2  # ranks i+1 .. j share their mean
        rank_sum += mean_rank * sum(label for _, label in scored[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return round((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), 4)


def probability_curve(labeled: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """(labeled tier, p_deep) -> AUROC for "deep" and, per threshold t, the figures of the plain
    rule "deep when p_deep >= t"."""
    points = []
    steps = round(1 / CURVE_STEP)
    for i in range(steps + 1):
        t = round(i * CURVE_STEP, 4)
        fig = tier_figures((tier, "deep" if p >= t else "fast") for tier, p in labeled)
        points.append(
            {
                "threshold": t,
                "accuracy": fig["accuracy"],
                "deep_to_fast_rate": fig["deep_to_fast_rate"],
                "fast_to_deep_rate": fig["fast_to_deep_rate"],
                "predicted_fast_share": fig["predicted_fast_share"],
            }
        )
    return {
        "auroc_deep": auroc(
            [p for tier, p in labeled if tier == "deep"],
            [p for tier, p in labeled if tier == "fast"],
        ),
        "points": points,
    }


def evaluate(steps: Sequence[LabeledStep], predict: Predictor) -> dict[str, Any]:
    """Every figure for `steps` under `predict` (a JSON-ready dict)."""
    predictions = [(step, _predict(step, predict)) for step in steps]
    tiered = [(s, p) for s, p in predictions if s.tier is not None]
    kinded = [(s, p) for s, p in predictions if s.kind is not None and p.kind is not None]
    by: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        buckets: dict[str, list[tuple[str, str]]] = {}
        for s, p in tiered:
            value = s.kind if group == "kind" else s.groups.get(group)
            if value is not None:
                buckets.setdefault(value, []).append((_tier(s), p.tier))
        if buckets:
            by[group] = {v: _brief(tier_figures(pairs)) for v, pairs in sorted(buckets.items())}
    scored = [(_tier(s), p.p_deep) for s, p in tiered if p.p_deep is not None]
    curve = None
    if tiered and len(scored) == len(tiered):
        curve = probability_curve([(tier, p) for tier, p in scored if p is not None])
    return {
        "steps": len(steps),
        "tier": tier_figures((_tier(s), p.tier) for s, p in tiered) if tiered else None,
        "kind": kind_figures((s.kind or "", p.kind or "") for s, p in kinded) if kinded else None,
        "by": by,
        "curve": curve,
        "routes": dict(sorted(Counter(p.route or "?" for _, p in predictions).items())),
    }


def _predict(step: LabeledStep, predict: Predictor) -> Prediction:
    try:
        return predict(step)
    except StepgateError as exc:
        raise StepsError(f"step {step.id}: the gateway would reject it: {exc.message}") from None


def _tier(step: LabeledStep) -> str:
    assert step.tier is not None
    return step.tier


def _brief(fig: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fig.items() if k != "confusion"}


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


# --- rendering -------------------------------------------------------------------------------


def render(name: str, report: Mapping[str, Any]) -> str:
    out = [f"== {name}: {report['steps']} steps"]
    tier = report["tier"]
    if tier is not None:
        out.append(
            f"tier accuracy {_pct(tier['accuracy'])}   deep->fast {_pct(tier['deep_to_fast_rate'])}"
            f" ({tier['deep_to_fast']}/{tier['deep_steps']})   fast->deep "
            f"{_pct(tier['fast_to_deep_rate'])} ({tier['fast_to_deep']}/{tier['fast_steps']})"
            f"   routed fast {_pct(tier['predicted_fast_share'])}"
        )
        out.append(_matrix("labeled \\ predicted", tier["confusion"]))
    kind = report["kind"]
    if kind is not None:
        out.append(f"kind accuracy {_pct(kind['accuracy'])} ({kind['steps']} steps)")
        out.append(_matrix("labeled \\ predicted", kind["confusion"]))
    for group, buckets in report["by"].items():
        rows = [
            [
                value,
                str(f["steps"]),
                _pct(f["accuracy"]),
                f"{_pct(f['deep_to_fast_rate'])} ({f['deep_to_fast']}/{f['deep_steps']})",
                f"{_pct(f['fast_to_deep_rate'])} ({f['fast_to_deep']}/{f['fast_steps']})",
                _pct(f["predicted_fast_share"]),
            ]
            for value, f in buckets.items()
        ]
        head = [group, "steps", "tier acc", "deep->fast", "fast->deep", "routed fast"]
        out.append(_table(head, rows))
    curve = report["curve"]
    if curve is not None:
        out.append(f"p_deep AUROC for the deep label: {curve['auroc_deep']}")
        rows = [
            [
                f"{p['threshold']:.2f}",
                _pct(p["accuracy"]),
                _pct(p["deep_to_fast_rate"]),
                _pct(p["fast_to_deep_rate"]),
                _pct(p["predicted_fast_share"]),
            ]
            for p in curve["points"][::2]
        ]
        out.append(_table(["deep if p>=", "tier acc", "deep->fast", "fast->deep", "fast"], rows))
    out.append("routes: " + ", ".join(f"{k} {v}" for k, v in report["routes"].items()))
    return "\n".join(out)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _matrix(corner: str, m: Mapping[str, Any]) -> str:
    labels = m["labels"]
    rows = [[lab, *map(str, row)] for lab, row in zip(labels, m["rows"], strict=True)]
    return _table([corner, *labels], rows)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- CLI -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--policy", type=Path, default=Path("policies/support.yaml"))
    parser.add_argument("--steps", type=Path, action="append", required=True, help="JSONL")
    parser.add_argument("--combined", action="store_true", help="also score all files as one")
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.policy)
    except PolicyLoadError as exc:
        print(f"route_eval: {args.policy} is invalid:\n{exc}", file=sys.stderr)
        return 1
    predict = stepgate_predictor(policy)
    reports: dict[str, Any] = {}
    try:
        loaded = {str(path): read_steps(path) for path in args.steps}
        for name, steps in loaded.items():
            reports[name] = evaluate(steps, predict)
        if args.combined and len(loaded) > 1:
            reports["combined"] = evaluate([s for v in loaded.values() for s in v], predict)
    except StepsError as exc:
        print(f"route_eval: {exc}", file=sys.stderr)
        return 1
    print("\n\n".join(render(name, report) for name, report in reports.items()))
    if args.json is not None:
        doc = {"policy": str(args.policy), "predictor": "stepgate", "reports": reports}
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
