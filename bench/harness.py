"""Process plumbing for the benchmarks: start/stop servers, read /proc, drive wrk.

Used by bench/run.py (the comparison), bench/profile_hotpath.py and bench/soak.py. Everything
listens on 127.0.0.1 only. CPU is read from /proc/<pid>/stat (utime+stime of a process and all
its live descendants, plus the reaped children's cutime+cstime), memory from /proc/<pid>/status.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LOADGEN_LUA = BENCH / "loadgen.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_VENV_PYTHON = BENCH / ".venv-litellm" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- /proc


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            except OSError:
                continue
            out.extend(int(p) for p in text.split())
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def cpu_seconds(pid: int) -> float:
    """utime+stime of the tree (live descendants) plus the root's reaped children's times."""
    ticks = 0
    for i, p in enumerate(process_tree(pid)):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime=14, stime=15, cutime=16, cstime=17 (1-based)
        ticks += int(fields[11]) + int(fields[12])
        if i == 0:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pid: int) -> float:
    """Current resident set (VmRSS) of the tree, MiB."""
    return sum(_status_kib(p, "VmRSS") for p in process_tree(pid)) / 1024


def peak_rss_mib(pid: int) -> float:
    """High-water resident set (VmHWM) summed over the tree, MiB."""
    return sum(_status_kib(p, "VmHWM") for p in process_tree(pid)) / 1024


# ---------------------------------------------------------------- HTTP probes


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"content-type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def wait_for_200(
    port: int,
    path: str,
    *,
    started: float,
    proc: subprocess.Popen[bytes],
    log: Path,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    limit_s: float = 120.0,
    interval_s: float = 0.01,
) -> tuple[float, dict[str, str], bytes]:
    """Poll until `path` answers 200; return (seconds since `started`, headers, body)."""
    method = "GET" if body is None else "POST"
    last = ""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log)}")
        try:
            status, hdrs, data = http_request(
                port, method, path, body=body, headers=headers, timeout=30
            )
            if status == 200:
                return time.perf_counter() - started, hdrs, data
            last = f"HTTP {status}: {data[:300]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.perf_counter() - started > limit_s:
            raise RuntimeError(f"no 200 from {path} after {limit_s}s (last: {last})\n{tail(log)}")
        time.sleep(interval_s)


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    started: float  # perf_counter just before Popen
    log: Path
    _logf: Any = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self._logf is not None:
            self._logf.close()


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Server:
    log = workdir / f"{name}-{port}.log"
    logf = open(log, "wb")  # noqa: SIM115 - closed by Server.stop
    full_env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), env=full_env, stdout=logf, stderr=subprocess.STDOUT, cwd=cwd or workdir
    )
    return Server(name, proc, port, started, log, logf)


def start_mock(workdir: Path, *, model_ms: float, tokens: int) -> Server:
    port = free_port()
    server = spawn(
        "mock",
        [
            sys.executable,
            str(BENCH / "mock_upstream.py"),
            "--port",
            str(port),
            "--model-ms",
            str(model_ms),
            "--tokens",
            str(tokens),
        ],
        port=port,
        workdir=workdir,
    )
    wait_for_200(port, "/health", started=server.started, proc=server.proc, log=server.log)
    return server


def precompile() -> None:
    """Byte-compile gateway/ and connectors/ as a built image would (this machine sets
    PYTHONDONTWRITEBYTECODE, so without this every start recompiles our modules)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "gateway", "connectors"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )


def stepgate_env(workdir: Path, upstream_v1: str) -> dict[str, str]:
    return {
        "STEPGATE_DATABASE_URL": f"sqlite:///{workdir}/ledger.db",
        "STEPGATE_SPOOL_DIR": str(workdir / "spool"),
        "STEPGATE_LOG_LEVEL": "info",
        "BENCH_UPSTREAM_V1": upstream_v1,
        "BENCH_AR_KEY": "sk-bench-upstream",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def start_stepgate(
    workdir: Path, env: Mapping[str, str], *, policy: Path, repo: Path = REPO
) -> Server:
    """`stepgate serve --workers 1` from the checkout at `repo` (default: this one)."""
    port = free_port()
    return spawn(
        "stepgate",
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--policy",
            str(policy),
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        port=port,
        workdir=workdir,
        env={**env, "PYTHONPATH": str(repo)},
    )


def run_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, *, repo: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**os.environ, **env, "PYTHONPATH": str(repo)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


_KEY_RE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{16,}|sg-[A-Za-z0-9_\-]{16,})\b")


