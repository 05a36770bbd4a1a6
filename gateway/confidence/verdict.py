"""Completion -> Verdict (score in [0, 1] and reasons), and Verdict -> accept/escalate/flag.

Score, in one place:

    token     = sqrt(min * p10) of content-token probabilities    (logprobs and token_confidence)
    agreement = similarity of two cheap samples in [0, 1]          (second sample and agreement)
    evidence  = min(token, agreement) over those that ran; without either:
                PRIOR_VALIDATED if a structural validator (json_schema, labels, grounded) ran
                and passed its part, else PRIOR_UNCHECKED
    score     = evidence                       when every hard validator passed
              = HARD_FAIL_CAP * evidence       when any failed (so 0.0 .. 0.2)

`min` catches one unsure value token; `p10` keeps one borderline token among many sure ones
from deciding alone; their geometric mean is the answer's probability for a one-token label and
falls fast when one token was a guess (min 0.05, p10 0.99 -> 0.22). The mean is never used: a
long answer of sure boilerplate hides a guessed order number in its mean.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gateway.confidence.tokens import content_stats
from gateway.confidence.validators import (
    HARD_REASONS,
    Finding,
    JsonAnswer,
    Reason,
    check_complete,
    check_grounded,
    check_label,
    check_schema,
    check_tool_calls,
    enum_values,
    expected_json,
    looks_like_json,
    parse_json,
)
from gateway.core.labels import normalize_label, request_labels
from gateway.core.types import ChatRequest, Completion
from gateway.policy.models import Escalation

KNOWN_CHECKS = frozenset(
    {"json_schema", "labels", "grounded", "complete", "token_confidence", "agreement"}
)
HARD_FAIL_CAP = 0.2
PRIOR_VALIDATED = 0.8
PRIOR_UNCHECKED = 0.5
# Below these, the verdict names the signal among its reasons (the route's threshold decides).
LOW_TOKEN = 0.5
LOW_AGREEMENT = 0.5
# Labels are enumerated from the prompt only for these kinds; a schema's enum counts for all.
PROMPT_LABEL_KINDS = frozenset({"classify"})

Disposition = Literal["accept", "escalate", "flag"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """How far a cheap answer can be trusted.

    `reasons` are slugs from `validators.Reason` (stable: metrics and ledger labels);
    `details` is the same story for humans. `token_min`/`token_p10` are probabilities over
    content tokens, None when the backend returned no logprobs or the check did not run.
    """

    score: float
    reasons: tuple[Reason, ...]
    details: str
    checks_run: tuple[str, ...]
    token_min: float | None = None
    token_p10: float | None = None
    agreement: float | None = None

    @property
    def hard_failure(self) -> bool:
        return any(r in HARD_REASONS for r in self.reasons)


def judge(
    request: ChatRequest,
    completion: Completion,
    *,
    kind: str,
    checks: Sequence[str],
    second: Completion | None = None,
) -> Verdict:
    """Check one cheap answer: hard validators, then token statistics, then agreement.

    `checks` are the route's check names (`policy.models.Check`); a check that does not apply
    to this request (no schema, no enumerated labels, not an extract step) is skipped and left
    out of `checks_run`.
    """
    enabled = frozenset(checks)
    unknown = enabled - KNOWN_CHECKS
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; known: {sorted(KNOWN_CHECKS)}")
    findings: list[Finding] = []
    run: list[str] = []
    structural_ran = False
    text = completion.content or ""
    wants_json, schema = expected_json(request)
    is_json = wants_json or looks_like_json(text)
    parsed = parse_json(text) if is_json and text.strip() else JsonAnswer(False)

    if "complete" in enabled:
        run.append("complete")
        findings.extend(check_complete(request, completion))

    label_findings: list[Finding] = []
    labels_ran = False
    if "json_schema" in enabled and (wants_json or completion.tool_calls):
        run.append("json_schema")
        structural_ran = True
        if wants_json and text.strip():
            if not parsed.ok:
                findings.append(Finding("invalid_json", "the answer is not valid JSON"))
            elif schema is not None:
                structural, label_findings, note = check_schema(parsed.value, schema)
                findings.extend(structural)
                if note:
                    # Said as a reason too: an answer whose schema could not be checked is
                    # not a validated one (metrics, the ledger and `calibrate` see it).
                    findings.append(Finding("unchecked", note))
                if "labels" not in enabled:
                    findings.extend(Finding("schema_mismatch", f.detail) for f in label_findings)
                    label_findings = []
                else:
                    labels_ran = bool(enum_values(schema))
        if completion.tool_calls:
            findings.extend(check_tool_calls(request, completion))
    elif "labels" in enabled and schema is not None and parsed.ok and enum_values(schema):
        # labels without json_schema: still read the schema's enums, nothing else of it
        _, label_findings, _ = check_schema(parsed.value, schema)
        labels_ran = True

    if "labels" in enabled:
        prompt = request_labels(request) if kind in PROMPT_LABEL_KINDS else None
        if prompt and text.strip() and (parsed.ok or not wants_json):
            labels_ran = True
            label_findings = label_findings or check_label(text, parsed, prompt)
        if labels_ran:
            run.append("labels")
            structural_ran = True
            findings.extend(label_findings)

    if "grounded" in enabled and kind == "extract" and (parsed.ok or not is_json):
        applied, grounded = check_grounded(request, text, parsed, schema)
        if applied:
            run.append("grounded")
            structural_ran = True
            findings.extend(grounded)

    reasons: list[Reason] = [f.reason for f in findings]
    details: list[str] = [f"{f.reason}: {f.detail}" for f in findings]
    evidence: list[float] = []

    token_min: float | None = None
    token_p10: float | None = None
    if "token_confidence" in enabled:
        stats = (
            content_stats(completion.logprobs, json_mode=is_json) if completion.logprobs else None
        )
        if stats is None:
            reasons.append("no_logprobs")
            why = "no logprobs from the backend" if not completion.logprobs else "no content tokens"
            details.append(f"no_logprobs: {why}; scored by validators and agreement only")
        else:
            run.append("token_confidence")
            token_min, token_p10 = stats.min, stats.p10
            token = math.sqrt(stats.min * stats.p10)
            evidence.append(token)
            summary = (
                f"min {stats.min:.3f} ({stats.lowest_token!r}), p10 {stats.p10:.3f} "
                f"over {stats.count} content tokens"
            )
            if token < LOW_TOKEN:
                reasons.append("low_token_confidence")
                details.append(f"low_token_confidence: {summary}")
            else:
                details.append(f"tokens: {summary}")

    agreed: float | None = None
    if "agreement" in enabled and second is not None:
        run.append("agreement")
        labels = request_labels(request) if kind in PROMPT_LABEL_KINDS else None
        agreed = agreement(completion, second, labels=labels is not None)
        evidence.append(agreed)
        if agreed < LOW_AGREEMENT:
            reasons.append("disagreement")
            details.append(f"disagreement: two samples agree {agreed:.2f}")
        else:
            details.append(f"agreement: {agreed:.2f}")

    prior = PRIOR_VALIDATED if structural_ran else PRIOR_UNCHECKED
    score = min(evidence) if evidence else prior
    if any(r in HARD_REASONS for r in reasons):
        score *= HARD_FAIL_CAP
    return Verdict(
        score=min(1.0, max(0.0, score)),
        reasons=tuple(reasons),
        details="; ".join(details),
        checks_run=tuple(run),
        token_min=token_min,
        token_p10=token_p10,
        agreement=agreed,
    )


def decide(verdict: Verdict, escalation: Escalation | None, kind: str) -> Disposition:
    """accept at or above the route's threshold for `kind`; otherwise the route's `on_low`.

    A route without an escalation block accepts everything (it is not checked).
    """
    if escalation is None or verdict.score >= escalation.threshold(kind):
        return "accept"
    return escalation.on_low


# --- agreement ---------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_SHORT_WORDS = 5


def agreement(first: Completion, second: Completion, *, labels: bool = False) -> float:
    """Similarity of two samples of the same step, in [0, 1].

    JSON answers: share of leaf paths whose values are equal (strings compared case- and
    whitespace-folded). Labels and short answers (at most 5 words): normalized equality, 1 or 0.
    Anything else: Jaccard similarity of the lower-cased word sets.
    """
    a, b = _answer_text(first), _answer_text(second)
    if not a.strip() or not b.strip():
        return 0.0
    if looks_like_json(a) and looks_like_json(b):
        ja, jb = parse_json(a), parse_json(b)
        if ja.ok and jb.ok:
            return _json_similarity(ja.value, jb.value)
    if labels or (len(a.split()) <= _SHORT_WORDS and len(b.split()) <= _SHORT_WORDS):
        return 1.0 if normalize_label(a) == normalize_label(b) else 0.0
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa and not wb:
        return 1.0 if a.strip() == b.strip() else 0.0
    return len(wa & wb) / len(wa | wb)


def _answer_text(completion: Completion) -> str:
    if (completion.content or "").strip():
        return completion.content or ""
    calls = []
    for call in completion.tool_calls:
        fn = call.get("function") or {}
        raw = fn.get("arguments")
        args = parse_json(raw).value if isinstance(raw, str) else raw
        calls.append({"name": fn.get("name"), "arguments": args})
    return orjson.dumps(calls).decode() if calls else ""


def _json_similarity(a: Any, b: Any) -> float:
    fa, fb = _flatten(a), _flatten(b)
    if not fa and not fb:
        return 1.0 if a == b else 0.0
    paths = fa.keys() | fb.keys()
    same = sum(1 for p in paths if p in fa and p in fb and fa[p] == fb[p])
    return same / len(paths)


def _flatten(value: Any, prefix: str = "$") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    if isinstance(value, str):
        return {prefix: " ".join(value.lower().split())}
    return {prefix: value}
