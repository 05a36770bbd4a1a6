"""Run the public failoverbench suite against `stepgate serve` with its `endpoint` adapter.

    python bench/failoverbench/run.py --harness DIR [--profile full|fast] [--only S01,S08]

DIR is a checkout of github.com/failoverbench/failoverbench (see README.md here; its code is
not part of this repository). The script starts the harness's fake provider (the wall) on a
free port, `stepgate serve` on another with bench/failoverbench/policy.yaml pointed at the
wall, runs `python -m failoverbench run` through the gateway, and writes
bench/results/failoverbench.json: per-scenario verdicts, reasons, checks and the wall's view,
with the harness commit and this checkout's commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.e2e_server import free_port, serve  # noqa: E402


def git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def harness_commit(harness: Path, given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("FAILOVERBENCH_COMMIT"):
        return os.environ["FAILOVERBENCH_COMMIT"]
    # A harness rebuilt file by file (README.md, "Rebuilding") records where each file came from.
    source = harness / "SOURCE.json"
    if source.exists():
        return str(json.loads(source.read_text()).get("commit"))
    return git("rev-parse", "HEAD", cwd=harness)


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer at {url}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--harness",
        type=Path,
        default=os.environ.get("FAILOVERBENCH_DIR"),
        help="failoverbench checkout (default $FAILOVERBENCH_DIR)",
    )
    ap.add_argument(
        "--harness-commit", default=None, help="record this harness commit (default: from DIR)"
    )
    ap.add_argument("--policy", type=Path, default=HERE / "policy.yaml")
    ap.add_argument("--profile", choices=("full", "fast"), default="full")
    ap.add_argument("--only", default="", help="comma-separated scenario ids, e.g. S08,S14")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "failoverbench.json")
    ap.add_argument("--keep", type=Path, default=None, help="keep the work dir (logs) here")
    args = ap.parse_args()
    if args.harness is None:
        ap.error("--harness DIR (or $FAILOVERBENCH_DIR) is required")
    harness = args.harness.resolve()
    if not (harness / "failoverbench" / "wall.py").exists():
        ap.error(f"{harness} does not look like a failoverbench checkout")

    work = (
        Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="failoverbench-"))
    )
    work.mkdir(parents=True, exist_ok=True)
    wall_port = free_port()
    wall_base = f"http://127.0.0.1:{wall_port}"
    py_env = {
        **os.environ,
        "PYTHONPATH": str(harness) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }

    wall_log = open(work / "wall.log", "wb")  # noqa: SIM115 - closed below
    wall = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failoverbench",
            "wall",
            "--port",
            str(wall_port),
            "--profile",
            args.profile,
            "-v",
        ],
        cwd=harness,
        env=py_env,
        stdout=wall_log,
        stderr=subprocess.STDOUT,
    )
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    try:
        wait_http(wall_base + "/control/health", wall, "the wall")
        gateway_env = {
            "FAILOVERBENCH_WALL_URL": wall_base + "/v1",
            "FAILOVERBENCH_API_KEY": "failoverbench",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        with serve(args.policy.resolve(), work, env=gateway_env, startup_s=120) as gateway:
            # The first call through a fresh gateway pays one-off start-up work (~5 s here); a
            # gateway under test is normally warm, and the runner resets the wall's log before
            # each scenario, so one healthy call first keeps that out of S01's timings.
            warm = httpx.post(
                gateway + "/v1/chat/completions",
                timeout=60,
                json={"model": "fb-ok", "messages": [{"role": "user", "content": "warm-up"}]},
            )
            print(f"warm-up: HTTP {warm.status_code}", flush=True)
            system = {
                "name": "stepgate",
                "label": "Stepgate (stepgate serve)",
                "adapter": "endpoint",
                "notes": "Routes named after each scenario model, one primary + one fallback "
                "backend, retry.max_attempts 3 (2 retries), request_s 30, stream_recovery "
                "continue; see bench/failoverbench/policy.yaml.",
                "params": {"base_url": gateway + "/v1", "api_key": "failoverbench"},
            }
            (work / "stepgate.yaml").write_text(json.dumps(system))
            cmd = [
                sys.executable,
                "-m",
                "failoverbench",
                "run",
                "--system",
                str(work / "stepgate.yaml"),
                "--catalogue",
                str(harness / "scenarios" / "catalogue.yaml"),
                "--wall",
                wall_base,
                "--profile",
                args.profile,
                "--out",
                str(work / "results"),
            ]
            if args.only:
                cmd += ["--only", args.only]
            rc = subprocess.run(cmd, cwd=harness, env=py_env).returncode
            if rc != 0:
                print(f"failoverbench run exited with {rc}; logs in {work}", file=sys.stderr)
                return rc
    finally:
        wall.terminate()
        try:
            wall.wait(timeout=10)
        except subprocess.TimeoutExpired:
            wall.kill()
        wall_log.close()

    doc = json.loads((work / "results" / args.profile / "stepgate.json").read_text())
    doc["system"]["params"]["base_url"] = "http://127.0.0.1:<port>/v1"
    status = git("status", "--porcelain", "--untracked-files=no", cwd=ROOT)
    result = {
        "benchmark": "failoverbench (github.com/failoverbench/failoverbench)",
        "harness_commit": harness_commit(harness, args.harness_commit),
        "harness_version": doc.get("failoverbench"),
        "methodology": doc.get("methodology"),
        "profile": args.profile,
        "adapter": "endpoint",
        "only": args.only or None,
        "stepgate_commit": git("rev-parse", "HEAD", cwd=ROOT),
        "stepgate_tree_dirty": bool(status) if status is not None else None,
        "policy": os.path.relpath(args.policy.resolve(), ROOT),
        "started_at": started,
        "wall_clock_s": round(time.monotonic() - t0, 1),
        "harness_run_seconds": doc.get("run_seconds"),
        "summary": doc["summary"],
        "scorecard": {
            s["id"]: {
                "title": s["title"],
                "verdict": s["verdict"],
                "reason": s["reason"],
                "attempts_primary": s["metrics"]["attempts_primary"],
                "attempts_fallback": s["metrics"]["attempts_fallback"],
                "elapsed_s": s["metrics"]["elapsed_s"],
            }
            for s in doc["scenarios"]
        },
        "timing": doc.get("timing"),
        "scenarios": doc["scenarios"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    s = result["summary"]
    print(
        f"stepgate: pass {s['pass']}  partial {s['partial']}  safe {s['safe']}  fail {s['fail']}  "
        f"({result['wall_clock_s']:.0f} s) -> {os.path.relpath(args.out, ROOT)}; logs in {work}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
