"""Soak: Stepgate's dLLM route at a steady fraction of its measured maximum, RSS watched.

    python bench/soak.py [--minutes 10] [--fraction 0.6] [--rate RPS]

Starts the mock upstream and `stepgate serve --workers 1` (bench/policy.yaml, auth when
`stepgate keys` exists, SQLite ledger, metrics) on 127.0.0.1, measures the maximum throughput
(wrk, 128 in flight, JSON) unless --rate is given, then runs a bounded sequence of 30-second
wrk windows at --fraction of it. The rate is held with wrk's per-connection delay
(bench/loadgen.lua, BENCH_DELAY_MS), corrected after every window from the rate it measured.
After each window it records RPS, p50/p99, errors and the server's RSS. Passes when there are
no errors and RSS grew by less than 20 MiB from the end of the first minute (warm caches,
pools, first ledger batches) to the end. Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h

RESULTS = h.BENCH / "results" / "soak.json"
WINDOW_S = 30
# Enough connections to reach the target rate with the 20 ms mock (rate x ~25 ms in flight),
# held down to it by a per-connection delay.
CONNECTIONS = 64
PEAK_CONNECTIONS = 128  # the maximum is measured at saturation, as bench/run.py does
RSS_LIMIT_MIB = 20.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fraction", type=float, default=0.6)
    ap.add_argument("--rate", type=float, help="target requests/s (default: fraction of max)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    import run as bench_run

    workdir = Path(tempfile.mkdtemp(prefix="stepgate-soak-"))
    mock = h.start_mock(workdir, model_ms=20.0, tokens=4)
    res: dict[str, Any] = {"meta": {**h.machine_info(), "minutes": args.minutes}}
    windows: list[dict[str, Any]] = []
    try:
        env = h.stepgate_env(workdir, f"http://127.0.0.1:{mock.port}/v1")
        env["STEPGATE_PRELOAD_AR"] = "false"  # the dLLM path alone; litellm is never loaded
        key, note = h.create_virtual_key(env, workdir)
        if key:
            env["STEPGATE_REQUIRE_KEYS"] = "true"
        res["meta"]["auth"] = note
        bodies = bench_run.write_bodies(workdir)
        load = h.Load(bodies["dllm-json"], auth=f"Bearer {key}" if key else None)
        sg = h.start_stepgate(workdir, env, policy=bench_run.POLICY)
        try:
            h.wait_for_200(
                sg.port,
                "/v1/chat/completions",
                started=sg.started,
                proc=sg.proc,
                log=sg.log,
                body=load.body.read_bytes(),
                headers={"authorization": load.auth} if load.auth else {},
            )
            if args.rate:
                target = args.rate
            else:
                peak = h.wrk(
                    sg.port,
                    "/v1/chat/completions",
                    load,
                    connections=PEAK_CONNECTIONS,
                    duration_s=10,
                    workdir=workdir,
                )
                max_rps = peak["requests"] / (peak["duration_us"] / 1e6)
                res["max_rps"] = max_rps
                target = args.fraction * max_rps
            res["target_rps"] = target
            print(f"soak: target {target:.1f} rps for {args.minutes} min", flush=True)
            # per-connection cycle time = c / rate; the upstream's latency is part of it
            delay_ms = max(0.0, CONNECTIONS * 1000 / target - 25.0)
            n_windows = max(1, round(args.minutes * 60 / WINDOW_S))
            t0 = time.perf_counter()
            for i in range(n_windows):
                cpu0 = h.cpu_seconds(sg.pid)
                raw = h.wrk(
                    sg.port,
                    "/v1/chat/completions",
                    load,
                    connections=CONNECTIONS,
                    duration_s=WINDOW_S,
                    workdir=workdir,
                    delay_ms=delay_ms,
                )
                n = raw["requests"]
                rps = n / (raw["duration_us"] / 1e6)
                w = {
                    "t_s": round(time.perf_counter() - t0, 1),
                    "rps": round(rps, 1),
                    "delay_ms": round(delay_ms, 2),
                    "p50_ms": raw["latency_us"]["p50"] / 1000,
                    "p99_ms": raw["latency_us"]["p99"] / 1000,
                    "errors": sum(raw["errors"].values()),
                    "cpu_ms_per_req": (h.cpu_seconds(sg.pid) - cpu0) * 1000 / max(n, 1),
                    "rss_mib": round(h.rss_mib(sg.pid), 1),
                }
                windows.append(w)
                print(f"  window {i + 1}/{n_windows}: {w}", flush=True)
                # correct the delay toward the target rate (cycle time scales with 1/rps)
                if rps > 0:
                    cycle_ms = CONNECTIONS * 1000 / rps
                    delay_ms = max(0.0, delay_ms + CONNECTIONS * 1000 / target - cycle_ms)
            res["peak_rss_mib"] = h.peak_rss_mib(sg.pid)
        finally:
            sg.stop()
    finally:
        mock.stop()
    base_i = min(len(windows) - 1, max(0, round(60 / WINDOW_S) - 1))
    growth = windows[-1]["rss_mib"] - windows[base_i]["rss_mib"]
    errors = sum(w["errors"] for w in windows)
    res.update(
        windows=windows,
        rss_baseline_mib=windows[base_i]["rss_mib"],
        rss_end_mib=windows[-1]["rss_mib"],
        rss_growth_mib=round(growth, 1),
        errors=errors,
        pass_=errors == 0 and growth < RSS_LIMIT_MIB,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(
        f"soak: {'PASS' if res['pass_'] else 'FAIL'}: RSS {res['rss_baseline_mib']} -> "
        f"{res['rss_end_mib']} MiB (growth {growth:.1f} MiB, limit {RSS_LIMIT_MIB}), "
        f"errors {errors}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
