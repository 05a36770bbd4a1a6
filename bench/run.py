"""Stepgate vs LiteLLM proxy vs the direct upstream, in one run, on the same mock upstream.

    python bench/run.py            # full run, ~8-10 minutes on 2 cores
    python bench/run.py --quick    # ~3 minutes, shorter measurements

Starts the mock upstream (bench/mock_upstream.py, fixed model time), then measures with wrk
(closed loop, 1 thread, bench/loadgen.lua) at concurrency 1, 8 and 32, JSON and streaming:

1. direct: wrk straight at the mock (the floor every "added latency" is measured against);
2. Stepgate, `stepgate serve --workers 1` with bench/policy.yaml (auth when `stepgate keys`
   exists, routing, SQLite ledger, metrics, JSON request logs): first the dLLM route only
   (litellm never loaded), then the AR route (litellm library -> the same mock);
   cold start is measured twice, in separate launches: process start to the first 200 on the
   dLLM route, and process start to the first 200 on the AR route;
3. LiteLLM proxy 1.110.2, one worker, master key, bench/litellm_proxy_config.yaml.

Writes bench/results/latest.json and prints a table plus the DESIGN.md budgets as PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h

RESULTS = h.BENCH / "results" / "latest.json"
POLICY = h.BENCH / "policy.yaml"
LEVELS = (1, 8, 32)
MODES = ("json", "stream")
# Stepgate's measured routes: dLLM; AR with the default transport (litellm resolves the provider
# and maps the request, Stepgate's client sends it); AR through litellm.acompletion.
STEPGATE_ROUTES = ("dllm", "ar", "ar_sdk")
SATURATION_C = 128  # in flight for the maximum-throughput measurement
MASTER_KEY = "sk-bench-master-key-0123456789"

SYSTEM = "You are a support triage assistant. Answer with exactly one label."
DLLM_PROMPT = (
    "Classify this ticket into one of: billing, shipping, returns, technical, other.\n\n"
    "Ticket: I was charged twice for order 4417723 this month, please refund the duplicate "
    "charge to my card."
)
AR_PROMPT = (
    "The customer bought a bundle with a 20% coupon, returned one item after 40 days and was "
    "refunded in store credit, and now asks for a cash refund of the remaining items. Work out "
    "which of our three refund policies apply, in what order, and what we owe them."
)


def body(model: str, prompt: str, *, stream: bool) -> bytes:
    data: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 64,
    }
    if stream:
        data["stream"] = True
    return json.dumps(data).encode()


def write_bodies(workdir: Path) -> dict[str, Path]:
    out = {}
    specs = {
        "direct": ("bench-model", DLLM_PROMPT),
        "dllm": ("auto", DLLM_PROMPT),
        "ar": ("auto", AR_PROMPT),
        "litellm": ("bench-model", DLLM_PROMPT),
    }
    for name, (model, prompt) in specs.items():
        for mode in MODES:
            p = workdir / f"{name}-{mode}.json"
            p.write_bytes(body(model, prompt, stream=mode == "stream"))
            out[f"{name}-{mode}"] = p
    return out


def sweep(
    label: str,
    server: h.Server | None,
    port: int,
    bodies: dict[str, Path],
    key: str,
    *,
    auth: str | None,
    headers: tuple[tuple[str, str], ...] = (),
    args: argparse.Namespace,
    workdir: Path,
    mock: h.Server,
) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        load = h.Load(bodies[f"{key}-{mode}"], auth=auth, headers=headers)
        # warm-up (not recorded): connection pools, first-call imports, JIT-ish caches
        h.wrk(
            port,
            "/v1/chat/completions",
            load,
            connections=8,
            duration_s=args.warmup,
            workdir=workdir,
        )
        runs[mode] = {}
        for c in LEVELS:
            r = h.measure(
                server,
                port,
                "/v1/chat/completions",
                load,
                connections=c,
                duration_s=args.duration,
                workdir=workdir,
                mock=mock,
            )
            runs[mode][str(c)] = r
            cpu = f"{r['cpu_ms_per_req']:.2f}" if r["cpu_ms_per_req"] is not None else "-"
            print(
                f"  {label:15s} {mode:6s} c={c:<3d} {r['rps']:8.1f} rps  p50 {r['p50_ms']:7.2f}"
                f"  p99 {r['p99_ms']:7.2f} ms  cpu {cpu} ms/req  errors {r['errors']}",
                flush=True,
            )
    return runs


def saturate(
    label: str,
    server: h.Server,
    port: int,
    body: Path,
    *,
    auth: str | None,
    args: argparse.Namespace,
    workdir: Path,
    mock: h.Server,
) -> dict[str, Any]:
    """JSON at SATURATION_C in flight: the maximum throughput, where c=32 (32 / ~21 ms, about
    1,500 RPS) can be the mock's model time rather than the server's limit."""
    r = h.measure(
        server,
        port,
        "/v1/chat/completions",
        h.Load(body, auth=auth),
        connections=SATURATION_C,
        duration_s=args.duration,
        workdir=workdir,
        mock=mock,
    )
    print(
        f"  {label:15s} json   c={SATURATION_C:<3d} {r['rps']:8.1f} rps  p50 {r['p50_ms']:7.2f}"
        f"  p99 {r['p99_ms']:7.2f} ms  cpu {r['cpu_ms_per_req']:.2f} ms/req  cpu util "
        f"{r['cpu_util']:.2f}  errors {r['errors']}",
        flush=True,
    )
    return r


def stepgate_phase(
    args: argparse.Namespace, workdir: Path, mock: h.Server, bodies: dict[str, Path]
) -> dict[str, Any]:
    upstream = f"http://127.0.0.1:{mock.port}/v1"
    env = h.stepgate_env(workdir, upstream)
    key, auth_note = h.create_virtual_key(env, workdir)
    if key:
        env["STEPGATE_REQUIRE_KEYS"] = "true"
    auth = f"Bearer {key}" if key else None
    auth_headers = {"authorization": auth} if auth else {}
    out: dict[str, Any] = {"auth": auth_note}
    ar_headers = (("X-Step-Kind", "reason"),)

    # Launch 1, production defaults (litellm preloaded in the background where the gateway
    # does that): process start to the first 200 on the dLLM route, then on the AR route.
    sg = h.start_stepgate(workdir, env, policy=POLICY)
    try:
        secs, hdrs, _ = h.wait_for_200(
            sg.port,
            "/v1/chat/completions",
            started=sg.started,
            proc=sg.proc,
            log=sg.log,
            body=bodies["dllm-json"].read_bytes(),
            headers=auth_headers,
        )
        out["cold_start_dllm_s"] = secs
        secs, hdrs, _ = h.wait_for_200(
            sg.port,
            "/v1/chat/completions",
            started=sg.started,
            proc=sg.proc,
            log=sg.log,
            body=bodies["ar-json"].read_bytes(),
            headers={**auth_headers, "x-step-kind": "reason"},
        )
        out["cold_start_ar_s"] = secs
        out["ar_route_header"] = hdrs.get("x-stepgate-route")
        out["rss_defaults_after_first_ar_mib"] = h.rss_mib(sg.pid)
    finally:
        sg.stop()

    # Launch 2, litellm not preloaded (STEPGATE_PRELOAD_AR=false): the dLLM-only phase and
    # its RSS without litellm, then the AR phase (litellm imported by the first AR request).
    sg = h.start_stepgate(workdir, {**env, "STEPGATE_PRELOAD_AR": "false"}, policy=POLICY)
    try:
        secs, hdrs, _ = h.wait_for_200(
            sg.port,
            "/v1/chat/completions",
            started=sg.started,
            proc=sg.proc,
            log=sg.log,
            body=bodies["dllm-json"].read_bytes(),
            headers=auth_headers,
        )
        out["cold_start_dllm_no_preload_s"] = secs
        out["rss_after_start_mib"] = h.rss_mib(sg.pid)
        route = hdrs.get("x-stepgate-route")
        out["dllm_route_header"] = route
        out["dllm_backend_header"] = hdrs.get("x-stepgate-backend")
        if hdrs.get("x-stepgate-backend") != "dllm":
            raise RuntimeError(
                f"the dLLM body was routed to {hdrs.get('x-stepgate-backend')!r} "
                f"(route {route!r}); fix bench/policy.yaml or the prompt"
            )
        if key:
            status, _, _ = h.http_request(
                sg.port, "POST", "/v1/chat/completions", body=bodies["dllm-json"].read_bytes()
            )
            out["unauthenticated_status"] = status
        print(
            f"stepgate: cold start (dLLM route) {out['cold_start_dllm_s']:.2f}s, "
            f"(AR route) {out['cold_start_ar_s']:.2f}s, (dLLM route, no preload) "
            f"{out['cold_start_dllm_no_preload_s']:.2f}s; {auth_note}",
            flush=True,
        )
        out["dllm"] = sweep(
            "stepgate dLLM",
            sg,
            sg.port,
            bodies,
            "dllm",
            auth=auth,
            args=args,
            workdir=workdir,
            mock=mock,
        )
        out["dllm_saturated"] = saturate(
            "stepgate dLLM",
            sg,
            sg.port,
            bodies["dllm-json"],
            auth=auth,
            args=args,
            workdir=workdir,
            mock=mock,
        )
        out["rss_after_dllm_mib"] = h.rss_mib(sg.pid)
        out["peak_rss_dllm_mib"] = h.peak_rss_mib(sg.pid)
        out["readyz_after_dllm"] = _readyz(sg.port)
        backends = out["readyz_after_dllm"].get("backends") or {}
        out["litellm_loaded_after_dllm"] = bool((backends.get("ar") or {}).get("ready"))
        t0 = time.perf_counter()
        status, hdrs, _ = h.http_request(
            sg.port,
            "POST",
            "/v1/chat/completions",
            body=bodies["ar-json"].read_bytes(),
            headers={**auth_headers, "x-step-kind": "reason"},
            timeout=60,
        )
        out["first_ar_request_s"] = time.perf_counter() - t0
        if status != 200 or hdrs.get("x-stepgate-backend") != "ar":
            raise RuntimeError(
                f"AR request: HTTP {status}, backend {hdrs.get('x-stepgate-backend')}"
            )
        status, hdrs, _ = h.http_request(
            sg.port,
            "POST",
            "/v1/chat/completions",
            body=bodies["ar-json"].read_bytes(),
            headers={**auth_headers, "x-step-kind": "draft"},
            timeout=60,
        )
        if status != 200 or hdrs.get("x-stepgate-backend") != "ar-sdk":
            raise RuntimeError(
                f"AR (sdk) request: HTTP {status}, backend {hdrs.get('x-stepgate-backend')}"
            )
        out["ar"] = sweep(
            "stepgate AR",
            sg,
            sg.port,
            bodies,
            "ar",
            auth=auth,
            headers=ar_headers,
            args=args,
            workdir=workdir,
            mock=mock,
        )
        # The same AR step through `litellm.acompletion` (backend `ar-sdk`, `transport:
        # litellm`, routed by X-Step-Kind: draft): what any provider without an OpenAI wire of
        # its own (Anthropic, Gemini, Bedrock, ...) costs.
        out["ar_sdk"] = sweep(
            "stepgate AR sdk",
            sg,
            sg.port,
            bodies,
            "ar",
            auth=auth,
            headers=(("X-Step-Kind", "draft"),),
            args=args,
            workdir=workdir,
            mock=mock,
        )
        out["rss_after_ar_mib"] = h.rss_mib(sg.pid)
        out["peak_rss_mib"] = h.peak_rss_mib(sg.pid)
    finally:
        sg.stop()
    return out


def _readyz(port: int) -> Any:
    try:
        _, _, data = h.http_request(port, "GET", "/readyz")
        return json.loads(data)
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}


def litellm_phase(
    args: argparse.Namespace, workdir: Path, mock: h.Server, bodies: dict[str, Path]
) -> dict[str, Any]:
    upstream = f"http://127.0.0.1:{mock.port}/v1"
    lp = h.start_litellm_proxy(workdir, upstream, master_key=MASTER_KEY)
    auth = f"Bearer {MASTER_KEY}"
    out: dict[str, Any] = {"auth": "master key"}
    try:
        secs, _, _ = h.wait_for_200(
            lp.port,
            "/v1/chat/completions",
            started=lp.started,
            proc=lp.proc,
            log=lp.log,
            body=bodies["litellm-json"].read_bytes(),
            headers={"authorization": auth},
            limit_s=300,
            interval_s=0.05,
        )
        out["cold_start_s"] = secs
        out["rss_after_start_mib"] = h.rss_mib(lp.pid)
        out["processes"] = len(h.process_tree(lp.pid))
        print(f"litellm proxy: cold start {secs:.2f}s, {out['processes']} process(es)", flush=True)
        out["runs"] = sweep(
            "litellm proxy",
            lp,
            lp.port,
            bodies,
            "litellm",
            auth=auth,
            args=args,
            workdir=workdir,
            mock=mock,
        )
        out["saturated"] = saturate(
            "litellm proxy",
            lp,
            lp.port,
            bodies["litellm-json"],
            auth=auth,
            args=args,
            workdir=workdir,
            mock=mock,
        )
        out["rss_after_mib"] = h.rss_mib(lp.pid)
        out["peak_rss_mib"] = h.peak_rss_mib(lp.pid)
    finally:
        lp.stop()
    return out


def add_overheads(runs: dict[str, dict[str, Any]], direct: dict[str, dict[str, Any]]) -> None:
    for mode, by_c in runs.items():
        for c, r in by_c.items():
            d = direct[mode][c]
            for q in ("p50", "p90", "p99"):
                r[f"added_{q}_ms"] = r[f"{q}_ms"] - d[f"{q}_ms"]


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios_and_budgets(res: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sg, lp = res["stepgate"], res.get("litellm_proxy")
    dj = sg["dllm"]["json"]
    ratios: dict[str, Any] = {}
    budgets: list[dict[str, Any]] = []

    def budget(
        name: str,
        value: float | None,
        limit: float,
        *,
        higher_is_better: bool = False,
        unit: str = "",
    ) -> None:
        ok = value is not None and (value >= limit if higher_is_better else value <= limit)
        budgets.append({"budget": name, "value": value, "limit": limit, "unit": unit, "pass": ok})

    budget("dLLM CPU per request (JSON, c=8)", dj["8"]["cpu_ms_per_req"], 1.0, unit="ms")
    budget("dLLM added p50 c=1 (JSON)", dj["1"]["added_p50_ms"], 1.5, unit="ms")
    budget("dLLM added p50 c=8 (JSON)", dj["8"]["added_p50_ms"], 3.0, unit="ms")
    errs = sum(sg[r][m]["32"]["errors"] for r in STEPGATE_ROUTES if r in sg for m in MODES)
    errs += sg.get("dllm_saturated", {}).get("errors", 0)
    budget(f"Stepgate errors at c=32 (and c={SATURATION_C})", errs, 0)
    budget("cold start to first 200, dLLM route", sg["cold_start_dllm_s"], 1.5, unit="s")
    budget("RSS while litellm not loaded", sg["rss_after_dllm_mib"], 150, unit="MiB")
    if lp:
        lj = lp["runs"]["json"]
        for mode in MODES:
            for route in (r for r in STEPGATE_ROUTES if r in sg):
                ratios[f"rps_c32_{route}_{mode}_vs_litellm"] = _ratio(
                    sg[route][mode]["32"]["rps"], lp["runs"][mode]["32"]["rps"]
                )
                for c in ("1", "8"):
                    ratios[f"added_p50_c{c}_litellm_over_{route}_{mode}"] = _ratio(
                        lp["runs"][mode][c]["added_p50_ms"], sg[route][mode][c]["added_p50_ms"]
                    )
                ratios[f"cpu_c8_litellm_over_{route}_{mode}"] = _ratio(
                    lp["runs"][mode]["8"]["cpu_ms_per_req"], sg[route][mode]["8"]["cpu_ms_per_req"]
                )
        ratios["cold_start_litellm_over_stepgate_dllm"] = _ratio(
            lp["cold_start_s"], sg["cold_start_dllm_s"]
        )
        ratios["peak_rss_litellm_over_stepgate"] = _ratio(lp["peak_rss_mib"], sg["peak_rss_mib"])
        if "dllm_saturated" in sg and "saturated" in lp:
            best_sg = max(sg["dllm"]["json"]["32"]["rps"], sg["dllm_saturated"]["rps"])
            best_lp = max(lp["runs"]["json"]["32"]["rps"], lp["saturated"]["rps"])
            ratios["max_rps_dllm_json_vs_litellm"] = _ratio(best_sg, best_lp)
        else:
            ratios["max_rps_dllm_json_vs_litellm"] = ratios["rps_c32_dllm_json_vs_litellm"]
        budget(
            f"max throughput (JSON, best of c=32 and c={SATURATION_C}) vs LiteLLM proxy",
            ratios["max_rps_dllm_json_vs_litellm"],
            10.0,
            higher_is_better=True,
            unit="x",
        )
        budget(
            "LiteLLM errors at c=32 (for the record)",
            sum(lp["runs"][m]["32"]["errors"] for m in MODES),
            0,
        )
        ar_lat = min(ratios[f"added_p50_c{c}_litellm_over_ar_json"] or 0 for c in ("1", "8"))
        budget(
            "AR route: LiteLLM added p50 / Stepgate's (JSON, min of c=1,8)",
            ar_lat,
            5.0,
            higher_is_better=True,
            unit="x",
        )
        budget(
            "AR route: LiteLLM CPU/req / Stepgate's (JSON, c=8)",
            ratios["cpu_c8_litellm_over_ar_json"],
            5.0,
            higher_is_better=True,
            unit="x",
        )
        if "ar_sdk" in sg:
            sdk_lat = min(
                ratios[f"added_p50_c{c}_litellm_over_ar_sdk_json"] or 0 for c in ("1", "8")
            )
            budget(
                "AR via litellm.acompletion (for the record): LiteLLM added p50 / Stepgate's",
                sdk_lat,
                5.0,
                higher_is_better=True,
                unit="x",
            )
            budget(
                "AR via litellm.acompletion (for the record): LiteLLM CPU/req / Stepgate's",
                ratios["cpu_c8_litellm_over_ar_sdk_json"],
                5.0,
                higher_is_better=True,
                unit="x",
            )
        _ = lj
    return ratios, budgets


def print_table(res: dict[str, Any]) -> None:
    rows = [("direct", res["direct"])]
    sg = res["stepgate"]
    rows += [("stepgate dLLM", sg["dllm"]), ("stepgate AR", sg["ar"])]
    if "ar_sdk" in sg:
        rows.append(("stepgate AR sdk", sg["ar_sdk"]))
    if res.get("litellm_proxy"):
        rows.append(("litellm proxy", res["litellm_proxy"]["runs"]))
    print()
    print(
        f"{'server':15s} {'mode':6s} {'c':>3s} {'rps':>8s} {'p50':>7s} {'p90':>7s} {'p99':>7s}"
        f" {'+p50':>7s} {'+p90':>7s} {'cpu/req':>8s} {'err':>4s}"
    )
    for name, runs in rows:
        for mode in MODES:
            for c in LEVELS:
                r = runs[mode][str(c)]
                cpu = r["cpu_ms_per_req"]
                print(
                    f"{name:15s} {mode:6s} {c:3d} {r['rps']:8.1f} {r['p50_ms']:7.2f}"
                    f" {r['p90_ms']:7.2f} {r['p99_ms']:7.2f}"
                    f" {r.get('added_p50_ms', 0.0):7.2f} {r.get('added_p90_ms', 0.0):7.2f}"
                    f" {cpu if cpu is None else round(cpu, 3)!s:>8s} {r['errors']:4d}"
                )
    print(
        "(latencies in ms; +p50/+p90: added over direct at the same mode and concurrency;"
        " cpu/req: server process tree CPU ms per request)"
    )
    print()
    print(
        f"stepgate: cold start dLLM {sg['cold_start_dllm_s']:.2f}s,"
        f" AR {sg['cold_start_ar_s']:.2f}s (defaults), dLLM without litellm preload"
        f" {sg['cold_start_dllm_no_preload_s']:.2f}s; litellm loaded after the dLLM phase:"
        f" {sg['litellm_loaded_after_dllm']};"
        f" RSS after start {sg['rss_after_start_mib']:.0f} MiB, after dLLM phase "
        f"{sg['rss_after_dllm_mib']:.0f} MiB, after AR phase {sg['rss_after_ar_mib']:.0f} MiB,"
        f" peak {sg['peak_rss_mib']:.0f} MiB; {sg['auth']}"
    )
    lp = res.get("litellm_proxy")
    if lp:
        print(
            f"litellm proxy: cold start {lp['cold_start_s']:.2f}s; RSS {lp['rss_after_mib']:.0f}"
            f" MiB, peak {lp['peak_rss_mib']:.0f} MiB"
        )
    print()
    for b in res["budgets"]:
        v = b["value"]
        vs = "n/a" if v is None else f"{v:.2f}"
        cmp = ">=" if "vs LiteLLM" in b["budget"] or "/ Stepgate" in b["budget"] else "<="
        print(
            f"  [{'PASS' if b['pass'] else 'FAIL'}] {b['budget']}: {vs}{b['unit']} "
            f"({cmp} {b['limit']}{b['unit']})"
        )


def markdown(res: dict[str, Any]) -> str:
    """The README's tables, from a results file (`python bench/run.py --markdown FILE`)."""
    sg, lp = res["stepgate"], res.get("litellm_proxy")
    rows = [("direct upstream", res["direct"]), ("Stepgate, dLLM route", sg["dllm"])]
    rows.append(("Stepgate, AR route (litellm resolves, native OpenAI wire)", sg["ar"]))
    if "ar_sdk" in sg:
        rows.append(("Stepgate, AR route via `litellm.acompletion`", sg["ar_sdk"]))
    if lp:
        rows.append(("LiteLLM proxy", lp["runs"]))
    out = [
        "| server | mode | c | RPS | p50 | p90 | p99 | added p50 | added p90 | CPU ms/req"
        " | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, runs in rows:
        for mode in MODES:
            for c in LEVELS:
                r = runs[mode][str(c)]
                cpu = "-" if r["cpu_ms_per_req"] is None else f"{r['cpu_ms_per_req']:.2f}"
                added = (
                    ("-", "-")
                    if "added_p50_ms" not in r
                    else (f"{r['added_p50_ms']:.2f}", f"{r['added_p90_ms']:.2f}")
                )
                out.append(
                    f"| {name} | {mode} | {c} | {r['rps']:.1f} | {r['p50_ms']:.2f} |"
                    f" {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {added[0]} | {added[1]} | {cpu} |"
                    f" {r['errors']} |"
                )
    saturated = [("Stepgate, dLLM route", sg.get("dllm_saturated"))]
    if lp:
        saturated.append(("LiteLLM proxy", lp.get("saturated")))
    for name, r in saturated:
        if r is not None:
            out.append(
                f"| {name} (saturation) | json | {SATURATION_C} | {r['rps']:.1f} |"
                f" {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | - | - |"
                f" {r['cpu_ms_per_req']:.2f} | {r['errors']} |"
            )
    out += ["", "| budget (DESIGN.md) | value | limit | |", "|---|--:|--:|---|"]
    for b in res["budgets"]:
        v = "n/a" if b["value"] is None else f"{b['value']:.2f}{b['unit']}"
        out.append(
            f"| {b['budget']} | {v} | {b['limit']}{b['unit']} | {'PASS' if b['pass'] else 'FAIL'} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="4 s per measurement (about 3 minutes)")
    ap.add_argument("--duration", type=float, help="seconds per measurement (default 10; 4 quick)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per server and mode")
    ap.add_argument("--model-ms", type=float, default=20.0, help="mock model time per request")
    ap.add_argument("--tokens", type=int, default=4, help="mock answer tokens / stream chunks")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM proxy")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--markdown", type=Path, help="print README tables from a results file")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())), end="")
        return
    args.duration = args.duration or (4.0 if args.quick else 10.0)
    args.warmup = args.warmup or (1.0 if args.quick else 2.0)

    t_start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-"))
    res: dict[str, Any] = {
        "meta": {
            **h.machine_info(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "duration_s": args.duration,
            "model_ms": args.model_ms,
            "tokens": args.tokens,
            "levels": list(LEVELS),
            "loadgen": "wrk -t1 -c<c> (closed loop) with bench/loadgen.lua",
        }
    }
    mock = h.start_mock(workdir, model_ms=args.model_ms, tokens=args.tokens)
    try:
        bodies = write_bodies(workdir)
        print(
            f"mock upstream :{mock.port}, model time {args.model_ms} ms; workdir {workdir}",
            flush=True,
        )
        res["direct"] = sweep(
            "direct",
            None,
            mock.port,
            bodies,
            "direct",
            auth=None,
            args=args,
            workdir=workdir,
            mock=mock,
        )
        h.precompile()
        res["meta"]["bytecode"] = "gateway/ and connectors/ precompiled (compileall)"
        res["stepgate"] = stepgate_phase(args, workdir, mock, bodies)
        for route in STEPGATE_ROUTES:
            if route in res["stepgate"]:
                add_overheads(res["stepgate"][route], res["direct"])
        if not args.no_litellm:
            res["litellm_proxy"] = litellm_phase(args, workdir, mock, bodies)
            add_overheads(res["litellm_proxy"]["runs"], res["direct"])
    finally:
        mock.stop()
    res["ratios"], res["budgets"] = ratios_and_budgets(res)
    res["meta"]["loadavg_end"] = os.getloadavg()
    res["meta"]["cpu_calibration_end_s"] = h.cpu_calibration_s()
    res["meta"]["wall_s"] = time.perf_counter() - t_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print_table(res)
    meta = res["meta"]
    print(
        f"\nload average {meta['loadavg_start'][0]:.1f} -> {meta['loadavg_end'][0]:.1f} on"
        f" {meta['cpus']} CPUs; CPU calibration {meta['cpu_calibration_s']}s ->"
        f" {meta['cpu_calibration_end_s']}s (CPU figures scale with it)"
    )
    print(f"wrote {args.out} in {meta['wall_s']:.0f}s")


if __name__ == "__main__":
    main()