def create_virtual_key(
    env: Mapping[str, str], workdir: Path, *, repo: Path = REPO
) -> tuple[str | None, str]:
    """A virtual key from `stepgate keys create`, or (None, why) where the command is absent."""
    if run_cli(["keys", "--help"], env, workdir, repo=repo).returncode != 0:
        return None, "`stepgate keys` is not in this commit: auth off (no virtual key)"
    run_cli(["db", "upgrade"], env, workdir, repo=repo)
    done = run_cli(["keys", "create", "--team", "bench"], env, workdir, repo=repo)
    if done.returncode != 0:
        raise RuntimeError(f"stepgate keys create failed:\n{done.stdout}\n{done.stderr}")
    text = done.stdout
    try:
        data = json.loads(text)
        for k in ("key", "api_key", "secret", "token"):
            if isinstance(data, dict) and isinstance(data.get(k), str):
                return data[k], "virtual key (stepgate keys create --team bench)"
    except ValueError:
        pass
    found = _KEY_RE.search(text)
    if found is None:
        # the longest token-looking word on the output
        words = [w for w in re.findall(r"[A-Za-z0-9_\-\.]{24,}", text)]
        if not words:
            raise RuntimeError(f"cannot find the key in `stepgate keys create` output:\n{text}")
        return max(words, key=len), "virtual key (stepgate keys create --team bench)"
    return found.group(1), "virtual key (stepgate keys create --team bench)"


def litellm_python() -> str:
    """The interpreter that has litellm's proxy extras (bench/.venv-litellm, see README)."""
    if BENCH_VENV_PYTHON.exists():
        return str(BENCH_VENV_PYTHON)
    return sys.executable


def start_litellm_proxy(workdir: Path, upstream_v1: str, *, master_key: str) -> Server:
    port = free_port()
    code = (
        "import sys; from litellm_cli.main import proxy_server; "
        f"sys.argv = ['litellm', '--config', {str(BENCH / 'litellm_proxy_config.yaml')!r}, "
        f"'--host', '127.0.0.1', '--port', '{port}', '--num_workers', '1']; proxy_server()"
    )
    return spawn(
        "litellm",
        [litellm_python(), "-c", code],
        port=port,
        workdir=workdir,
        env={
            "BENCH_UPSTREAM_V1": upstream_v1,
            "BENCH_LITELLM_MASTER_KEY": master_key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",
        },
    )


# ---------------------------------------------------------------- load


@dataclass(frozen=True)
class Load:
    body: Path
    auth: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def wrk(
    port: int,
    path: str,
    load: Load,
    *,
    connections: int,
    duration_s: float,
    workdir: Path,
    delay_ms: float | None = None,
) -> dict[str, Any]:
    """One closed-loop wrk run (1 thread, `connections` in flight); its done() summary."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    out = Path(tempfile.mktemp(prefix="wrk-", suffix=".json", dir=workdir))
    env = {
        **os.environ,
        "BENCH_BODY_FILE": str(load.body),
        "BENCH_AUTH": load.auth or "",
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in load.headers),
        "BENCH_OUT": str(out),
        "BENCH_DELAY_MS": str(delay_ms or ""),
    }
    argv = [
        exe,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "20s",
        "-s",
        str(LOADGEN_LUA),
        f"http://127.0.0.1:{port}{path}",
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def measure(
    server: Server | None,
    port: int,
    path: str,
    load: Load,
    *,
    connections: int,
    duration_s: float,
    workdir: Path,
    mock: Server | None = None,
) -> dict[str, Any]:
    """A wrk run plus CPU of `server` (and of the mock) over exactly that run."""
    cpu0 = cpu_seconds(server.pid) if server else 0.0
    m0 = cpu_seconds(mock.pid) if mock else 0.0
    t0 = time.perf_counter()
    raw = wrk(port, path, load, connections=connections, duration_s=duration_s, workdir=workdir)
    wall = time.perf_counter() - t0
    cpu = (cpu_seconds(server.pid) - cpu0) if server else None
    mock_cpu = (cpu_seconds(mock.pid) - m0) if mock else None
    n = raw["requests"]
    lat = raw["latency_us"]
    errors = sum(raw["errors"].values())
    return {
        "connections": connections,
        "requests": n,
        "rps": n / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "mean_ms": lat["mean"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": errors,
        "error_detail": raw["errors"],
        "cpu_s": cpu,
        "cpu_ms_per_req": (cpu * 1000 / n) if (cpu is not None and n) else None,
        "cpu_util": (cpu / wall) if cpu is not None else None,
        "mock_cpu_ms_per_req": (mock_cpu * 1000 / n) if (mock_cpu is not None and n) else None,
    }


def cpu_calibration_s() -> float:
    """CPU seconds for a fixed pure-Python loop (10M additions): how fast a core is right now.

    Recorded with every result so CPU-per-request figures from a shared, throttled machine can
    be read against it: a run where this is 3x higher has its CPU costs inflated about 3x.
    """
    t = time.process_time()
    s = 0
    for i in range(10_000_000):
        s += i
    return round(time.process_time() - t, 3)


def machine_info() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "cpu_calibration_s": cpu_calibration_s(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "gateway", "connectors"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        info["gateway_tree_dirty"] = bool(dirty)
    except OSError:
        pass
    with contextlib.suppress(OSError, IndexError):
        info["wrk"] = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0]
    return info
