"""TwinRouterBench static-track scores: RowPass, RowExact, TrajPass, CostSave, Combined.

Our implementation of the headline scores of TwinRouterBench (Yang et al., arXiv 2605.18859), as
its reference code defines them (`compute_v2_scores` in CommonstackAI/TwinRouterBench
main/eval/section11.py, prices in main/pricing.py, token rules in main/tokenizer.py, read at commit
7cbb0deac8f697b5faa8489c309560e53d2ef088). Written from those definitions, not copied.

Tiers are ids 0 low, 1 mid, 2 mid_high, 3 high. A row (one router-visible agent step) passes when
the predicted tier is at least its target tier (the cheapest sufficient one). N rows in all; a
trajectory is the rows of one (source benchmark, instance id).

- RowPass  = 100 * #rows with pred >= target / N
- RowExact = 100 * #rows with pred == target / N
- TrajPass = 100 * #rows whose whole trajectory passes / N (row-weighted, so TrajPass <= RowPass)
- CostSave: per source benchmark b, over its rows,
      D_b = sum cost(always-high path)
      N_b = sum over rows of passing trajectories of (cost(always-high) - cost(routed))
            - sum over rows of failing trajectories of cost(routed)
  (a failed trajectory is billed its routed chain plus one always-high re-run, so it saves
  -sum cost(routed)); CostSave = sum_b (N_rows_b / N) * 100 * N_b / D_b. At most 100; always-high
  scores 0; it can go negative.
- Combined = (RowPass + RowExact + TrajPass + CostSave) / 4.

Cost of one row on one path, cost model "tokens" (the paper's): cache_read * r_read +
cache_write * r_write + output * r_out, per-tier rates in USD per 1M tokens (`RATES`):

    tier      output  cache read  cache write
    low         0.50      0.13        0.26
    mid         2.00      0.059       0.30
    mid_high    5.00      0.05        0.08333
    high       25.00      0.50        6.25

Prompt tokens are all cache writes on a trajectory's first row, on a tier switch from the path's
previous row, when that previous row is more than 3 steps back (cache TTL) or when its messages
are not a prefix of this row's (role, content text, tool calls, tool_call_id, name); otherwise the
previous row's prompt is a cache read and only the rest a write (uncached input is never billed).
Output tokens: the assistant messages the trajectory's next row adds; for the last row (and a
one-row trajectory) the mean of the trajectory's positive estimates, else 500. Tokens are counted
with Stepgate's estimate (`gateway.classify.features.estimate_tokens`, ~4 characters a token,
~1 per CJK character) plus 4 per message and 2 per prompt, one counter for every tier; the paper
counts with each tier's vendor tokenizer, which is where our CostSave can differ from theirs.

Cost model "nominal" (the repo's older Section 11 accounting, kept for comparison): every row
costs its tier's output rate, i.e. the same token count on every step.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import orjson

from gateway.classify.features import estimate_tokens

TIER_NAMES = ("low", "mid", "mid_high", "high")
HIGH = len(TIER_NAMES) - 1
CACHE_TTL_STEPS = 3
FALLBACK_OUTPUT_TOKENS = 500
_SAMPLE_CHARS = 2048  # how much of a text `estimate_tokens` looks at for its CJK ratio

CostModel = Literal["tokens", "nominal"]
COST_MODELS: tuple[CostModel, ...] = ("tokens", "nominal")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens."""

    output: float
    cache_read: float
    cache_write: float


RATES: tuple[Rates, ...] = (
    Rates(output=0.50, cache_read=0.13, cache_write=0.26),
    Rates(output=2.00, cache_read=0.059, cache_write=0.30),
    Rates(output=5.00, cache_read=0.05, cache_write=0.08333),
    Rates(output=25.00, cache_read=0.50, cache_write=6.25),
)


@dataclass(frozen=True, slots=True)
class Step:
    """What the scores need from one labeled row."""

    id: str
    source: str
    trajectory: str
    step_index: int
    target: int  # tier id of the cheapest sufficient tier
    messages: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class _Tokens:
    prompt: int
    cached_prefix: int  # prompt tokens the previous row, on the same tier, leaves in the cache
    output: int


@dataclass(frozen=True, slots=True)
class Prepared:
    """Rows grouped into trajectories (sorted by step), with token counts done once."""

    trajectories: tuple[tuple[Step, ...], ...]
    tokens: Mapping[str, _Tokens]  # by row id

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.trajectories)


@dataclass(frozen=True, slots=True)
class Scores:
    rows: int
    trajectories: int
    passed_trajectories: int
    row_pass: float | None
    row_exact: float | None
    traj_pass: float | None
    cost_save: float | None
    combined: float | None

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 2)

        return {
            "rows": self.rows,
            "trajectories": self.trajectories,
            "passed_trajectories": self.passed_trajectories,
            "RowPass": r(self.row_pass),
            "RowExact": r(self.row_exact),
            "TrajPass": r(self.traj_pass),
            "CostSave": r(self.cost_save),
            "Combined": r(self.combined),
        }


