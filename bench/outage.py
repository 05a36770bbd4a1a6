"""A dLLM outage under load: what the circuit breaker saves, seen from clients and from ops.

    python bench/outage.py [--total-s 90] [--outage-at-s 15] [--outage-s 60] [--clients 32]
                           [--modes refused,503] [--breaker on,off] [--direct-s 20]
    python bench/outage.py --outage-at-s 5 --outage-s 10 --total-s 30 --direct-s 8   # quick

Upstreams: two `tests.support.fakes.upstream.FakeUpstream`s in a helper process (so their CPU
is not on
the clients' GIL): a vLLM-style dLLM (logprobs, `--dllm-latency-s`, default 50 ms) and an
OpenAI-compatible AR model (`--ar-latency-s`, default 50 ms, so "open" and "before" latencies
compare directly). The AR fallback is a `type: litellm` backend, `openai/gpt-4.1-mini` at the
fake (litellm resolves it, Stepgate's own OpenAI-wire client sends it): a `type: dllm` fallback
would be judged as the fast tier. The dLLM is reached through a TCP relay on a fixed port in the
helper, which is how the two outage modes are made:

* `refused`: the relay stops listening and resets its live connections, as a dead dLLM process
  does (new connections are refused); recovery listens again on the same port;
* `503`: the fake answers every request `503` (`persistent(status(503))`) until recovery.

Each timeline starts `stepgate serve --workers 1` (SQLite ledger, JSON logs at info, metrics on)
with a policy like policies/support.yaml's fast route (dLLM target, AR fallback, escalation
checks on; `retry` as shipped) and the breaker at its defaults (`--breaker on`) or
`circuit_breaker: {enabled: false}` (`--breaker off`). `--clients` closed-loop clients (asyncio +
aiohttp, one request in flight each) send a lookup step for `--total-s`; the dLLM is down from
`--outage-at-s` for `--outage-s`. A poller reads /readyz and /metrics every 100 ms.

Recorded per timeline: non-200 answers, answers with `x-stepgate-disposition: draft`, time from
the outage's start until /readyz says the dLLM is not ready and until
`stepgate_backend_up{backend="dllm"}` is 0, time from recovery until the circuit is closed,
calls the dead dLLM got (`stepgate_backend_attempts_total{backend="dllm",outcome="error"}`
over the outage, split into the first 2 s and the rest; in `503` mode also the fake's own
count, which leaves out the calls in flight when the outage began), client latency before /
while open / after recovery, and CPU per request (server, and this process's clients) in each
phase. Before and after the timelines, a "direct" phase measures a fallback-only policy (the
same route and checks, target the AR backend) at the same concurrency: the skip's added
latency is open p50 minus the mean of the two direct p50s.

The clients use aiohttp rather than httpx: on a 2-vCPU machine 32 httpx clients took a whole
core at ~340 requests/s and were the bottleneck; aiohttp needs ~0.3 ms CPU per request.

Writes bench/results/outage.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import harness as h

RESULTS = h.BENCH / "results" / "outage.json"
POLL_S = 0.1
WARMUP_S = 5.0  # requests sent in the first seconds of a phase are not in its latency figures
SETTLE_S = 1.0  # nor those sent in the first second after a state change

# A lookup step: it has no structural validator, so only token confidence could hold an answer
# back, and the AR fallback's answers carry no logprobs. Before checks went by tier, every
# fallback answer to this step during an outage came back a draft; "drafts" tests that.
BODY = {
    "model": "auto",
    "temperature": 0,
    "messages": [
        {"role": "system", "content": "Answer from the snippet. Snippet: Returns take 14 days."},
        {"role": "user", "content": "How long do I have to return my shoes?"},
    ],
}
HEADERS = {"X-Step-Kind": "lookup"}
REPLY = "You have 14 days."

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: http://127.0.0.1:{relay}/v1
    model: bench-diffusion
    timeouts: {{connect_s: 2, request_s: 20, first_token_s: 5, stall_s: 5}}
    diffusion: {{steps: 32, canvas_length: 256}}
    logprobs: true
    pricing: {{gpu_hour_usd: 2.50}}
  ar-main:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: BENCH_AR_KEY
    base_url: http://127.0.0.1:{ar}/v1
    timeouts: {{connect_s: 5, request_s: 60, first_token_s: 30, stall_s: 15}}
baseline: ar-main
retry: {{max_attempts: 2, backoff_base_ms: 100, backoff_max_ms: 2000, max_retry_after_s: 10}}
request_timeout_s: 60
circuit_breaker: {breaker}
routes:
  - name: fast-structured
    match:
      kind: [classify, extract, format, lookup]
      max_p_deep: 0.2
    target: {target}
    fallbacks: {fallbacks}
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-main}}
  - name: deep
    target: ar-main
default_route: deep
"""


