"""CPU per request of the upstream HTTP client alone: httpx vs aiohttp vs raw asyncio streams.

    python bench/client_bench.py [--requests 3000] [--concurrency 8] [--model-ms 20]

Each client POSTs the dLLM request body to the mock upstream (bench/mock_upstream.py) over
keep-alive connections, `--concurrency` requests in flight, on uvloop (as `stepgate serve`
runs). Reports this process's CPU ms per request (time.process_time) for each client, so the
gain of swapping the dLLM connector's client can be judged before anyone rewrites it.
Writes bench/results/client.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import harness as h
import orjson

RESULTS = h.BENCH / "results" / "client.json"

BODY = orjson.dumps(
    {
        "model": "bench-diffusion",
        "messages": [{"role": "user", "content": "Classify this ticket: charged twice."}],
        "temperature": 0,
        "max_tokens": 64,
        "logprobs": True,
        "vllm_xargs": {"max_denoising_steps": 32, "canvas_length": 256},
    }
)


async def _drive(one: Callable[[], Awaitable[bytes]], n: int, concurrency: int) -> float:
    """Run `n` calls, `concurrency` at a time; return CPU ms per call."""
    for _ in range(50):  # warm-up: connections, first-call paths
        await one()
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            data = await one()
            orjson.loads(data)

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu0) * 1000 / n


async def bench_httpx(url: str, n: int, c: int) -> float:
    import httpx

    async with httpx.AsyncClient(
        base_url=url,
        headers={"content-type": "application/json"},
        timeout=httpx.Timeout(20, connect=2),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
    ) as client:

        async def one() -> bytes:
            r = await client.post("/chat/completions", content=BODY)
            return r.content

        return await _drive(one, n, c)


async def bench_aiohttp(url: str, n: int, c: int) -> float:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(
        base_url=url + "/",
        connector=conn,
        headers={"content-type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=20, connect=2),
    ) as session:

        async def one() -> bytes:
            async with session.post("chat/completions", data=BODY) as r:
                return await r.read()

        return await _drive(one, n, c)


async def bench_raw(url: str, n: int, c: int) -> float:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams (content-length bodies only)."""
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(BODY)}\r\n\r\n"
    ).encode()

    async def one() -> bytes:
        if pool:
            reader, writer = pool.pop()
        else:
            reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head + BODY)
        raw = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await reader.readexactly(length)
        pool.append((reader, writer))
        return data

    return await _drive(one, n, c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--model-ms", type=float, default=20.0)
    args = ap.parse_args()
    import uvloop

    workdir = Path(tempfile.mkdtemp(prefix="stepgate-client-"))
    mock = h.start_mock(workdir, model_ms=args.model_ms, tokens=4)
    out: dict[str, Any] = {"meta": {**h.machine_info(), **vars(args)}, "cpu_ms_per_req": {}}
    try:
        url = f"http://127.0.0.1:{mock.port}/v1"
        for name, fn in (("httpx", bench_httpx), ("aiohttp", bench_aiohttp), ("raw", bench_raw)):
            ms = uvloop.run(fn(url, args.requests, args.concurrency))
            out["cpu_ms_per_req"][name] = round(ms, 4)
            print(f"{name:8s} {ms:.3f} CPU ms/request", flush=True)
    finally:
        mock.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