def prepare(steps: Iterable[Step]) -> Prepared:
    groups: dict[tuple[str, str], list[Step]] = defaultdict(list)
    for step in steps:
        groups[step.source, step.trajectory].append(step)
    trajectories = tuple(
        tuple(sorted(rows, key=lambda s: s.step_index)) for rows in groups.values()
    )
    tokens: dict[str, _Tokens] = {}
    for traj in trajectories:
        prompts = [prompt_tokens(s.messages) for s in traj]
        outputs: list[int | None] = [
            _added_output_tokens(a.messages, b.messages) for a, b in pairwise(traj)
        ]
        outputs.append(None)
        positive = [t for t in outputs if t]
        fill = sum(positive) // len(positive) if positive else FALLBACK_OUTPUT_TOKENS
        for i, step in enumerate(traj):
            cached = 0
            if (
                i
                and step.step_index - traj[i - 1].step_index <= CACHE_TTL_STEPS
                and _is_prefix(traj[i - 1].messages, step.messages)
            ):
                cached = prompts[i - 1]
            out = outputs[i]
            tokens[step.id] = _Tokens(prompts[i], cached, fill if out is None else out)
    return Prepared(trajectories, tokens)


def score(
    prepared: Prepared, predicted: Mapping[str, int], *, cost_model: CostModel = "tokens"
) -> Scores:
    """Scores of the tier ids `predicted` (by row id; every row needs one)."""
    n = prepared.rows
    row_pass = row_exact = traj_rows = passed_trajs = 0
    spend: dict[str, float] = defaultdict(float)  # D_b
    saved: dict[str, float] = defaultdict(float)  # N_b
    rows_by_source: dict[str, int] = Counter()
    for traj in prepared.trajectories:
        preds = [predicted[s.id] for s in traj]
        ok = all(p >= s.target for p, s in zip(preds, traj, strict=True))
        row_pass += sum(p >= s.target for p, s in zip(preds, traj, strict=True))
        row_exact += sum(p == s.target for p, s in zip(preds, traj, strict=True))
        if ok:
            passed_trajs += 1
            traj_rows += len(traj)
        high = _path_costs(prepared, traj, [HIGH] * len(traj), cost_model)
        routed = _path_costs(prepared, traj, preds, cost_model)
        source = traj[0].source
        rows_by_source[source] += len(traj)
        spend[source] += sum(high)
        saved[source] += sum(high) - sum(routed) if ok else -sum(routed)
    if not n:
        return Scores(0, 0, 0, None, None, None, None, None)
    parts = [rows_by_source[b] / n * 100 * saved[b] / spend[b] for b in spend if spend[b] > 0]
    cost_save = sum(parts) if parts else None
    components = [100 * row_pass / n, 100 * row_exact / n, 100 * traj_rows / n]
    combined = None if cost_save is None else (sum(components) + cost_save) / 4
    return Scores(
        rows=n,
        trajectories=len(prepared.trajectories),
        passed_trajectories=passed_trajs,
        row_pass=components[0],
        row_exact=components[1],
        traj_pass=components[2],
        cost_save=cost_save,
        combined=combined,
    )


def _path_costs(
    prepared: Prepared, traj: Sequence[Step], tiers: Sequence[int], cost_model: CostModel
) -> list[float]:
    if cost_model == "nominal":
        return [RATES[t].output for t in tiers]
    costs = []
    for i, (step, tier) in enumerate(zip(traj, tiers, strict=True)):
        tok = prepared.tokens[step.id]
        rates = RATES[tier]
        read = tok.cached_prefix if i and tiers[i - 1] == tier else 0
        write = max(tok.prompt - read, 0)
        costs.append(
            read * rates.cache_read + write * rates.cache_write + tok.output * rates.output
        )
    return costs


# --- token counting --------------------------------------------------------------------------


def message_text(message: Mapping[str, Any]) -> str:
    """The billable text of a message: its content text, then each tool call's name and args."""
    parts = [_content_text(message.get("content"))]
    for call in message.get("tool_calls") or ():
        fn = call.get("function", call) if isinstance(call, Mapping) else None
        if isinstance(fn, Mapping):
            parts.append(str(fn.get("name") or ""))
            args = fn.get("arguments") or ""
            parts.append(args if isinstance(args, str) else orjson.dumps(args).decode())
    return "\n".join(p for p in parts if p)


def text_tokens(text: str) -> int:
    return estimate_tokens(len(text), text[:_SAMPLE_CHARS]) if text else 0


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(text_tokens(message_text(m)) + 4 for m in messages) + 2


def _added_output_tokens(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> int:
    added = after[len(before) :]
    return sum(text_tokens(message_text(m)) + 4 for m in added if m.get("role") == "assistant")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("text"):
                texts.append(str(part["text"]))
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return ""


def _is_prefix(short: Sequence[Mapping[str, Any]], long: Sequence[Mapping[str, Any]]) -> bool:
    return len(short) <= len(long) and all(
        _fingerprint(a) == _fingerprint(b) for a, b in zip(short, long, strict=False)
    )


def _fingerprint(m: Mapping[str, Any]) -> tuple[Any, ...]:
    calls = m.get("tool_calls")
    return (
        m.get("role"),
        _content_text(m.get("content")),
        orjson.dumps(calls, option=orjson.OPT_SORT_KEYS) if calls else None,
        m.get("tool_call_id"),
        m.get("name"),
    )
