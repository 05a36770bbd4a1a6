"""Token statistics over the content tokens of an answer: minimum and 10th percentile.

Tokens are arbitrary substrings (BPE pieces, byte fragments, diffusion reveals), so which
tokens carry content is decided by scanning the concatenated token text character by
character and marking each character as structure (JSON punctuation, whitespace, quotes,
object keys) or content (string values, numbers, literals). A token counts when at least one
of its characters is content. Plain-text answers drop whitespace- and punctuation-only tokens.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.types import TokenLogprob

_NOISE = frozenset(string.whitespace + string.punctuation)
_JSON_WS = frozenset(" \t\r\n")


@dataclass(frozen=True, slots=True)
class TokenStats:
    """Probabilities (not logprobs) over content tokens; `count` is how many were scored."""

    count: int
    min: float
    p10: float
    lowest_token: str


def probability(logprob: float) -> float:
    """exp(logprob) clamped to [0, 1]; NaN and -inf read as 0 (the engine had no confidence)."""
    if logprob != logprob or logprob == -math.inf:
        return 0.0
    if logprob >= 0.0:
        return 1.0
    return math.exp(logprob)


def json_content_mask(pieces: Sequence[str]) -> list[bool]:
    """For each piece of a JSON text: does it contain a character of a value?

    Key strings, quotes, `{}[],:` and whitespace are structure. Text outside any object or
    array (a markdown fence, a preamble) is structure too; the hard validators judge it.
    The scan survives truncated or invalid JSON: it never raises.
    """
    mask: list[bool] = []
    stack: list[str] = []
    in_string = False
    escaped = False
    is_key = False
    expect_key = False
    for piece in pieces:
        content = False
        for ch in piece:
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
                    continue
                if not is_key:
                    content = True
            elif ch == '"':
                in_string = True
                is_key = expect_key and bool(stack) and stack[-1] == "{"
                expect_key = False
            elif ch == "{":
                stack.append(ch)
                expect_key = True
            elif ch == "[":
                stack.append(ch)
                expect_key = False
            elif ch == "}" or ch == "]":
                if stack:
                    stack.pop()
                expect_key = False
            elif ch == ",":
                expect_key = bool(stack) and stack[-1] == "{"
            elif ch == ":" or ch in _JSON_WS:
                continue
            elif stack:
                # numbers, true/false/null inside a container
                content = True
        mask.append(content)
    return mask


def text_content_mask(pieces: Sequence[str]) -> list[bool]:
    """For plain text: a piece counts unless it is only whitespace and punctuation."""
    return [any(ch not in _NOISE for ch in piece) for piece in pieces]


def content_stats(logprobs: Sequence[TokenLogprob], *, json_mode: bool) -> TokenStats | None:
    """Min and 10th percentile of token probability over content tokens; None if there are none.

    In `json_mode`, an answer whose scan finds no value characters (a bare scalar, or not JSON
    at all) is scored as plain text instead, so a broken JSON answer is still measured.
    """
    pieces = [t.token for t in logprobs]
    mask = json_content_mask(pieces) if json_mode else text_content_mask(pieces)
    if json_mode and not any(mask):
        mask = text_content_mask(pieces)
    scored = [
        (probability(t.logprob), t.token) for t, keep in zip(logprobs, mask, strict=True) if keep
    ]
    if not scored:
        return None
    probs = sorted(p for p, _ in scored)
    lowest_p, lowest_token = min(scored, key=lambda pt: pt[0])
    return TokenStats(
        count=len(probs), min=lowest_p, p10=percentile(probs, 0.10), lowest_token=lowest_token
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `sorted_values` ascending."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = q * (len(sorted_values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    frac = pos - low
    return sorted_values[low] * (1.0 - frac) + sorted_values[high] * frac
