"""TwinRouterBench rows (UncommonRoute's v2 splits) as Stepgate steps, and routers scored on them.

The rows: 275 router-visible agent steps (121 calibration, 154 holdout) from SWE-bench,
PinchBench, mtRAG and QMSum trajectories, each labeled with the cheapest sufficient tier
(low / mid / mid_high / high), published by CommonstackAI/UncommonRoute in
`uncommon_route/data/v2_splits/{calibration,holdout}.jsonl` at commit `SOURCE_COMMIT` (removed
from the tree in the next commit; still in the public history). They are not copied into this
repository (bench/data/twinrouter/SOURCE.md says why); this module reads them from a local git
mirror of that repository (`--git-dir`, or `$STEPGATE_TWINROUTER_GIT`) by blob id, or from a
directory holding the two files (`--rows-dir`), checked against the same blob ids.

Each row becomes an OpenAI chat body, `{"model": "auto", "messages": <the step's messages as
recorded>}`, plus labels: target tier, source benchmark, trajectory id (instance id), step index.
`export` writes them in bench/route_eval.py's format (tier "fast" when the target is low, else
"deep"). `score` (the default) scores, per split:

1. stepgate: the shipped classifier + policy (bench/route_eval.py `predict_tier`), 2-tier: a step
   predicted fast is "low", deep is "high";
2. always-low; 3. always-high;
4. length: "high" when the prompt has at least T characters of message text, T chosen on the
   calibration split (best Combined), reported on both;

with the scores of bench/twinrouter_metrics.py (RowPass, RowExact, TrajPass, CostSave, Combined;
definitions there), per source too, the share of each labeled tier routed low, and the AUROC of
the classifier's `difficulty` and of prompt length for "needs the top tier".

    python bench/twinrouter.py [score] [--git-dir DIR | --rows-dir DIR] [--policy P] [--json OUT]
    python bench/twinrouter.py export [--git-dir DIR | --rows-dir DIR] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import route_eval
import twinrouter_metrics as tm

from gateway.policy.loader import PolicyLoadError, load_policy

SOURCE_REPO = "CommonstackAI/UncommonRoute"
SOURCE_COMMIT = "042e836fb632878cb03545b69ffcf23976916b87"
SPLITS: dict[str, tuple[str, str]] = {  # split -> (path at SOURCE_COMMIT, git blob id)
    "calibration": (
        "uncommon_route/data/v2_splits/calibration.jsonl",
        "64537c8baf7c7ecb0337ddb1326fab3a7276fb34",
    ),
    "holdout": (
        "uncommon_route/data/v2_splits/holdout.jsonl",
        "a53e17222a09032e90003dc003e5720a5f68b163",
    ),
}
GIT_DIR_ENV = "STEPGATE_TWINROUTER_GIT"
# Where this project's tooling mirrors the repository (fetch github:CommonstackAI/UncommonRoute):
# `.mirror/` beside the repository.
DEFAULT_GIT_DIR = (
    Path(__file__).resolve().parents[2] / ".mirror" / "CommonstackAI+UncommonRoute" / "repo"
)
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "data" / "twinrouter"


class RowsError(ValueError):
    """The rows cannot be read or do not have the expected shape (the message says which)."""


@dataclass(frozen=True, slots=True)
class TwinRow:
    id: str
    split: str
    source: str  # benchmark: swebench, pinchbench, mtrag, qmsum
    trajectory: str  # instance id
    step_index: int
    total_steps: int
    target: int  # tier id, 0 low .. 3 high
    messages: tuple[dict[str, Any], ...]

    @property
    def target_name(self) -> str:
        return tm.TIER_NAMES[self.target]

    def request(self) -> dict[str, Any]:
        return {"model": "auto", "messages": list(self.messages)}

    def prompt_chars(self) -> int:
        return sum(len(tm.message_text(m)) for m in self.messages)

    def labeled(self) -> dict[str, Any]:
        """The bench/route_eval.py line: tier fast when the cheapest sufficient tier is low."""
        return {
            "id": self.id,
            "request": self.request(),
            "tier": "fast" if self.target == 0 else "deep",
            "source": self.source,
            "twin_tier": self.target_name,
            "trajectory": self.trajectory,
            "step_index": self.step_index,
            "total_steps": self.total_steps,
            "split": self.split,
        }

    def step(self) -> tm.Step:
        return tm.Step(
            self.id, self.source, self.trajectory, self.step_index, self.target, self.messages
        )


# --- reading ---------------------------------------------------------------------------------


def read_split(split: str, *, git_dir: Path | None = None, rows_dir: Path | None = None) -> bytes:
    """The split file's bytes, from `rows_dir` (checked against the blob id) or the git mirror."""
    path, blob = SPLITS[split]
    if rows_dir is not None:
        file = rows_dir / Path(path).name
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise RowsError(f"{file}: cannot read ({exc.strerror})") from exc
        if _blob_id(data) != blob:
            raise RowsError(f"{file} is not {SOURCE_REPO}@{SOURCE_COMMIT[:7]}:{path}")
        return data
    git = git_dir or Path(os.environ.get(GIT_DIR_ENV) or DEFAULT_GIT_DIR)
    cmd = ["git", f"--git-dir={git}", "cat-file", "blob", blob]
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise RowsError(
            f"cannot read {path} (blob {blob[:12]}) from {git}: "
            f"{done.stderr.decode(errors='replace').strip()}; mirror {SOURCE_REPO} (with its "
            f"history) and pass --git-dir, or pass --rows-dir"
        )
    return done.stdout


