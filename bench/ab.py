"""Before/after on the dLLM route: two commits of Stepgate measured in one run, interleaved.

    python bench/ab.py --base HEAD~1 [--head REV] [--rounds 3] [--duration 6]

Checks `--base` (and `--head`, if given; else this checkout as it is) out into temporary git
worktrees, then for each round starts `stepgate serve` from each tree (alternating which goes
first) against the same mock
upstream, and measures the dLLM route (JSON, bench/policy.yaml, virtual key) at concurrency 1
and 8 with wrk, plus the direct upstream. Prints the median of the rounds per side and the
after/before ratios, and writes bench/results/ab.json. Use it to show what one change to the hot
path bought: the machine is shared and noisy, so only ratios from one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import harness as h
import run as bench_run

RESULTS = h.BENCH / "results" / "ab.json"
LEVELS = (1, 8)


def worktree(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(h.REPO), "worktree", "add", "--detach", str(into), rev],
        check=True,
        capture_output=True,
    )
    return into


def measure_side(
    repo: Path, workdir: Path, mock: h.Server, bodies: dict[str, Path], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    env = h.stepgate_env(workdir, f"http://127.0.0.1:{mock.port}/v1")
    env["STEPGATE_PRELOAD_AR"] = "false"
    key, _ = h.create_virtual_key(env, workdir, repo=repo)
    if key:
        env["STEPGATE_REQUIRE_KEYS"] = "true"
    auth = f"Bearer {key}" if key else None
    # Each tree with its own bench policy (the policy language may have grown in between).
    sg = h.start_stepgate(workdir, env, policy=repo / "bench" / "policy.yaml", repo=repo)
    out: dict[str, dict[str, Any]] = {}
    try:
        h.wait_for_200(
            sg.port,
            "/v1/chat/completions",
            started=sg.started,
            proc=sg.proc,
            log=sg.log,
            body=bodies["dllm-json"].read_bytes(),
            headers={"authorization": auth} if auth else {},
        )
        load = h.Load(bodies["dllm-json"], auth=auth)
        h.wrk(sg.port, "/v1/chat/completions", load, connections=8, duration_s=2, workdir=workdir)
        for c in LEVELS:
            out[str(c)] = h.measure(
                sg,
                sg.port,
                "/v1/chat/completions",
                load,
                connections=c,
                duration_s=args.duration,
                workdir=workdir,
            )
    finally:
        sg.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--head", help="git revision to measure (default: this checkout)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="stepgate-ab-"))
    base_tree = worktree(args.base, tmp / "base")
    head_tree = worktree(args.head, tmp / "head") if args.head else h.REPO
    trees = {"before": base_tree, "after": head_tree}
    mock = h.start_mock(tmp, model_ms=20.0, tokens=4)
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        side: {str(c): [] for c in LEVELS} for side in trees
    }
    direct: dict[str, list[float]] = {str(c): [] for c in LEVELS}
    try:
        bodies = bench_run.write_bodies(tmp)
        for r in range(args.rounds):
            for c in LEVELS:
                d = h.measure(
                    None,
                    mock.port,
                    "/v1/chat/completions",
                    h.Load(bodies["direct-json"]),
                    connections=c,
                    duration_s=args.duration / 2,
                    workdir=tmp,
                )
                direct[str(c)].append(d["p50_ms"])
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for side in order:
                workdir = tmp / f"{side}-{r}"
                workdir.mkdir()
                got = measure_side(trees[side], workdir, mock, bodies, args)
                for c, m in got.items():
                    samples[side][c].append(m)
                    print(
                        f"round {r + 1} {side:6s} c={c:<2s} {m['rps']:7.1f} rps  "
                        f"p50 {m['p50_ms']:6.2f} ms  cpu {m['cpu_ms_per_req']:.3f} ms/req  "
                        f"errors {m['errors']}",
                        flush=True,
                    )
    finally:
        mock.stop()
        for tree in {base_tree, head_tree} - {h.REPO}:
            subprocess.run(
                ["git", "-C", str(h.REPO), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
            )

    head = args.head or "this checkout"
    summary: dict[str, Any] = {
        "base": args.base,
        "head": head,
        "rounds": args.rounds,
        "levels": {},
    }
    print(f"\nmedian of {args.rounds} rounds (dLLM route, JSON); {args.base} -> {head}")
    for c in map(str, LEVELS):
        floor = statistics.median(direct[c])
        row: dict[str, Any] = {"direct_p50_ms": floor}
        for side in trees:
            ms = samples[side][c]
            row[side] = {
                "cpu_ms_per_req": statistics.median(m["cpu_ms_per_req"] for m in ms),
                "added_p50_ms": statistics.median(m["p50_ms"] for m in ms) - floor,
                "rps": statistics.median(m["rps"] for m in ms),
                "errors": sum(m["errors"] for m in ms),
            }
        b, a = row["before"], row["after"]
        row["cpu_ratio"] = a["cpu_ms_per_req"] / b["cpu_ms_per_req"]
        row["added_p50_ratio"] = (
            a["added_p50_ms"] / b["added_p50_ms"] if b["added_p50_ms"] else None
        )
        summary["levels"][c] = row
        print(
            f"  c={c:<2s} cpu/req {b['cpu_ms_per_req']:.3f} -> {a['cpu_ms_per_req']:.3f} ms "
            f"(x{row['cpu_ratio']:.2f})   added p50 {b['added_p50_ms']:.2f} -> "
            f"{a['added_p50_ms']:.2f} ms   rps {b['rps']:.0f} -> {a['rps']:.0f}"
        )
    summary["machine"] = h.machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
