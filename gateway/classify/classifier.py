"""Request -> StepProfile. Explicit hints win; then structure and a linear model over n-grams.

Evidence order (DESIGN.md, "Step kinds and the classifier"):
1. hints: header `x-step-kind` / `x-latency-budget-ms` or the same keys in `metadata`;
2. structure: response_format, answer sets, tools, max_tokens, turns, length, code/log blocks;
3. the linear model (gateway.classify.model) over hashed n-grams plus the structural features.
`evidence` names the source that decided `kind`: a hint, or whichever of the structural and the
n-gram features carried more of the winning kind's margin.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gateway.classify.features import StepFeatures, extract
from gateway.classify.model import LinearModel
from gateway.core.errors import BadRequest
from gateway.core.profile import STEP_KINDS, Evidence, StepKind, StepProfile
from gateway.core.types import ChatRequest

HINT_KIND_HEADER = "x-step-kind"
HINT_BUDGET_HEADER = "x-latency-budget-ms"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "policies" / "classifier_weights.json"

# Typical answer size per kind when the caller sets no cap (tokens).
_OUTPUT_TOKENS: dict[StepKind, int] = {
    "classify": 8,
    "extract": 120,
    "format": 250,
    "lookup": 150,
    "summarize": 250,
    "draft": 350,
    "reason": 500,
}


class Classifier:
    """Stateless after construction; one instance serves every request concurrently."""

    def __init__(self, model: LinearModel | None = None) -> None:
        self.model = model if model is not None else LinearModel.load(DEFAULT_WEIGHTS)

    @classmethod
    def load(cls, weights_path: Path | None = None) -> Classifier:
        """Classifier with the weights at `weights_path` (default: the shipped weights).

        Raises gateway.classify.model.WeightsError when the file is missing or malformed.
        """
        return cls(LinearModel.load(weights_path or DEFAULT_WEIGHTS))

    def classify(self, request: ChatRequest, headers: Mapping[str, str]) -> StepProfile:
        """`headers` keys are lower-case. Raises BadRequest for a malformed hint."""
        meta = request.metadata or {}
        hint = headers.get(HINT_KIND_HEADER) or meta.get("X-Step-Kind") or meta.get("step_kind")
        budget = _parse_budget(
            headers.get(HINT_BUDGET_HEADER)
            or meta.get("X-Latency-Budget-Ms")
            or meta.get("latency_budget_ms")
        )
        hinted = _parse_kind(hint) if hint else None

        try:
            features = extract(request)
        except Exception as exc:  # a shape the features do not handle: the safe tier
            return _fallback(hinted, budget, f"fallback:unreadable step ({type(exc).__name__})")
        if "no_text" in features.structure:
            return _fallback(hinted, budget, "fallback:no text to classify", features)
        scores = self.model.score(
            features.text_ids, features.instr_ids, features.struct_ids, features.prefix_ids
        )
        signals = [f"structure:{s}" for s in features.structure]

        kind: StepKind
        evidence: Evidence
        if hinted is not None:
            kind, evidence = hinted, "hint"
            signals.insert(0, f"hint:kind={kind}")
        else:
            kind = scores.kind
            by_structure = scores.struct_margin > max(scores.text_margin, 0.0)
            evidence = "structure" if by_structure else "model"
        if budget is not None:
            signals.insert(0, f"hint:latency_budget_ms={budget}")
        signals.append(f"model:kind={scores.kind} p={scores.p_kind:.2f}")
        signals.append(f"model:runner_up={scores.runner_up} p={scores.p_runner_up:.2f}")
        signals.append(f"model:deep p={scores.p_deep:.2f}")

        limit = features.output_limit
        expected = _OUTPUT_TOKENS[kind]
        return StepProfile(
            kind=kind,
            difficulty=round(scores.p_deep, 3),
            latency_budget_ms=budget,
            prompt_tokens=features.prompt_tokens,
            expected_output_tokens=min(limit, expected) if limit else expected,
            expects_json=features.expects_json,
            has_tools=features.has_tools,
            language=features.language,
            turns=features.turns,
            evidence=evidence,
            signals=tuple(signals),
        )


def _fallback(
    hinted: StepKind | None,
    budget: int | None,
    why: str,
    features: StepFeatures | None = None,
) -> StepProfile:
    """A step the model cannot judge: P(deep) = 1, so only a deep route takes it."""
    kind: StepKind = hinted or "reason"
    signals = [why] + ([f"hint:kind={hinted}"] if hinted else [])
    if budget is not None:
        signals.insert(0, f"hint:latency_budget_ms={budget}")
    return StepProfile(
        kind=kind,
        difficulty=1.0,
        latency_budget_ms=budget,
        prompt_tokens=features.prompt_tokens if features else 0,
        expected_output_tokens=_OUTPUT_TOKENS[kind],
        expects_json=features.expects_json if features else False,
        has_tools=features.has_tools if features else False,
        language=features.language if features else "en",
        turns=features.turns if features else 0,
        evidence="hint" if hinted else "fallback",
        signals=tuple(signals),
    )


def _parse_kind(value: str) -> StepKind:
    kind = value.strip().lower()
    for known in STEP_KINDS:
        if kind == known:
            return known
    raise BadRequest(
        f"X-Step-Kind {value!r} is not a step kind; use one of {', '.join(STEP_KINDS)}",
        param="X-Step-Kind",
    )


def _parse_budget(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        budget = int(value)
    except ValueError:
        raise BadRequest(
            f"X-Latency-Budget-Ms must be a whole number of milliseconds, got {value!r}",
            param="X-Latency-Budget-Ms",
        ) from None
    if budget <= 0:
        raise BadRequest("X-Latency-Budget-Ms must be positive", param="X-Latency-Budget-Ms")
    return budget