# ---------------------------------------------------------------- the upstreams (helper process)


class Relay:
    """A TCP relay on a fixed port in front of the dLLM fake. `close()` is a dead dLLM process
    (live connections reset, new ones refused); `open()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    async def open(self) -> None:
        if self._server is not None:
            return  # listening already (recovery from a 503 outage)
        self._server = await asyncio.start_server(
            self._on_connection, "127.0.0.1", self.port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer.transport, up_writer.transport)
        self._transports.update(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._transports.difference_update(pair)
            for transport in pair:
                transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


def upstreams_main(conn: Connection, dllm_latency_s: float, ar_latency_s: float) -> None:
    """The helper process: two fakes and the relay; answers commands on `conn`."""
    sys.path.insert(0, str(h.REPO))
    from tests.support.fakes.upstream import FakeUpstream, persistent, status

    dllm = FakeUpstream(dialect="vllm").start()
    ar = FakeUpstream(dialect="openai").start()
    for fake, latency in ((dllm, dllm_latency_s), (ar, ar_latency_s)):
        fake.set_reply(REPLY)
        fake.latency_s = latency
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="relay", daemon=True).start()
    relay = Relay(dllm.port)

    def on_loop(coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    on_loop(relay.open())
    conn.send({"relay": relay.port, "ar": ar.port})
    while True:
        command, *arg = conn.recv()
        if command == "down":
            if arg[0] == "refused":
                on_loop(relay.close())
            else:
                dllm.script([persistent(status(503))])
            conn.send(len(dllm.requests))
        elif command == "up":
            on_loop(relay.open())
            dllm.reset_script()
            conn.send(len(dllm.requests))
        elif command == "count":
            conn.send(len(dllm.requests))
        elif command == "clear":
            dllm.clear()
            ar.clear()
            conn.send(None)
        else:
            break
    on_loop(relay.close())
    dllm.stop()
    ar.stop()


class Upstreams:
    def __init__(self, *, dllm_latency_s: float, ar_latency_s: float) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=upstreams_main, args=(child, dllm_latency_s, ar_latency_s), daemon=True
        )
        self._proc.start()
        ports = self._conn.recv()
        self.relay_port: int = ports["relay"]
        self.ar_port: int = ports["ar"]
        self._lock = threading.Lock()

    def call(self, *command: str) -> Any:
        with self._lock:
            self._conn.send(command)
            return self._conn.recv()

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    def stop(self) -> None:
        if self._proc.is_alive():
            self._conn.send(("stop",))
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()


# ---------------------------------------------------------------- the gateway


def write_policy(workdir: Path, name: str, up: Upstreams, *, breaker: bool, direct: bool) -> Path:
    path = workdir / f"{name}.yaml"
    path.write_text(
        POLICY.format(
            relay=up.relay_port,
            ar=up.ar_port,
            # The shipped defaults, written out; `enabled: false` for the comparison.
            breaker=(
                "{failures: 5, error_rate: 0.5, window_s: 30, min_calls: 20, cooldown_s: 10, "
                "probes: 1}"
                if breaker
                else "{enabled: false}"
            ),
            target="ar-main" if direct else "dllm",
            fallbacks="[]" if direct else "[ar-main]",
        )
    )
    return path


def start_gateway(workdir: Path, policy: Path) -> h.Server:
    env = {**h.stepgate_env(workdir, ""), "STEPGATE_POLICY_POLL_S": "0"}
    server = h.start_stepgate(workdir, env, policy=policy)
    h.wait_for_200(
        server.port, "/healthz", started=server.started, proc=server.proc, log=server.log
    )
    deadline = time.monotonic() + 120
    while True:  # until litellm has loaded (preload) and both backends are ready
        _, _, data = h.http_request(server.port, "GET", "/readyz")
        backends = json.loads(data)["backends"]
        if all(b["ready"] for b in backends.values()):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"backends not ready: {backends}")
        time.sleep(0.1)
    return server


def scrape(text: str) -> dict[str, float]:
    """The few samples the bench reads from /metrics."""
    out = {"up": float("nan"), "calls": 0.0, "failed": 0.0, "skipped": 0.0}
    out |= {"half_open": 0.0, "open": 0.0}
    for line in text.splitlines():
        if line.startswith('stepgate_backend_up{backend="dllm"}'):
            out["up"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("stepgate_backend_attempts_total{") and 'backend="dllm"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if 'outcome="skipped"' in line:
                out["skipped"] += value
            else:
                out["calls"] += value
                if 'outcome="error"' in line:
                    out["failed"] += value
        elif line.startswith('stepgate_circuit_transitions_total{backend="dllm"'):
            for state in ("half_open", "open"):
                if f'state="{state}"' in line:
                    out[state] += float(line.rsplit(" ", 1)[1])
    return out


# ---------------------------------------------------------------- load and polling


@dataclass
class Sample:
    sent: float  # seconds since the timeline's start
    latency_ms: float
    status: int
    draft: bool
    backend: str


@dataclass
class Poll:
    at: float
    ready: bool | None
    state: str | None
    up: float
    failed_calls: float  # the dLLM's, so far
    cpu_s: float  # the server's
    client_cpu_s: float  # this process's (clients and poller)


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    exact: dict[str, dict[str, float]] = field(default_factory=dict)
    fake_calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


async def drive(
    port: int,
    *,
    clients: int,
    total_s: float,
    server_pid: int,
    events: Sequence[tuple[float, str, Callable[[], Any]]] = (),
) -> Timeline:
    """`clients` closed-loop clients for `total_s`, the poller, and `events` at their times."""
    base = f"http://127.0.0.1:{port}"
    tl = Timeline()
    body = json.dumps(BODY).encode()
    headers = {**HEADERS, "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients + 4)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as http:
        t0 = time.perf_counter()
        stop = t0 + total_s

        async def client() -> None:
            while (now := time.perf_counter()) < stop:
                try:
                    async with http.post("/v1/chat/completions", data=body, headers=headers) as r:
                        await r.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    name = type(exc).__name__
                    tl.errors[name] = tl.errors.get(name, 0) + 1
                    tl.samples.append(Sample(now - t0, 0.0, 0, False, ""))
                    continue
                tl.samples.append(
                    Sample(
                        now - t0,
                        (time.perf_counter() - now) * 1000,
                        r.status,
                        r.headers.get("x-stepgate-disposition") == "draft",
                        r.headers.get("x-stepgate-backend", ""),
                    )
                )

        async def get(path: str) -> str:
            async with http.get(path) as r:
                return await r.text()

        async def metrics() -> dict[str, float]:
            return scrape(await get("/metrics"))

        async def poller() -> None:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                try:
                    ready = json.loads(await get("/readyz"))["backends"]["dllm"]
                    m = await metrics()
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                    tl.errors["poll"] = tl.errors.get("poll", 0) + 1
                else:
                    tl.polls.append(
                        Poll(
                            time.perf_counter() - t0,
                            ready["ready"],
                            ready["circuit"]["state"],
                            m["up"],
                            m["failed"],
                            h.cpu_seconds(server_pid),
                            time.process_time(),
                        )
                    )
                await asyncio.sleep(max(0.0, POLL_S - (time.perf_counter() - started)))

        async def timed() -> None:
            for at, name, action in events:
                await asyncio.sleep(max(0.0, t0 + at - time.perf_counter()))
                before = await metrics()
                result = await asyncio.to_thread(action)
                tl.marks[name] = time.perf_counter() - t0
                tl.exact[name] = await metrics()
                tl.exact[f"{name}_before"] = before
                if isinstance(result, int):
                    tl.fake_calls[name] = result

        await asyncio.gather(poller(), timed(), *(client() for _ in range(clients)))
        tl.exact["end"] = await metrics()
    return tl


# ---------------------------------------------------------------- figures


def latency(
    samples: Sequence[Sample], lo: float, hi: float, backend: str | None = None
) -> dict[str, Any]:
    ms = sorted(
        s.latency_ms
        for s in samples
        if lo <= s.sent < hi and s.status == 200 and (backend is None or s.backend == backend)
    )
    if not ms:
        return {"n": 0}

    def pct(q: float) -> float:
        return round(ms[min(len(ms) - 1, int(q * len(ms)))], 2)

    return {
        "n": len(ms),
        "rps": round(len(ms) / (hi - lo), 1),
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
    }


def cpu_per_request(tl: Timeline, lo: float, hi: float) -> dict[str, float] | None:
    """CPU ms per answered request between the polls nearest `lo` and `hi`: the server's and
    this process's (clients and poller), to show which of them was the bottleneck."""
    inside = [p for p in tl.polls if lo <= p.at <= hi]
    if len(inside) < 2:
        return None
    a, b = inside[0], inside[-1]
    n = sum(1 for s in tl.samples if a.at <= s.sent + s.latency_ms / 1000 < b.at)
    if not n:
        return None
    return {
        "server": round((b.cpu_s - a.cpu_s) * 1000 / n, 3),
        "client": round((b.client_cpu_s - a.client_cpu_s) * 1000 / n, 3),
        "server_util": round((b.cpu_s - a.cpu_s) / (b.at - a.at), 2),
        "client_util": round((b.client_cpu_s - a.client_cpu_s) / (b.at - a.at), 2),
    }


