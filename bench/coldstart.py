"""Cold start, repeated: process start to the first 200 on the dLLM route, litellm preload on/off.

    python bench/coldstart.py [--runs 3]

Alternates launches of `stepgate serve --workers 1` (bench/policy.yaml, virtual key when
`stepgate keys` exists, bytecode precompiled) with STEPGATE_PRELOAD_AR=true and false, and
reports each launch and the medians; also the RSS right after the first 200. One launch is too
noisy on a shared machine to compare the two settings. Writes bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import harness as h

RESULTS = h.BENCH / "results" / "coldstart.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import run as bench_run

    workdir = Path(tempfile.mkdtemp(prefix="stepgate-coldstart-"))
    h.precompile()
    mock = h.start_mock(workdir, model_ms=20.0, tokens=4)
    launches: list[dict[str, Any]] = []
    try:
        env = h.stepgate_env(workdir, f"http://127.0.0.1:{mock.port}/v1")
        key, note = h.create_virtual_key(env, workdir)
        if key:
            env["STEPGATE_REQUIRE_KEYS"] = "true"
        body = bench_run.write_bodies(workdir)["dllm-json"].read_bytes()
        headers = {"authorization": f"Bearer {key}"} if key else {}
        for i in range(args.runs):
            for preload in ("true", "false"):
                sg = h.start_stepgate(
                    workdir, {**env, "STEPGATE_PRELOAD_AR": preload}, policy=bench_run.POLICY
                )
                try:
                    secs, _, _ = h.wait_for_200(
                        sg.port,
                        "/v1/chat/completions",
                        started=sg.started,
                        proc=sg.proc,
                        log=sg.log,
                        body=body,
                        headers=headers,
                    )
                    rss = h.rss_mib(sg.pid)
                finally:
                    sg.stop()
                launch: dict[str, Any] = {
                    "run": i,
                    "preload_ar": preload == "true",
                    "first_200_s": secs,
                    "rss_mib": round(rss, 1),
                }
                launches.append(launch)
                print(f"  {launch}", flush=True)
    finally:
        mock.stop()
    out: dict[str, Any] = {"meta": {**h.machine_info(), "auth": note}, "launches": launches}
    for on in (True, False):
        xs = [x["first_200_s"] for x in launches if x["preload_ar"] is on]
        out[f"median_first_200_s_preload_{str(on).lower()}"] = statistics.median(xs)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"median first 200: preload on {out['median_first_200_s_preload_true']:.2f}s, "
        f"off {out['median_first_200_s_preload_false']:.2f}s; wrote {RESULTS}"
    )


if __name__ == "__main__":
    main()