def parse_rows(data: bytes, split: str) -> list[TwinRow]:
    rows = []
    for n, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            r = orjson.loads(raw)
            tier = tm.TIER_NAMES.index(r["target_tier"])
            if r.get("target_tier_id", tier) != tier:
                raise ValueError(f"target_tier {r['target_tier']!r} != id {r['target_tier_id']}")
            rows.append(
                TwinRow(
                    id=str(r["id"]),
                    split=split,
                    source=str(r["benchmark"]),
                    trajectory=str(r.get("instance_id") or r["id"]),
                    step_index=int(r.get("step_index", 1)),
                    total_steps=int(r.get("total_steps", 1)),
                    target=tier,
                    messages=tuple(r["messages"]),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RowsError(f"{split}.jsonl:{n}: {exc}") from exc
    return rows


def load(*, git_dir: Path | None = None, rows_dir: Path | None = None) -> dict[str, list[TwinRow]]:
    return {
        split: parse_rows(read_split(split, git_dir=git_dir, rows_dir=rows_dir), split)
        for split in SPLITS
    }


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


# --- routers ---------------------------------------------------------------------------------

Router = Callable[[TwinRow], int]


def stepgate_predictions(
    rows: Sequence[TwinRow], predict: route_eval.Predictor
) -> dict[str, route_eval.Prediction]:
    """The Stepgate prediction for each row, made on the row's route_eval line."""
    out = {}
    for row in rows:
        step = route_eval.parse_step(orjson.dumps(row.labeled()), source=row.split, line=1)
        out[row.id] = predict(step)
    return out


def two_tier(prediction: route_eval.Prediction) -> int:
    """Stepgate's 2-tier decision on the 4-tier scale: fast -> low, deep -> high."""
    return 0 if prediction.tier == "fast" else tm.HIGH


def fit_length_threshold(rows: Sequence[TwinRow]) -> tuple[int, float]:
    """(T, Combined on `rows`) for the best rule "high when prompt_chars >= T, else low".

    Candidates: every distinct length in `rows`, and one past the longest (always low). Ties
    go to the smallest T (the safer rule).
    """
    prepared = tm.prepare(r.step() for r in rows)
    lengths = {r.id: r.prompt_chars() for r in rows}
    best: tuple[int, float] | None = None
    for t in [*sorted(set(lengths.values())), max(lengths.values()) + 1]:
        preds = {i: tm.HIGH if n >= t else 0 for i, n in lengths.items()}
        combined = tm.score(prepared, preds).combined
        if combined is not None and (best is None or combined > best[1]):
            best = (t, combined)
    assert best is not None
    return best


# --- report ----------------------------------------------------------------------------------


def evaluate(
    splits: Mapping[str, Sequence[TwinRow]], predict: route_eval.Predictor
) -> dict[str, Any]:
    """Every figure, per split and for all rows together ("all": the view the issue's reference
    figures use). `length` uses the threshold fitted on calibration; `length-insample` refits
    on the rows it is scored on (an optimistic bound, not a router)."""
    threshold, fit_combined = fit_length_threshold(splits["calibration"])
    views: dict[str, Sequence[TwinRow]] = {
        **splits,
        "all": [r for rows in splits.values() for r in rows],
    }
    trajectories = {s: {(r.source, r.trajectory) for r in rows} for s, rows in splits.items()}
    shared = set.intersection(*trajectories.values()) if trajectories else set()
    out: dict[str, Any] = {
        "length_threshold": {
            "measure": "prompt_chars (message content text + tool-call names and arguments)",
            "chosen_on": "calibration",
            "threshold": threshold,
            "calibration_combined": round(fit_combined, 2),
        },
        "trajectories_in_both_splits": len(shared),
        "splits": {},
    }
    for view, rows in views.items():
        stepgate = stepgate_predictions(rows, predict)
        insample, _ = fit_length_threshold(rows)
        routers: dict[str, Router] = {
            "stepgate": partial(_stepgate_tier, stepgate),
            "always-low": lambda r: 0,
            "always-high": lambda r: tm.HIGH,
            "length": partial(_length_tier, threshold),
            "length-insample": partial(_length_tier, insample),
        }
        out["splits"][view] = {
            "rows": len(rows),
            "trajectories": len({(r.source, r.trajectory) for r in rows}),
            "labels": _count(rows, lambda r: r.target_name),
            "labels_by_source": {
                s: _count([r for r in rows if r.source == s], lambda r: r.target_name)
                for s in _sources(rows)
            },
            "length_insample_threshold": insample,
            "routers": {name: _router_report(rows, f) for name, f in routers.items()},
            "auroc_top_tier": {
                "difficulty": _auroc_by_source(rows, partial(_difficulty, stepgate)),
                "prompt_chars": _auroc_by_source(rows, lambda r: float(r.prompt_chars())),
            },
            "stepgate_routes": dict(
                sorted(Counter(p.route or "?" for p in stepgate.values()).items())
            ),
        }
    return out


def _length_tier(threshold: int, row: TwinRow) -> int:
    return tm.HIGH if row.prompt_chars() >= threshold else 0


def _stepgate_tier(predictions: Mapping[str, route_eval.Prediction], row: TwinRow) -> int:
    return two_tier(predictions[row.id])


def _difficulty(predictions: Mapping[str, route_eval.Prediction], row: TwinRow) -> float | None:
    return predictions[row.id].p_deep


def _router_report(rows: Sequence[TwinRow], router: Router) -> dict[str, Any]:
    preds = {r.id: router(r) for r in rows}
    prepared = tm.prepare(r.step() for r in rows)
    report = tm.score(prepared, preds).as_dict()
    nominal = tm.score(prepared, preds, cost_model="nominal")
    report["nominal"] = {
        "CostSave": None if nominal.cost_save is None else round(nominal.cost_save, 2),
        "Combined": None if nominal.combined is None else round(nominal.combined, 2),
    }
    report["by_source"] = {}
    for source in _sources(rows):
        subset = [r for r in rows if r.source == source]
        sub = tm.prepare(r.step() for r in subset)
        report["by_source"][source] = tm.score(sub, preds).as_dict()
    report["routed_low_by_tier"] = {
        name: {
            "rows": len(tier_rows),
            "routed_low": sum(preds[r.id] == 0 for r in tier_rows),
            "share": round(sum(preds[r.id] == 0 for r in tier_rows) / len(tier_rows), 4),
        }
        for tier, name in enumerate(tm.TIER_NAMES)
        if (tier_rows := [r for r in rows if r.target == tier])
    }
    return report


def _auroc_by_source(
    rows: Sequence[TwinRow], value: Callable[[TwinRow], float | None]
) -> dict[str, float | None]:
    def one(subset: Sequence[TwinRow]) -> float | None:
        scored = [(r.target == tm.HIGH, value(r)) for r in subset]
        if any(v is None for _, v in scored):
            return None
        return route_eval.auroc(
            [v for top, v in scored if top and v is not None],
            [v for top, v in scored if not top and v is not None],
        )

    out = {"all": one(rows)}
    for source in _sources(rows):
        out[source] = one([r for r in rows if r.source == source])
    return out


def _sources(rows: Sequence[TwinRow]) -> list[str]:
    return sorted({r.source for r in rows})


def _count(rows: Sequence[TwinRow], key: Callable[[TwinRow], str]) -> dict[str, int]:
    counts = Counter(key(r) for r in rows)
    return {name: counts[name] for name in tm.TIER_NAMES if counts[name]}


def render(report: Mapping[str, Any]) -> str:
    lt = report["length_threshold"]
    out = [
        f"length router: high when prompt_chars >= {lt['threshold']} "
        f"(chosen on calibration, Combined there {lt['calibration_combined']}); "
        f"length-insample refits T on the rows scored. "
        f"{report['trajectories_in_both_splits']} trajectories have rows in both splits."
    ]
    metrics = ["RowPass", "RowExact", "TrajPass", "CostSave", "Combined"]
    for split, s in report["splits"].items():
        labels = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
        out.append(
            f"\n== {split}: {s['rows']} rows, {s['trajectories']} trajectories ({labels}); "
            f"length-insample T={s['length_insample_threshold']}"
        )
        rows = [
            [name, *(_num(r[m]) for m in metrics), _num(r["nominal"]["Combined"])]
            for name, r in s["routers"].items()
        ]
        out.append(route_eval._table(["router", *metrics, "Combined(nominal)"], rows))
        sources = sorted(next(iter(s["routers"].values()))["by_source"])
        rows = [
            [name, *(_num(r["by_source"][src]["Combined"]) for src in sources)]
            for name, r in s["routers"].items()
        ]
        out.append(route_eval._table(["Combined by source", *sources], rows))
        rows = [
            [
                name,
                *(
                    f"{100 * v['share']:.0f}% of {v['rows']}"
                    for v in r["routed_low_by_tier"].values()
                ),
            ]
            for name, r in s["routers"].items()
        ]
        tiers = list(next(iter(s["routers"].values()))["routed_low_by_tier"])
        out.append(route_eval._table(["routed low, by labeled tier", *tiers], rows))
        au = s["auroc_top_tier"]
        keys = list(au["difficulty"])
        rows = [[k, *(_num(v[c]) for c in keys)] for k, v in au.items()]
        out.append(route_eval._table(["AUROC for 'needs high'", *keys], rows))
    return "\n".join(out)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}" if abs(x) >= 1.5 else f"{x:.3f}"


# --- CLI -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", nargs="?", choices=("score", "export"), default="score")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--git-dir", type=Path, help=f"git dir of a {SOURCE_REPO} mirror")
    src.add_argument("--rows-dir", type=Path, help="directory with calibration/holdout.jsonl")
    parser.add_argument("--policy", type=Path, default=Path("policies/support.yaml"))
    parser.add_argument("--json", type=Path, help="score: write every figure here as JSON")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="export: here")
    args = parser.parse_args(argv)
    try:
        splits = load(git_dir=args.git_dir, rows_dir=args.rows_dir)
    except RowsError as exc:
        print(f"twinrouter: {exc}", file=sys.stderr)
        return 1
    if args.command == "export":
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            lines = b"".join(orjson.dumps(r.labeled()) + b"\n" for r in rows)
            (args.out_dir / f"{split}.jsonl").write_bytes(lines)
            print(f"{args.out_dir / f'{split}.jsonl'}: {len(rows)} steps")
        return 0
    try:
        policy = load_policy(args.policy)
    except PolicyLoadError as exc:
        print(f"twinrouter: {args.policy} is invalid:\n{exc}", file=sys.stderr)
        return 1
    report = evaluate(splits, route_eval.stepgate_predictor(policy))
    doc = {
        "source": {
            "repo": SOURCE_REPO,
            "commit": SOURCE_COMMIT,
            "files": {s: {"path": p, "blob": b} for s, (p, b) in SPLITS.items()},
        },
        "policy": str(args.policy),
        "metrics": "bench/twinrouter_metrics.py (TwinRouterBench scores_v2, arXiv 2605.18859)",
        "cost_model": {
            "default": "tokens",
            "usd_per_1m_tokens": {
                name: {"output": r.output, "cache_read": r.cache_read, "cache_write": r.cache_write}
                for name, r in zip(tm.TIER_NAMES, tm.RATES, strict=True)
            },
            "nominal": "every row costs its tier's output rate",
        },
        **report,
    }
    print(render(report))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
