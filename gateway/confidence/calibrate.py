"""Calibration: per step kind, the lowest confidence threshold that keeps wrong answers rare.

Input is recorded cheap answers labelled correct or not, one JSON object per line:
`{"id", "kind", "request": {chat body}, "response": {chat completion}, "correct": bool}` and
optionally `"second": {chat completion}` (another cheap sample, for the agreement check).
Each answer is judged as the gateway would judge it; per kind, the threshold is the lowest one
at which wrong answers are at most `target` of the accepted ones, and the escalation rate is
the share of that kind's answers scoring below it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from gateway.confidence.verdict import judge
from gateway.core.profile import STEP_KINDS
from gateway.core.types import ChatRequest, Completion, TokenLogprob, Usage
from gateway.policy.models import ALL_CHECKS

DEFAULT_TARGET = 0.02
# Thresholds are reported on a 0.001 grid, so they can be pasted into a policy as printed.
_GRID = 1000


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    kind: str
    request: ChatRequest
    completion: Completion
    correct: bool
    second: Completion | None = None


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class KindCalibration:
    """One kind's result. `threshold` is None when no threshold reaches the target short of
    escalating everything (then `escalation_rate` is 1.0)."""

    kind: str
    samples: int
    wrong: int
    threshold: float | None
    accepted: int
    wrong_accepted: int
    wrong_rate_accepted: float
    escalation_rate: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class Calibration:
    target: float
    kinds: tuple[KindCalibration, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kinds": [asdict(k) for k in self.kinds]}


# --- reading -----------------------------------------------------------------------------------


def read_samples(lines: Iterable[str]) -> tuple[list[Sample], list[LineError]]:
    """Parse traffic lines; a bad line becomes a `LineError` (1-based) and the rest go on."""
    samples: list[Sample] = []
    errors: list[LineError] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            samples.append(parse_sample(line, fallback_id=f"line-{number}"))
        except SampleError as exc:
            errors.append(LineError(number, str(exc)))
    return samples, errors


class SampleError(ValueError):
    """A traffic line that cannot be used; the message says what to fix."""


def parse_sample(line: str, *, fallback_id: str) -> Sample:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise SampleError(f"not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise SampleError("expected a JSON object per line")
    kind = raw.get("kind")
    if kind not in STEP_KINDS:
        raise SampleError(f"'kind' must be one of {', '.join(STEP_KINDS)}; got {kind!r}")
    correct = raw.get("correct")
    if not isinstance(correct, bool):
        raise SampleError(f"'correct' must be true or false; got {correct!r}")
    body = raw.get("request")
    if not isinstance(body, dict):
        raise SampleError("'request' must be an OpenAI chat completions request body")
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SampleError(f"request.{where}: {first['msg']}") from exc
    completion = completion_from_openai(raw.get("response"), field="response")
    second = raw.get("second")
    return Sample(
        id=str(raw.get("id", fallback_id)),
        kind=kind,
        request=request,
        completion=completion,
        correct=correct,
        second=None if second is None else completion_from_openai(second, field="second"),
    )


def completion_from_openai(body: Any, *, field: str = "response") -> Completion:
    """An OpenAI chat completion body (as recorded) -> Completion, logprobs included."""
    if not isinstance(body, dict):
        raise SampleError(f"'{field}' must be an OpenAI chat completion object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise SampleError(f"{field}.choices must be a non-empty list")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise SampleError(f"{field}.choices[0].message must be an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise SampleError(f"{field}.choices[0].message.content must be a string or null")
    usage = body.get("usage") or {}
    if not isinstance(usage, dict):
        raise SampleError(f"{field}.usage must be an object")
    return Completion(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        content=content,
        finish_reason=choice.get("finish_reason"),
        usage=Usage(
            prompt_tokens=_int(usage.get("prompt_tokens"), f"{field}.usage.prompt_tokens"),
            completion_tokens=_int(
                usage.get("completion_tokens"), f"{field}.usage.completion_tokens"
            ),
        ),
        tool_calls=tuple(message.get("tool_calls") or ()),
        logprobs=_logprobs(choice.get("logprobs"), f"{field}.choices[0].logprobs"),
    )


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise SampleError(f"{where} must be an integer; got {value!r}")
    return value


def _logprobs(raw: Any, where: str) -> tuple[TokenLogprob, ...] | None:
    if raw is None:
        return None
    entries = raw.get("content") if isinstance(raw, dict) else None
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise SampleError(f"{where}.content must be a list")
    out: list[TokenLogprob] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SampleError(f"{where}.content[{i}] must be an object")
        token, logprob = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or not isinstance(logprob, int | float):
            raise SampleError(f"{where}.content[{i}] needs 'token' (string) and 'logprob'")
        top = tuple(
            (str(t.get("token", "")), float(t.get("logprob", -math.inf)))
            for t in entry.get("top_logprobs") or ()
            if isinstance(t, dict)
        )
        out.append(TokenLogprob(token, float(logprob), top))
    return tuple(out)


# --- calibrating -------------------------------------------------------------------------------


def calibrate(
    samples: Sequence[Sample],
    *,
    target: float = DEFAULT_TARGET,
    checks: Sequence[str] = (*ALL_CHECKS, "agreement"),
) -> Calibration:
    """Judge every sample, then choose a threshold per kind (kinds in taxonomy order)."""
    if not 0 <= target < 1:
        raise ValueError(f"target must be within [0, 1), got {target}")
    scored: dict[str, list[tuple[float, bool]]] = {}
    for sample in samples:
        verdict = judge(
            sample.request,
            sample.completion,
            kind=sample.kind,
            checks=checks,
            second=sample.second,
        )
        scored.setdefault(sample.kind, []).append((verdict.score, sample.correct))
    kinds = tuple(
        choose_threshold(kind, scored[kind], target=target) for kind in STEP_KINDS if kind in scored
    )
    return Calibration(target=target, kinds=kinds)


def choose_threshold(
    kind: str, scored: Sequence[tuple[float, bool]], *, target: float
) -> KindCalibration:
    """The lowest grid threshold t with wrong/accepted <= target, accepting score >= t.

    Candidates are 0 and each score rounded down to the grid (so every candidate accepts the
    answer it came from); the search is exhaustive, since the wrong rate among accepted answers
    need not fall monotonically as the threshold rises.
    """
    n = len(scored)
    ordered = sorted(scored, key=lambda item: item[0])
    scores = [s for s, _ in ordered]
    # wrong_from[i]: wrong answers among ordered[i:], i.e. among those scoring >= scores[i]
    wrong_from = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        wrong_from[i] = wrong_from[i + 1] + (0 if ordered[i][1] else 1)
    wrong_total = wrong_from[0]
    candidates = sorted({0.0} | {math.floor(s * _GRID) / _GRID for s in scores})
    for t in candidates:
        first = bisect.bisect_left(scores, t)
        accepted = n - first
        wrong = wrong_from[first]
        if accepted and wrong / accepted <= target:
            return KindCalibration(
                kind=kind,
                samples=n,
                wrong=wrong_total,
                threshold=t,
                accepted=accepted,
                wrong_accepted=wrong,
                wrong_rate_accepted=wrong / accepted,
                escalation_rate=first / n,
                note=_note(n, target),
            )
    return KindCalibration(
        kind=kind,
        samples=n,
        wrong=wrong_total,
        threshold=None,
        accepted=0,
        wrong_accepted=0,
        wrong_rate_accepted=0.0,
        escalation_rate=1.0,
        note="no threshold reaches the target; escalate every answer of this kind"
        + (f"; {_note(n, target)}" if _note(n, target) else ""),
    )


def _note(samples: int, target: float) -> str:
    needed = math.ceil(1 / target) if target > 0 else 0
    if samples < needed:
        return f"only {samples} samples: fewer than the {needed} a {target:.1%} rate needs"
    return ""