def first_after(polls: Sequence[Poll], t: float, pred: Callable[[Poll], bool]) -> float | None:
    for p in polls:
        if p.at >= t and pred(p):
            return round(p.at - t, 3)
    return None


def summarise(tl: Timeline, *, total_s: float, breaker: bool) -> dict[str, Any]:
    down, up = tl.marks["down"], tl.marks["up"]
    warmup = min(WARMUP_S, down / 3)
    closed_at = first_after(tl.polls, up, lambda p: p.state == "closed" and p.up == 1.0)
    after_lo = up + (closed_at or 0.0) + SETTLE_S
    start, end = tl.exact["down_before"], tl.exact["up"]
    # Failed calls are the ones the dead backend got: in the first seconds the requests in
    # flight when it died and those that open the breaker, later the probes (or, with no
    # breaker, every request's tries). Successful ones in the window started before it died.
    early = next((p.failed_calls for p in tl.polls if p.at >= down + 2.0), None)
    statuses: dict[str, int] = {}
    for s in tl.samples:
        if s.status != 200:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    out: dict[str, Any] = {
        "requests": len(tl.samples),
        "failed": sum(1 for s in tl.samples if s.status != 200),
        "failed_by_status": statuses,
        "client_errors": tl.errors,
        "drafts": sum(1 for s in tl.samples if s.draft),
        "outage": {"start_s": round(down, 3), "end_s": round(up, 3)},
        "detect_not_ready_s": first_after(tl.polls, down, lambda p: p.ready is False),
        "detect_backend_up_0_s": first_after(tl.polls, down, lambda p: p.up == 0.0),
        "recover_closed_s": closed_at if breaker else None,
        "dllm_failed_calls_during_outage": int(end["failed"] - start["failed"]),
        "dllm_failed_calls_first_2s": None if early is None else int(early - start["failed"]),
        "dllm_ok_calls_during_outage": int(
            end["calls"] - end["failed"] - start["calls"] + start["failed"]
        ),
        "dllm_skips_during_outage": int(end["skipped"] - start["skipped"]),
        "half_open_during_outage": int(end["half_open"] - start["half_open"]),
        "opened_during_outage": int(end["open"] - start["open"]),
        "latency": {
            "before": latency(tl.samples, warmup, down, "dllm"),
            "open": latency(tl.samples, down + SETTLE_S, up, "ar-main"),
            "after": latency(tl.samples, after_lo, total_s, "dllm"),
        },
        "cpu_ms_per_req": {
            "before": cpu_per_request(tl, warmup, down),
            "open": cpu_per_request(tl, down + SETTLE_S, up),
        },
    }
    if "down" in tl.fake_calls and "up" in tl.fake_calls:
        out["dllm_fake_requests_during_outage"] = tl.fake_calls["up"] - tl.fake_calls["down"]
    return out


