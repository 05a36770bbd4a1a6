"""The StepProfile value: what kind of agent step a request is, and how hard and urgent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StepKind = Literal["classify", "extract", "format", "lookup", "summarize", "draft", "reason"]
STEP_KINDS: tuple[StepKind, ...] = (
    "classify",
    "extract",
    "format",
    "lookup",
    "summarize",
    "draft",
    "reason",
)
# Where the decisive evidence for `kind` came from (closed vocabulary, used as a metric label).
# "fallback": the step could not be read (no text, or a shape the features do not handle); it
# goes to the safe tier (P(deep) = 1) and `signals` say why.
Evidence = Literal["hint", "structure", "model", "fallback"]


@dataclass(frozen=True, slots=True)
class StepProfile:
    kind: StepKind
    difficulty: float  # 0 (trivial) .. 1 (deep reasoning): the calibrated P(deep)
    latency_budget_ms: int | None
    prompt_tokens: int  # estimate
    expected_output_tokens: int  # estimate
    expects_json: bool
    has_tools: bool
    language: str  # ISO 639-1 guess, e.g. "en", "es", "ja"
    turns: int
    evidence: Evidence
    signals: tuple[str, ...]  # human-readable reasons, for explain and debugging
