"""The linear step model: per hashed feature, one weight per step kind plus one "deep" weight.

Scores are sums over the step's feature ids (each n-gram group scaled by 1/sqrt(its count),
structural ids by 1), so scoring is a handful of dict look-ups and one C-level sum per group.
Weights are stored sparsely and quantised to integers in a small JSON file, with the two
numbers that calibrate the deep logit into P(deep) (Platt scaling, fitted on steps the weights
were not trained on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson

from gateway.core.profile import STEP_KINDS, StepKind

FORMAT = "stepgate-linear-v2"
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
    # P(deep) = sigmoid(a * deep_logit + b); (1, 0) leaves the trained logit as it is.
    calibration: tuple[float, float] = (1.0, 0.0)
    # How much each feature group counts (context n-grams, instruction n-grams, instruction
    # word prefixes, structure), on top of the 1/sqrt(count) scaling of the n-gram groups.
    group_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # What `score` reads: each row quantised (as the weights file stores it) and packed into
    # one int, so that a step's rows sum with one C-level `sum` over one object per feature
    # instead of a tuple of eight floats each (built from `weights` at construction).
    _packed: dict[int, int] = field(init=False, repr=False, compare=False)
    _scales: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scales = _scales_of(self.weights)
        packed = {
            i: _pack([round(x / s) for x, s in zip(w, scales, strict=True)])
            for i, w in self.weights.items()
        }
        object.__setattr__(self, "_packed", packed)
        object.__setattr__(self, "_scales", tuple(scales))

    def _sums(self, ids: tuple[int, ...], scale: float) -> list[float]:
        total = sum(map(self._packed.get, ids, repeat(0)))
        rows = total >> _COUNT_SHIFT
        base = rows * _OFFSET
        return [
            (((total >> shift) & _FIELD) - base) * s * scale
            for shift, s in zip(_SHIFTS, self._scales, strict=True)
        ]

    def score(
        self,
        text_ids: tuple[int, ...],
        instr_ids: tuple[int, ...],
        struct_ids: tuple[int, ...],
        prefix_ids: tuple[int, ...] = (),
    ) -> Scores:
        logits, s_sum, t_sum = self._logits(text_ids, instr_ids, struct_ids, prefix_ids)
        kind_logits = logits[:DEEP]
        order = sorted(range(DEEP), key=kind_logits.__getitem__, reverse=True)
        top, second = order[0], order[1]
        peak = kind_logits[top]
        exps = [math.exp(v - peak) for v in kind_logits]
        total = sum(exps)
        a, b = self.calibration
        return Scores(
            kind=STEP_KINDS[top],
            p_kind=exps[top] / total,
            runner_up=STEP_KINDS[second],
            p_runner_up=exps[second] / total,
            p_deep=_sigmoid(a * logits[DEEP] + b),
            struct_margin=s_sum[top] - s_sum[second],
            text_margin=t_sum[top] - t_sum[second],
        )

    def deep_logit(
        self,
        text_ids: tuple[int, ...],
        instr_ids: tuple[int, ...],
        struct_ids: tuple[int, ...],
        prefix_ids: tuple[int, ...] = (),
    ) -> float:
        """The uncalibrated deep logit (what calibration is fitted on)."""
        return self._logits(text_ids, instr_ids, struct_ids, prefix_ids)[0][DEEP]

    def _logits(
        self,
        text_ids: tuple[int, ...],
        instr_ids: tuple[int, ...],
        struct_ids: tuple[int, ...],
        prefix_ids: tuple[int, ...],
    ) -> tuple[list[float], list[float], list[float]]:
        """(logits, structural part, n-gram part), each with N_OUT values."""
        gt, gi, gp, gs = self.group_weights
        t_sum = self._sums(text_ids, gt * _scale(text_ids))
        i_sum = self._sums(instr_ids, gi * _scale(instr_ids))
        p_sum = self._sums(prefix_ids, gp * _scale(prefix_ids))
        s_sum = self._sums(struct_ids, gs)
        t_sum = [t + i + p for t, i, p in zip(t_sum, i_sum, p_sum, strict=True)]
        logits = [b + s + t for b, s, t in zip(self.bias, s_sum, t_sum, strict=True)]
        return logits, s_sum, t_sum

    def to_json(self, *, meta: dict[str, Any] | None = None) -> bytes:
        """Sparse, quantised: each output column is scaled so its largest weight is 32767."""
        scales = _scales_of(self.weights)
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
            "calibration": [round(c, 6) for c in self.calibration],
            "group_weights": list(self.group_weights),
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
                raise WeightsError(
                    f"{source}: format is {doc.get('format')!r}, expected {FORMAT}; retrain "
                    "with `stepgate classifier train` (the features changed)"
                )
            if tuple(doc["kinds"]) != STEP_KINDS:
                raise WeightsError(f"{source}: kinds {doc['kinds']} do not match {STEP_KINDS}")
            scales = [float(s) for s in doc["scales"]]
            weights = {
                int(i): tuple(q * s for q, s in zip(row, scales, strict=True))
                for i, row in doc["weights"].items()
            }
            bias = tuple(float(b) for b in doc["bias"])
            hash_bits = int(doc["hash_bits"])
            a, b = (float(c) for c in doc["calibration"])
            gt, gi, gp, gs = (float(g) for g in doc["group_weights"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, WeightsError):
                raise
            raise WeightsError(f"{source}: not a valid classifier weights file ({exc})") from exc
        if len(bias) != N_OUT or len(scales) != N_OUT:
            raise WeightsError(f"{source}: expected {N_OUT} outputs")
        return cls(
            weights=weights,
            bias=bias,
            hash_bits=hash_bits,
            calibration=(a, b),
            group_weights=(gt, gi, gp, gs),
        )

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise WeightsError(f"{path}: cannot read classifier weights ({exc.strerror})") from exc
        return cls.from_json(data, source=str(path))


_QMAX = 32767  # weights are quantised per output column to -_QMAX.._QMAX
# A packed row: N_OUT fields of _BITS bits holding q + _OFFSET (always positive, so fields
# never borrow from each other), then a count of 1 above them. A sum of up to 2**32 / 2**17
# rows (far more n-grams than a bounded window has) keeps every field within its bits.
_BITS = 32
_OFFSET = 1 << 16
_FIELD = (1 << _BITS) - 1
_SHIFTS = tuple(_BITS * j for j in range(N_OUT))
_COUNT_SHIFT = _BITS * N_OUT


def _scales_of(weights: dict[int, tuple[float, ...]]) -> list[float]:
    scales = []
    for j in range(N_OUT):
        peak = max((abs(w[j]) for w in weights.values()), default=0.0)
        scales.append(peak / _QMAX if peak else 1.0)
    return scales


def _pack(q: list[int]) -> int:
    packed = 1 << _COUNT_SHIFT
    for shift, value in zip(_SHIFTS, q, strict=True):
        packed |= (value + _OFFSET) << shift
    return packed


def _scale(ids: tuple[int, ...]) -> float:
    return 1.0 / math.sqrt(len(ids)) if ids else 0.0


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
