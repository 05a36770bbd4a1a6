"""CPU per call: the native Anthropic connector against the OpenAI-wire connector and litellm.

One fake upstream (tests/fakes/upstream.py, in its own process so its CPU is not counted)
answers both `POST /v1/messages` and `POST /v1/chat/completions` with the same reply. For the
same small request this measures `time.process_time()` of this process over N calls at a
fixed concurrency, JSON and stream, for:

* `anthropic`: `type: anthropic` (connectors/anthropic), Stepgate's HTTP/1.1 client;
* `openai_wire`: a `type: dllm` backend with `engine: openai`, logprobs off (connectors/dllm
  over connectors/openai_wire): the OpenAI-wire client with nothing on top;
* `litellm`: `type: litellm`, `anthropic/claude-haiku-4-5` (`litellm.acompletion`, what an
  Anthropic backend cost before the native connector); skipped with `--no-litellm`.

The native pair is measured in `--rounds` interleaved rounds and the median reported (litellm
once, after them). Prints a JSON document (and writes it with `--out`): CPU ms per call per
connector and mode, the ratios to the OpenAI wire, and the CPU calibration of bench/harness.py.

    python bench/anthropic_connector_bench.py [--calls 1000] [--concurrency 8] [--rounds 5]
        [--model-ms 5] [--no-litellm] [--out bench/results/anthropic_connector.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ar_transport_bench import cpu_per_call  # noqa: E402  (the same request and loop)
from harness import cpu_calibration_s  # noqa: E402

from connectors.anthropic.config import AnthropicBackend  # noqa: E402
from connectors.anthropic.connector import AnthropicConnector  # noqa: E402
from connectors.base import Connector  # noqa: E402
from connectors.dllm.config import DllmBackend  # noqa: E402
from connectors.dllm.connector import DllmConnector  # noqa: E402
from connectors.litellm_ar.config import LitellmBackend  # noqa: E402
from connectors.litellm_ar.connector import LitellmConnector, _LitellmModule  # noqa: E402

ANSWER = "Yes: the duplicate charge on order 88231 is reversed automatically within 5 days."
KEY_ENV = "BENCH_ANTHROPIC_KEY"

# Runs in the child process: the fake upstream, serving until its stdin closes.
_SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.support.fakes.upstream import FakeUpstream
fake = FakeUpstream(dialect="anthropic").start()
fake.set_reply({answer!r})
fake.latency_s = {latency!r}
print(fake.port, flush=True)
sys.stdin.read()
"""


@contextmanager
def fake_upstream(model_ms: float) -> Iterator[str]:
    code = _SERVER.format(root=str(ROOT), answer=ANSWER, latency=model_ms / 1000)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def connectors(url: str, *, litellm: bool) -> list[tuple[str, Connector]]:
    timeouts = {"connect_s": 2, "request_s": 20}
    out: list[tuple[str, Connector]] = [
        (
            "anthropic",
            AnthropicConnector(
                "anthropic",
                AnthropicBackend(
                    type="anthropic",
                    model="claude-haiku-4-5",
                    api_key_env=KEY_ENV,
                    base_url=url,
                    timeouts=timeouts,
                ),
                price=None,
            ),
        ),
        (
            "openai_wire",
            DllmConnector(
                "openai_wire",
                DllmBackend(
                    type="dllm",
                    engine="openai",
                    base_url=f"{url}/v1",
                    model="bench-ar",
                    logprobs=False,
                    timeouts=timeouts,
                ),
            ),
        ),
    ]
    if litellm:
        backend = LitellmBackend(
            type="litellm",
            model="anthropic/claude-haiku-4-5",
            api_key_env=KEY_ENV,
            base_url=url,
            transport="litellm",
            timeouts=timeouts,
        )
        out.append(("litellm", LitellmConnector("litellm", backend, module=_MODULE, price=None)))
    return out


_MODULE = _LitellmModule()


async def measure(url: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per connector and mode: the median CPU ms per call over `args.rounds` rounds (the
    native pair interleaved, round by round), each round's figure, and the wall time."""
    if not args.no_litellm:
        await _MODULE.get()  # imported before any row: its import is not a call's cost
    built = connectors(url, litellm=not args.no_litellm)
    samples: dict[tuple[str, str], list[float]] = {}
    walls: dict[tuple[str, str], float] = {}
    try:
        # litellm after every round of the others: its background logging threads must not
        # bill their CPU to the other rows.
        schedule = [
            *(pair for _ in range(args.rounds) for pair in built if pair[0] != "litellm"),
            *(pair for pair in built if pair[0] == "litellm"),
        ]
        for name, conn in schedule:
            for mode in ("json", "stream"):
                ms, wall = await cpu_per_call(
                    conn, stream=mode == "stream", calls=args.calls, concurrency=args.concurrency
                )
                samples.setdefault((name, mode), []).append(ms)
                walls[(name, mode)] = walls.get((name, mode), 0.0) + wall
    finally:
        for _, conn in built:
            await conn.aclose()
    rows: dict[str, dict[str, Any]] = {}
    for (name, mode), values in samples.items():
        row = rows.setdefault(name, {})
        row[f"{mode}_cpu_ms_per_call"] = round(statistics.median(values), 4)
        row[f"{mode}_rounds"] = [round(v, 4) for v in values]
        row[f"{mode}_wall_s"] = round(walls[(name, mode)], 3)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000, help="measured calls per row")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    ap.add_argument("--model-ms", type=float, default=5.0, help="the fake's model time")
    ap.add_argument("--no-litellm", action="store_true", help="skip litellm.acompletion")
    ap.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, "sk-ant-bench-key")
    loop = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
            loop = "uvloop"
        except ImportError:
            pass

    calibration, load = cpu_calibration_s(), os.getloadavg()
    with fake_upstream(args.model_ms) as url:
        rows = asyncio.run(measure(url, args))
    wire = rows["openai_wire"]
    ratios = {
        f"{name}_over_openai_wire": {
            mode: round(row[f"{mode}_cpu_ms_per_call"] / wire[f"{mode}_cpu_ms_per_call"], 2)
            for mode in ("json", "stream")
        }
        for name, row in rows.items()
        if name != "openai_wire"
    }
    result = {
        "what": "CPU ms per call of this process (time.process_time), fake upstream elsewhere",
        "calls": args.calls,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "model_ms": args.model_ms,
        "loop": loop,
        "request": "system + one user message, max_tokens 128, temperature 0.2",
        "answer_tokens": len(ANSWER.split()),
        "cpu_ms_per_call": rows,
        "ratios": ratios,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": load,
            "cpu_calibration_s": calibration,
            "cpu_calibration_end_s": cpu_calibration_s(),
        },
        "unix_time": int(time.time()),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
