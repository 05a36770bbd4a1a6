"""The linear step model: per hashed feature, one weight per step kind plus one "deep" weight.

Scores are sums over the step's feature ids (n-gram ids scaled by 1/sqrt(count), structural ids
by 1), so scoring is a handful of dict look-ups and one C-level transpose-and-sum. Weights are
stored sparsely and quantised to integers in a small JSON file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.classify.profile import STEP_KINDS, StepKind

FORMAT = "stepgate-linear-v1"
N_OUT = len(STEP_KINDS) + 1  # seven kind logits, then the deep-vs-fast logit
DEEP = len(STEP_KINDS)


class WeightsError(ValueError):
    """The weights file is missing, unreadable or not in the expected format."""


@dataclass(frozen=True, slots=True)
class Scores:
    kind: StepKind
    p_kind: float
    runner_up: StepKind
    p_runner_up: float
    p_deep: float
    # How much of the winning kind's margin over the runner-up the structural features carried.
    struct_margin: float
    text_margin: float


@dataclass(frozen=True, slots=True)
class LinearModel:
    weights: dict[int, tuple[float, ...]]  # feature id -> N_OUT weights
    bias: tuple[float, ...]
    hash_bits: int

    def score(
        self,
        text_ids: tuple[int, ...],
        instr_ids: tuple[int, ...],
        struct_ids: tuple[int, ...],
    ) -> Scores:
        get = self.weights.get
        t_scale = 1.0 / math.sqrt(len(text_ids)) if text_ids else 0.0
        i_scale = 1.0 / math.sqrt(len(instr_ids)) if instr_ids else 0.0
        t_sum = _column_sums([w for w in map(get, text_ids) if w is not None], t_scale)
        i_sum = _column_sums([w for w in map(get, instr_ids) if w is not None], i_scale)
        s_sum = _column_sums([w for w in map(get, struct_ids) if w is not None], 1.0)
        t_sum = [t + i for t, i in zip(t_sum, i_sum, strict=True)]
        logits = [b + s + t for b, s, t in zip(self.bias, s_sum, t_sum, strict=True)]
        kind_logits = logits[:DEEP]
        order = sorted(range(DEEP), key=kind_logits.__getitem__, reverse=True)
        top, second = order[0], order[1]
        peak = kind_logits[top]
        exps = [math.exp(v - peak) for v in kind_logits]
        total = sum(exps)
        return Scores(
            kind=STEP_KINDS[top],
            p_kind=exps[top] / total,
            runner_up=STEP_KINDS[second],
            p_runner_up=exps[second] / total,
            p_deep=_sigmoid(logits[DEEP]),
            struct_margin=s_sum[top] - s_sum[second],
            text_margin=t_sum[top] - t_sum[second],
        )

    def to_json(self, *, meta: dict[str, Any] | None = None) -> bytes:
        """Sparse, quantised: each output column is scaled so its largest weight is 32767."""
        scales = []
        for j in range(N_OUT):
            peak = max((abs(w[j]) for w in self.weights.values()), default=0.0)
            scales.append(peak / 32767 if peak else 1.0)
        rows = {
            str(i): [round(w[j] / scales[j]) for j in range(N_OUT)]
            for i, w in sorted(self.weights.items())
        }
        doc = {
            "format": FORMAT,
            "kinds": list(STEP_KINDS),
            "outputs": [*STEP_KINDS, "deep"],
            "hash_bits": self.hash_bits,
            "bias": [round(b, 6) for b in self.bias],
            "scales": scales,
            "meta": meta or {},
            "weights": rows,
        }
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, data: bytes, *, source: str = "weights") -> LinearModel:
        try:
            doc = orjson.loads(data)
            if doc.get("format") != FORMAT:
                raise WeightsError(f"{source}: format is {doc.get('format')!r}, expected {FORMAT}")
            if tuple(doc["kinds"]) != STEP_KINDS:
                raise WeightsError(f"{source}: kinds {doc['kinds']} do not match {STEP_KINDS}")
            scales = [float(s) for s in doc["scales"]]
            weights = {
                int(i): tuple(q * s for q, s in zip(row, scales, strict=True))
                for i, row in doc["weights"].items()
            }
            bias = tuple(float(b) for b in doc["bias"])
            hash_bits = int(doc["hash_bits"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, WeightsError):
                raise
            raise WeightsError(f"{source}: not a valid classifier weights file ({exc})") from exc
        if len(bias) != N_OUT or len(scales) != N_OUT:
            raise WeightsError(f"{source}: expected {N_OUT} outputs")
        return cls(weights=weights, bias=bias, hash_bits=hash_bits)

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise WeightsError(f"{path}: cannot read classifier weights ({exc.strerror})") from exc
        return cls.from_json(data, source=str(path))


_ZERO = (0.0,) * N_OUT


def _column_sums(rows: list[tuple[float, ...]], scale: float) -> list[float]:
    if not rows:
        return list(_ZERO)
    return [sum(col) * scale for col in zip(*rows, strict=True)]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
