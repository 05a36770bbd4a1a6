"""CPU per AR call: the native OpenAI wire (`transport: auto`) against `litellm.acompletion`.

Starts bench/mock_upstream.py, builds one LitellmConnector for `openai/bench-ar` per transport
(`auto`: litellm resolves and maps, Stepgate's aiohttp client sends; `litellm`: every call
through `litellm.acompletion`) and measures `time.process_time()` of this process over N calls
at concurrency 8, JSON and stream. The mock runs in its own process, so its CPU is not counted.
Then the litellm work the native route does per request (`NativeTransport.body`: parameter
mapping through litellm's provider config, cached; role translation) in microseconds.

    python bench/ar_transport_bench.py [--calls 1000] [--concurrency 8] [--model-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.base import Connector  # noqa: E402
from connectors.dllm import translate as dllm_translate  # noqa: E402
from connectors.dllm.config import DllmBackend  # noqa: E402
from connectors.litellm_ar.config import LitellmBackend  # noqa: E402
from connectors.litellm_ar.connector import LitellmConnector, _LitellmModule  # noqa: E402
from connectors.litellm_ar.native import resolve  # noqa: E402
from gateway.core.deadline import Deadline  # noqa: E402
from gateway.core.types import ChatRequest  # noqa: E402

BODY: dict[str, Any] = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "You are a careful customer-support agent."},
        {
            "role": "user",
            "content": "The customer was charged twice for order 88231 and wants to know "
            "whether the second charge will be refunded automatically. Explain briefly.",
        },
    ],
    "max_tokens": 128,
    "temperature": 0.2,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
        },
    }
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mock_upstream(model_ms: float) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "mock_upstream.py"),
            "--port",
            str(port),
            "--model-ms",
            str(model_ms),
        ],
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mock upstream did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def cpu_per_call(
    conn: Connector, *, stream: bool, calls: int, concurrency: int
) -> tuple[float, float]:
    """(CPU ms per call, wall seconds) over `calls` calls, `concurrency` at a time."""
    request = ChatRequest.from_wire(BODY)

    async def one() -> None:
        deadline = Deadline.after(30)
        if stream:
            async for _ in conn.stream(request, deadline):
                pass
        else:
            await conn.complete(request, deadline)

    for _ in range(max(20, concurrency * 4)):  # warm: pools, caches, lazy paths (litellm's)
        await one()
    pending = iter(range(calls))

    async def worker() -> None:
        for _ in pending:
            await one()

    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) / calls * 1000, time.perf_counter() - wall


async def transports(
    base_url: str, args: argparse.Namespace
) -> list[tuple[str, str, float, float]]:
    module = _LitellmModule()
    await module.get()
    rows = []
    # native first: litellm's background logging must not bill its CPU to the native rows
    for transport in ("auto", "litellm"):
        backend = LitellmBackend(
            type="litellm",
            model="openai/bench-ar",
            api_key_env="BENCH_AR_KEY",
            base_url=base_url,
            transport=transport,
            timeouts={"connect_s": 2, "request_s": 20},
        )
        conn = LitellmConnector("ar", backend, module=module, price=None)
        await conn.warm()
        try:
            for mode in ("json", "stream"):
                ms, wall = await cpu_per_call(
                    conn, stream=mode == "stream", calls=args.calls, concurrency=args.concurrency
                )
                rows.append((transport, mode, ms, wall))
        finally:
            await conn.aclose()
    return rows


def mapping_cost(litellm: Any, rounds: int) -> list[tuple[str, str, float]]:
    """µs per `NativeTransport.body` (the per-request litellm work of the native route)."""
    cases = [
        ("openai/bench-ar", "max_tokens, temperature", {}),
        ("openai/gpt-4.1-mini", "max_tokens, temperature", {}),
        ("openai/gpt-4.1-mini", "+ tools", {"tools": TOOLS, "tool_choice": "auto"}),
        (
            "openai/gpt-4.1-mini",
            "+ developer message",
            {"messages": [{"role": "developer", "content": "Be brief."}, *BODY["messages"][1:]]},
        ),
        ("openai/o3-mini", "max_tokens, temperature", {}),
        ("openai/o3-mini", "+ tools", {"tools": TOOLS}),
        ("hosted_vllm/bench-ar", "+ tools", {"tools": TOOLS}),
    ]
    rows = []
    for model, label, extra in cases:
        backend = LitellmBackend(type="litellm", model=model, base_url="http://127.0.0.1:1/v1")
        native = resolve(litellm, "ar", backend)
        assert native is not None, model
        request = ChatRequest.from_wire({**BODY, **extra})
        native.body(request, stream=False)  # the one cache miss
        start = time.perf_counter()
        for _ in range(rounds):
            native.body(request, stream=False)
        rows.append((model, label, (time.perf_counter() - start) / rounds * 1e6))
    # For scale: the dLLM connector's own body for the same request (no litellm involved).
    dllm = DllmBackend(type="dllm", engine="openai", base_url="http://127.0.0.1:1/v1", model="m")
    request = ChatRequest.from_wire(BODY)
    start = time.perf_counter()
    for _ in range(rounds):
        dllm_translate.request_body(dllm, request, stream=False)
    rows.append(
        (
            "(dllm, for scale)",
            "max_tokens, temperature",
            (time.perf_counter() - start) / rounds * 1e6,
        )
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000, help="measured calls per row")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--model-ms", type=float, default=5.0, help="the mock's model time")
    ap.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    args = ap.parse_args()
    os.environ.setdefault("BENCH_AR_KEY", "bench-key")
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass

    with mock_upstream(args.model_ms) as base_url:
        rows = asyncio.run(transports(base_url, args))
    cpu = {(t, m): ms for t, m, ms, _ in rows}
    print(
        f"\nopenai/bench-ar, {args.calls} calls per row at concurrency {args.concurrency}, "
        f"mock model time {args.model_ms:g} ms, {'uvloop' if not args.no_uvloop else 'asyncio'}"
    )
    print("| transport | mode | CPU ms/call | wall s |")
    print("|---|---|---|---|")
    for transport, mode, ms, wall in rows:
        print(f"| {transport} | {mode} | {ms:.3f} | {wall:.2f} |")
    for mode in ("json", "stream"):
        ratio = cpu[("litellm", mode)] / cpu[("auto", mode)]
        print(f"{mode}: litellm.acompletion / native = {ratio:.1f}x CPU per call")

    litellm = sys.modules["litellm"]
    print(
        "\nper-request body on the native route (NativeTransport.body: litellm's mapping, cached,"
    )
    print("and role translation, plus reading the request), cache warm")
    print("| model | request | µs/call |")
    print("|---|---|---|")
    for model, label, us in mapping_cost(litellm, rounds=2000):
        print(f"| {model} | {label} | {us:.1f} |")


if __name__ == "__main__":
    main()
