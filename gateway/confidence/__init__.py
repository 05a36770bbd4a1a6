"""Confidence in a cheap answer: validators and token statistics -> Verdict -> disposition."""

from gateway.confidence.validators import HARD_REASONS, Reason
from gateway.confidence.verdict import Disposition, Verdict, decide, judge

__all__ = ["HARD_REASONS", "Disposition", "Reason", "Verdict", "decide", "judge"]