def run_timeline(
    workdir: Path, up: Upstreams, args: argparse.Namespace, *, mode: str, breaker: bool
) -> dict[str, Any]:
    name = f"{mode}-breaker-{'on' if breaker else 'off'}"
    policy = write_policy(workdir, name, up, breaker=breaker, direct=False)
    run_dir = workdir / name
    run_dir.mkdir()
    server = start_gateway(run_dir, policy)
    try:
        _, hdrs, _ = h.http_request(
            server.port,
            "POST",
            "/v1/chat/completions",
            body=json.dumps(BODY).encode(),
            headers=HEADERS,
        )
        if hdrs.get("x-stepgate-backend") != "dllm":
            raise RuntimeError(f"the bench request did not land on the dLLM: {hdrs}")
        up.call("clear")
        events = (
            (args.outage_at_s, "down", lambda: up.call("down", mode)),
            (args.outage_at_s + args.outage_s, "up", lambda: up.call("up")),
        )
        tl = asyncio.run(
            drive(
                server.port,
                clients=args.clients,
                total_s=args.total_s,
                server_pid=server.pid,
                events=events,
            )
        )
    finally:
        server.stop()
    result = {
        "mode": mode,
        "breaker": breaker,
        **summarise(tl, total_s=args.total_s, breaker=breaker),
    }
    if mode == "refused":
        result.pop("dllm_fake_requests_during_outage", None)  # the fake never saw them
    return result


