"""The step router on steps it was never trained on: loose floors a regression would break,
whole-step features, the safe fallback, and the P(deep) operating point.

Figures measured when these floors were set (policies/support.yaml, max_p_deep 0.2):
steps-ood (300, hand-labeled, outside the repo) tier 73.3%, deep->fast 5.7%, kind 70.3%;
bench/data/ood-written (336, written to a spec without reading the generator) tier 78.3%,
deep->fast 7.6%, kind 76.2%; the grouped test split of data/steps/assemble.py (2,506 steps)
tier 75.0%, deep->fast 8.4%, kind 71.1%. Evaluation sets only: never trained or tuned on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.classify.classifier import Classifier
from gateway.classify.model import LinearModel, WeightsError
from gateway.classify.train import Step, evaluate, read_steps
from gateway.core.types import ChatRequest
from gateway.policy.loader import load_policy
from gateway.routing import decide

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "support.yaml"
WRITTEN = ROOT / "bench" / "data" / "ood-written" / "steps.jsonl"
SHARED_OOD = ROOT.parent / "shared" / "data" / "steps-ood" / "steps.jsonl"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load()


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_policy(POLICY)


def test_floor_on_the_independently_written_set(classifier: Classifier, policy: Any) -> None:
    report = evaluate(classifier, read_steps(WRITTEN), policy)
    assert report.steps >= 300
    assert report.tier_accuracy >= 0.74
    assert report.deep_to_fast_rate <= 0.10
    assert report.kind_accuracy >= 0.70


@pytest.mark.skipif(not SHARED_OOD.exists(), reason="the shared steps-ood set is not here")
def test_floor_on_the_hand_labeled_ood_set(classifier: Classifier, policy: Any) -> None:
    report = evaluate(classifier, read_steps(SHARED_OOD), policy)
    assert report.tier_accuracy >= 0.68
    assert report.deep_to_fast_rate <= 0.10
    assert report.kind_accuracy >= 0.66


def test_floor_on_the_template_grouped_split(classifier: Classifier, policy: Any) -> None:
    sys.path.insert(0, str(ROOT / "data" / "steps"))
    try:
        import assemble
    finally:
        sys.path.pop(0)
    rows = assemble.assemble()["test"]
    steps = [
        Step(
            r["id"],
            ChatRequest.model_validate(r["request"]),
            r.get("headers", {}),
            r["kind"],
            r["tier"],
        )
        for r in rows
    ]
    assert len(steps) >= 1000
    report = evaluate(classifier, steps, policy)
    assert report.tier_accuracy >= 0.70
    assert report.deep_to_fast_rate <= 0.14
    assert report.kind_accuracy >= 0.66


def _req(messages: list[dict[str, Any]], **extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "auto", "messages": messages, **extra})


def test_the_current_step_decides_not_the_original_task(classifier: Classifier) -> None:
    """One conversation at two points: first the agent tags the request, later it must write
    the customer an answer after a tool result. The last user message is the same."""
    history = [
        {"role": "system", "content": "You are the support agent for Parcelly."},
        {"role": "user", "content": "My parcel 7781-XZ never arrived and I want my money back."},
    ]
    tag = {"role": "system", "content": "Tag the request: one of refund, tracking, other."}
    first = _req([*history, tag])
    call = {"id": "c1", "type": "function",
            "function": {"name": "get_shipment", "arguments": '{"id": "7781-XZ"}'}}  # fmt: skip
    plan = {
        "role": "assistant",
        "content": "Let me check the shipment and then write a reply explaining the refund "
        "options to the customer.",
        "tool_calls": [call],
    }
    result = {
        "role": "tool",
        "tool_call_id": "c1",
        "content": '{"status": "lost", "insured": true, "value_eur": 84.5}',
    }
    later = _req([*history, plan, result])
    a = classifier.classify(first, {})
    b = classifier.classify(later, {})
    assert a.kind == "classify"
    assert "structure:last_role:tool" in b.signals and "structure:plan" in b.signals
    assert "structure:called:shipment" in b.signals
    assert b.kind != a.kind
    assert b.difficulty > a.difficulty


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "https://example.com/receipt.png"}}],
        "",
    ],
)
def test_a_step_without_text_goes_to_the_safe_tier(
    classifier: Classifier, policy: Any, content: Any
) -> None:
    profile = classifier.classify(_req([{"role": "user", "content": content}]), {})
    assert profile.difficulty == 1.0
    assert profile.evidence == "fallback"
    assert any(s.startswith("fallback:") for s in profile.signals)
    assert decide(policy, profile, model="auto").route == "deep"


def test_a_kind_hint_still_wins_and_the_fallback_keeps_it(classifier: Classifier) -> None:
    request = _req([{"role": "user", "content": ""}])
    profile = classifier.classify(request, {"x-step-kind": "classify"})
    assert profile.kind == "classify" and profile.evidence == "hint"
    assert profile.difficulty == 1.0  # no text: still the safe tier


def test_max_p_deep_is_the_operating_point(classifier: Classifier, tmp_path: Path) -> None:
    request = _req([{"role": "user", "content": "Is this about billing or shipping? Label only."
                     "\n\nI was charged twice for order 5512."}])  # fmt: skip
    profile = classifier.classify(request, {})
    text = POLICY.read_text()
    assert "max_p_deep: 0.2" in text
    strict = tmp_path / "strict.yaml"
    strict.write_text(text.replace("max_p_deep: 0.2", "max_p_deep: 0.0"))
    loose = tmp_path / "loose.yaml"
    loose.write_text(text.replace("max_p_deep: 0.2", "max_p_deep: 1.0"))
    assert 0.0 < profile.difficulty < 1.0
    refused = decide(load_policy(strict), profile, model="auto")
    assert refused.route == "deep"
    why = dict(refused.skipped)["fast-structured"]
    assert why.startswith("P(deep) ") and why.endswith("above max_p_deep 0.0")
    assert decide(load_policy(loose), profile, model="auto").route == "fast-structured"


def test_the_readme_example_is_a_classify_step(classifier: Classifier, policy: Any) -> None:
    text = (
        "Is this ticket about billing or shipping? I ordered a lamp two weeks ago and the "
        "tracking page has not moved."
    )
    request = _req([{"role": "user", "content": text}])
    profile = classifier.classify(request, {})
    assert profile.kind == "classify"
    assert decide(policy, profile, model="auto").route == "fast-structured"


def test_weights_of_the_old_format_are_refused_with_a_fix(tmp_path: Path) -> None:
    old = tmp_path / "w.json"
    old.write_text('{"format": "stepgate-linear-v1", "kinds": [], "weights": {}}')
    with pytest.raises(WeightsError, match="retrain"):
        LinearModel.load(old)
