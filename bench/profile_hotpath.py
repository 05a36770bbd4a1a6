"""Profile Stepgate's hot path under load with py-spy, and summarise where the time goes.

    python bench/profile_hotpath.py [--seconds 20] [--connections 8] [--stream]

Starts the mock upstream and `stepgate serve --workers 1` with bench/policy.yaml (auth when
`stepgate keys` exists, routing, SQLite ledger, metrics), drives the dLLM route with wrk and
records the server with `py-spy record` (py-spy from bench/.venv-litellm, see README). Writes

* bench/profile/stepgate-MODE-cN.svg          flame graph
* bench/profile/stepgate-MODE-cN-top.txt      self and inclusive time by module and by function
  (computed from py-spy's folded stacks, which stay in the temporary work directory)

`--startup` profiles instead `stepgate serve` from its first instruction to the first 200 on
the dLLM route (bench/profile/startup-top.txt).

py-spy samples wall-clock stacks of the main thread; idle samples (the event loop waiting in
epoll) are dropped with --idle off, so the shares are shares of the CPU the process used.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness as h

OUT = h.BENCH / "profile"


def py_spy() -> str:
    local = h.BENCH_VENV_PYTHON.parent / "py-spy"
    if local.exists():
        return str(local)
    found = shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy not found: pip install py-spy (see bench/README.md)")
    return found


def _frame_module(frame: str) -> tuple[str, str]:
    """A py-spy frame 'func (path/to/file.py:123)' -> (module-ish label, 'func (file)')."""
    func, _, loc = frame.partition(" (")
    path = loc.rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        rel = path.split("site-packages/", 1)[1]
        module = rel.split("/", 1)[0]
    elif any(part in ("gateway", "connectors") for part in Path(path).parts):
        parts = Path(path).parts
        for anchor in ("gateway", "connectors"):
            if anchor in parts:
                i = parts.index(anchor)
                module = "/".join(parts[i : i + 2]).removesuffix(".py")
                break
        else:
            module = Path(path).name
    elif "/lib/python3" in path:
        module = "stdlib:" + Path(path).stem
    else:
        module = path or func
    short = f"{func} ({Path(path).name})" if path else func
    return module, short


# Hot-path buckets: a sample goes to the first bucket (in this order) any of whose markers is
# in one of its frames; the rest is the web server/framework and the event loop itself.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("worker threads (ledger writer: SQLAlchemy + SQLite)", ("write_batch", "(thread.py)")),
    ("litellm", ("litellm/",)),
    ("upstream HTTP client (httpx/httpcore/anyio/h11)", ("httpx/", "httpcore/", "h11/")),
    ("classifier", ("gateway/classify/",)),
    ("confidence verdict", ("gateway/confidence/",)),
    ("auth + limits", ("gateway/limits/",)),
    ("request logging + redaction", ("logging/", "gateway/telemetry/logs", "redact.py")),
    ("metrics + tracing", ("gateway/telemetry/",)),
    ("ledger enqueue + pricing (request thread)", ("gateway/ledger/",)),
    ("request parse (orjson + pydantic)", ("parse_chat", "read_json", "pydantic")),
    ("response render", ("gateway/ingress/openai",)),
    ("connector translate", ("connectors/",)),
    ("routing + dispatch + pipeline", ("gateway/routing", "gateway/dispatch", "gateway/pipeline")),
    ("uvicorn + starlette", ("uvicorn/", "starlette/")),
)


def buckets(collapsed: Path) -> list[tuple[str, float]]:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        n = int(count_s)
        total += n
        for name, markers in BUCKETS:
            if any(m in stack for m in markers):
                counts[name] += n
                break
        else:
            counts["event loop / other"] += n
    return [(name, 100 * n / total) for name, n in counts.most_common()]


def summarise(collapsed: Path, *, top: int = 40) -> str:
    self_mod: collections.Counter[str] = collections.Counter()
    self_fn: collections.Counter[str] = collections.Counter()
    incl_fn: collections.Counter[str] = collections.Counter()
    incl_mod: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        n = int(count_s)
        total += n
        frames = [f for f in stack.split(";") if f]
        # drop the thread/process header frames py-spy adds
        frames = [f for f in frames if " (" in f]
        if not frames:
            continue
        mod, fn = _frame_module(frames[-1])
        self_mod[mod] += n
        self_fn[fn] += n
        seen_fn, seen_mod = set(), set()
        for f in frames:
            m, s = _frame_module(f)
            if s not in seen_fn:
                incl_fn[s] += n
                seen_fn.add(s)
            if m not in seen_mod:
                incl_mod[m] += n
                seen_mod.add(m)
    lines = [f"samples: {total}", "", "buckets (each sample counted once, first match):"]
    lines += [f"  {share:5.1f}%  {name}" for name, share in buckets(collapsed)]
    lines += ["", "self time by module:"]
    lines += [f"  {100 * n / total:5.1f}%  {m}" for m, n in self_mod.most_common(top)]
    lines += ["", "inclusive time by module (any frame on the stack):"]
    lines += [f"  {100 * n / total:5.1f}%  {m}" for m, n in incl_mod.most_common(top)]
    lines += ["", "self time by function:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_fn.most_common(top)]
    lines += ["", "inclusive time by function:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl_fn.most_common(top + 20)]
    return "\n".join(lines) + "\n"


def profile_startup(args: argparse.Namespace) -> None:
    """py-spy runs `stepgate serve` from its first instruction to the first 200 (dLLM route)."""
    import run as bench_run

    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-profile-"))
    mock = h.start_mock(workdir, model_ms=20.0, tokens=4)
    collapsed = workdir / "startup.collapsed"  # large (every import stack): not committed
    h.precompile()
    try:
        env = h.stepgate_env(workdir, f"http://127.0.0.1:{mock.port}/v1")
        key, _ = h.create_virtual_key(env, workdir)
        if key:
            env["STEPGATE_REQUIRE_KEYS"] = "true"
        body = bench_run.write_bodies(workdir)["dllm-json"].read_bytes()
        port = h.free_port()
        argv = [
            py_spy(),
            "record",
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "-o",
            str(collapsed),
            "--",
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--policy",
            str(bench_run.POLICY),
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        sg = h.spawn(
            "stepgate-spy", argv, port=port, workdir=workdir, env={**env, "PYTHONPATH": str(h.REPO)}
        )
        try:
            secs, _, _ = h.wait_for_200(
                port,
                "/v1/chat/completions",
                started=sg.started,
                proc=sg.proc,
                log=sg.log,
                body=body,
                headers={"authorization": f"Bearer {key}"} if key else {},
            )
            server = [p for p in h.process_tree(sg.pid) if p != sg.pid]
            for pid in server[:1]:
                os.kill(pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sg.proc.wait(timeout=30)
        finally:
            sg.stop()
    finally:
        mock.stop()
    text = f"start-up to first 200 on the dLLM route under py-spy: {secs:.2f}s\n\n"
    text += summarise(collapsed, top=45)
    (args.out / "startup-top.txt").write_text(text)
    print(text)


def scrub_paths(svg: Path) -> None:
    """py-spy writes its own command line (absolute paths of this machine) into the graph's
    title; keep only paths relative to the repository in the committed file."""
    text = svg.read_text()
    svg.write_text(text.replace(str(h.REPO) + "/", "").replace(str(h.REPO), "."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--stream", action="store_true", help="profile the SSE path instead")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--keep-raw", action="store_true", help="copy py-spy's folded stacks next to the summary"
    )
    ap.add_argument("--summarise-only", type=Path, help="just summarise this collapsed file")
    ap.add_argument(
        "--startup", action="store_true", help="profile start-up to the first 200 instead"
    )
    args = ap.parse_args()
    if args.summarise_only:
        print(summarise(args.summarise_only))
        return
    if args.startup:
        profile_startup(args)
        return
    import run as bench_run

    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-profile-"))
    mock = h.start_mock(workdir, model_ms=20.0, tokens=4)
    try:
        upstream = f"http://127.0.0.1:{mock.port}/v1"
        env = h.stepgate_env(workdir, upstream)
        env["STEPGATE_PRELOAD_AR"] = "false"  # no litellm import thread in the samples
        key, note = h.create_virtual_key(env, workdir)
        if key:
            env["STEPGATE_REQUIRE_KEYS"] = "true"
        bodies = bench_run.write_bodies(workdir)
        body = bodies["dllm-stream" if args.stream else "dllm-json"]
        sg = h.start_stepgate(workdir, env, policy=bench_run.POLICY)
        auth = f"Bearer {key}" if key else None
        try:
            h.wait_for_200(
                sg.port,
                "/v1/chat/completions",
                started=sg.started,
                proc=sg.proc,
                log=sg.log,
                body=body.read_bytes(),
                headers={"authorization": auth} if auth else {},
            )
            load = h.Load(body, auth=auth)
            h.wrk(
                sg.port, "/v1/chat/completions", load, connections=8, duration_s=2, workdir=workdir
            )
            stem = f"stepgate-{'stream' if args.stream else 'json'}-c{args.connections}"
            svg = args.out / f"{stem}.svg"
            collapsed = workdir / f"{stem}.collapsed"
            spy = [
                py_spy(),
                "record",
                "--pid",
                str(sg.pid),
                "--rate",
                str(args.rate),
                "--duration",
                str(args.seconds),
                "--nonblocking",
            ]
            if args.native:
                spy.append("--native")
            p_svg = subprocess.Popen(
                [*spy, "-o", str(svg), "--format", "flamegraph"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            p_raw = subprocess.Popen(
                [*spy, "-o", str(collapsed), "--format", "raw"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)
            cpu0 = h.cpu_seconds(sg.pid)
            r = h.measure(
                sg,
                sg.port,
                "/v1/chat/completions",
                load,
                connections=args.connections,
                duration_s=args.seconds - 2,
                workdir=workdir,
                mock=mock,
            )
            cpu1 = h.cpu_seconds(sg.pid)
            for p in (p_svg, p_raw):
                _, err = p.communicate(timeout=args.seconds + 60)
                if p.returncode != 0:
                    raise SystemExit(f"py-spy failed: {err.decode(errors='replace')}")
            scrub_paths(svg)
        finally:
            sg.stop()
    finally:
        mock.stop()
    head = {
        "mode": "stream" if args.stream else "json",
        "connections": args.connections,
        "rps_under_profiler": round(r["rps"], 1),
        "p50_ms": r["p50_ms"],
        "cpu_ms_per_req_under_profiler": r["cpu_ms_per_req"],
        "cpu_util": round((cpu1 - cpu0) / (args.seconds - 2), 3),
        "errors": r["errors"],
        "auth": note,
    }
    text = json.dumps(head) + "\n\n" + summarise(collapsed)
    if args.keep_raw:
        shutil.copy(collapsed, args.out / collapsed.name)
    (args.out / f"{collapsed.stem}-top.txt").write_text(text)
    print(text)
    print(f"wrote {svg}, {args.out / (collapsed.stem + '-top.txt')}")


if __name__ == "__main__":
    main()