def run_direct(
    workdir: Path, up: Upstreams, args: argparse.Namespace, *, name: str
) -> dict[str, Any]:
    policy = write_policy(workdir, name, up, breaker=True, direct=True)
    run_dir = workdir / name
    run_dir.mkdir()
    server = start_gateway(run_dir, policy)
    try:
        tl = asyncio.run(
            drive(server.port, clients=args.clients, total_s=args.direct_s, server_pid=server.pid)
        )
    finally:
        server.stop()
    lo = min(WARMUP_S, args.direct_s / 3)
    return {
        "requests": len(tl.samples),
        "failed": sum(1 for s in tl.samples if s.status != 200),
        "drafts": sum(1 for s in tl.samples if s.draft),
        "latency": latency(tl.samples, lo, args.direct_s, "ar-main"),
        "cpu_ms_per_req": cpu_per_request(tl, lo, args.direct_s),
    }


def direct_line(which: str, d: dict[str, Any]) -> str:
    return (
        f"direct, {which} (fallback-only policy): requests {d['requests']}  failed {d['failed']}"
        f"  drafts {d['drafts']}  p50 {d['latency'].get('p50_ms')} ms  "
        f"p90 {d['latency'].get('p90_ms')} ms  cpu ms/req {d['cpu_ms_per_req']}"
    )


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def report(r: dict[str, Any], direct_p50: float | None) -> str:
    lat = r["latency"]
    open_p50 = lat["open"].get("p50_ms")
    before_p50 = lat["before"].get("p50_ms")
    added = (
        f"{open_p50 - direct_p50:+.2f}" if open_p50 is not None and direct_p50 is not None else "-"
    )
    return (
        f"{r['mode']:<7} breaker {'on ' if r['breaker'] else 'off'}  "
        f"requests {r['requests']:6d}  failed {r['failed']}  drafts {r['drafts']}  "
        f"not-ready after {_s(r['detect_not_ready_s'])}  "
        f"up=0 after {_s(r['detect_backend_up_0_s'])}  "
        f"closed {_s(r['recover_closed_s'])} after recovery  "
        f"dLLM failed calls in outage {r['dllm_failed_calls_during_outage']} "
        f"(first 2 s {r['dllm_failed_calls_first_2s']}, half-open "
        f"{r['half_open_during_outage']})  "
        f"p50 before {before_p50} / open {open_p50} ms (open - first direct {added} ms)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--total-s", type=float, default=90.0, help="length of one timeline")
    ap.add_argument("--outage-at-s", type=float, default=15.0, help="when the dLLM goes down")
    ap.add_argument("--outage-s", type=float, default=60.0, help="how long it stays down")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--modes", default="refused,503", help="refused, 503 or both")
    ap.add_argument("--breaker", default="on,off", help="on, off or both")
    ap.add_argument("--direct-s", type=float, default=20.0, help="fallback-only phase length")
    ap.add_argument("--dllm-latency-s", type=float, default=0.05)
    ap.add_argument("--ar-latency-s", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.outage_at_s + args.outage_s >= args.total_s:
        ap.error("the outage must end before --total-s")
    modes = [m for m in args.modes.split(",") if m]
    breakers = [b == "on" for b in args.breaker.split(",") if b]
    if not set(modes) <= {"refused", "503"} or not set(args.breaker.split(",")) <= {"on", "off"}:
        ap.error("--modes takes refused,503 and --breaker takes on,off")
    h.precompile()
    machine = h.machine_info()
    print(
        f"CPU calibration {machine['cpu_calibration_s']}s, {machine['cpus']} CPUs, "
        f"load average {machine['loadavg_start'][0]:.2f}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-outage-"))
    up = Upstreams(dllm_latency_s=args.dllm_latency_s, ar_latency_s=args.ar_latency_s)
    result: dict[str, Any] = {
        "config": {
            "total_s": args.total_s,
            "outage_at_s": args.outage_at_s,
            "outage_s": args.outage_s,
            "clients": args.clients,
            "dllm_latency_s": args.dllm_latency_s,
            "ar_latency_s": args.ar_latency_s,
            "poll_s": POLL_S,
            "fallback": "type: litellm, openai/gpt-4.1-mini at the fake (native OpenAI wire)",
            "breaker": "failures 5, error_rate 0.5, window_s 30, min_calls 20, cooldown_s 10, "
            "probes 1",
        },
        "runs": [],
    }
    try:
        # The fallback-only phase runs first and last; the figure compared with is their mean,
        # so a machine that drifts during the run moves both sides alike.
        first = run_direct(workdir, up, args, name="direct-first")
        print(direct_line("first", first), flush=True)
        for mode in modes:
            for breaker in breakers:
                r = run_timeline(workdir, up, args, mode=mode, breaker=breaker)
                result["runs"].append(r)
                print(report(r, first["latency"].get("p50_ms")), flush=True)
        last = run_direct(workdir, up, args, name="direct-last")
        print(direct_line("last", last), flush=True)
        p50s = [d["latency"]["p50_ms"] for d in (first, last) if "p50_ms" in d["latency"]]
        direct_p50 = round(statistics.fmean(p50s), 2) if p50s else None
        result["direct_fallback_only"] = {"first": first, "last": last, "p50_ms": direct_p50}
        for r in result["runs"]:
            open_p50 = r["latency"]["open"].get("p50_ms")
            before_p50 = r["latency"]["before"].get("p50_ms")
            if open_p50 is not None and direct_p50 is not None:
                r["open_minus_direct_p50_ms"] = round(open_p50 - direct_p50, 2)
            if open_p50 is not None and before_p50 is not None:
                r["open_minus_before_p50_ms"] = round(open_p50 - before_p50, 2)
            print(
                f"{r['mode']:<7} breaker {'on ' if r['breaker'] else 'off'}  open p50 - direct "
                f"p50 ({direct_p50} ms, mean of first and last): "
                f"{r.get('open_minus_direct_p50_ms')} ms; open - before: "
                f"{r.get('open_minus_before_p50_ms')} ms",
                flush=True,
            )
    finally:
        up.stop()
    machine["cpu_calibration_end_s"] = h.cpu_calibration_s()
    machine["loadavg_end"] = list(os.getloadavg())
    result["machine"] = machine
    print(
        f"CPU calibration {machine['cpu_calibration_s']}s -> {machine['cpu_calibration_end_s']}s",
        flush=True,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
