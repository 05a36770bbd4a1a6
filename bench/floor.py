"""The floor under Stepgate's hot path: a do-nothing proxy on the same server and client stack.

    python bench/floor.py [--duration 8] [--client aiohttp|raw] [--out FILE]

Runs `floor_app` below (a plain ASGI app on uvicorn with httptools and uvloop, forwarding the
body to the mock upstream with one aiohttp session and returning its JSON; no auth, routing,
classifier, ledger, metrics or logs) and measures it like `run.py` measures Stepgate: wrk at
concurrency 1 and 8 on the dLLM body, added p50 over the direct upstream, CPU per request.
Whatever Stepgate adds on top of these figures is its own work; whatever is below them would
take a different HTTP server or client. Writes bench/results/floor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness as h
import run as bench_run

RESULTS = h.BENCH / "results" / "floor.json"
LEVELS = (1, 8)

_session: Any = None


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Forward a chat completion to $FLOOR_UPSTREAM and return its JSON, nothing else."""
    global _session
    import aiohttp
    import orjson

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    data = orjson.loads(body)
    data["model"] = "bench-diffusion"
    if os.environ.get("FLOOR_CLIENT") == "raw":
        raw = await _raw_post(orjson.dumps(data))
    else:
        if _session is None:
            _session = aiohttp.ClientSession(headers={"content-type": "application/json"})
        url = os.environ["FLOOR_UPSTREAM"] + "/chat/completions"
        async with _session.post(url, data=orjson.dumps(data)) as response:
            raw = await response.read()
    out = orjson.dumps(orjson.loads(raw))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


_pool: list[tuple[Any, Any]] = []


async def _raw_post(body: bytes) -> bytes:
    """A minimal keep-alive HTTP/1.1 POST on asyncio streams (content-length answers only):
    what a purpose-built upstream client could cost, for comparison with aiohttp."""
    import asyncio

    host, port = os.environ["FLOOR_UPSTREAM"].removeprefix("http://").split("/")[0].split(":")
    if _pool:
        reader, writer = _pool.pop()
    else:
        reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json"
        b"\r\ncontent-length: %d\r\n\r\n%s" % (host.encode(), len(body), body)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"
    )
    data: bytes = await reader.readexactly(length)
    _pool.append((reader, writer))
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument(
        "--client",
        choices=("aiohttp", "raw"),
        default="aiohttp",
        help="upstream client: aiohttp (what Stepgate uses) or a minimal asyncio-streams one",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-floor-"))
    mock = h.start_mock(workdir, model_ms=20.0, tokens=4)
    bodies = bench_run.write_bodies(workdir)
    port = h.free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "floor:floor_app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {
        "FLOOR_UPSTREAM": f"http://127.0.0.1:{mock.port}/v1",
        "FLOOR_CLIENT": args.client,
        "PYTHONPATH": str(h.BENCH),
    }
    server = h.spawn("floor", argv, port=port, workdir=workdir, env=env)
    result: dict[str, Any] = {"client": args.client, "levels": {}}
    try:
        h.wait_for_200(
            port,
            "/v1/chat/completions",
            started=server.started,
            proc=server.proc,
            log=server.log,
            body=bodies["dllm-json"].read_bytes(),
        )
        load = h.Load(bodies["dllm-json"])
        h.wrk(port, "/v1/chat/completions", load, connections=8, duration_s=2, workdir=workdir)
        for c in LEVELS:
            direct = h.measure(
                None,
                mock.port,
                "/v1/chat/completions",
                h.Load(bodies["direct-json"]),
                connections=c,
                duration_s=args.duration / 2,
                workdir=workdir,
            )
            r = h.measure(
                server,
                port,
                "/v1/chat/completions",
                load,
                connections=c,
                duration_s=args.duration,
                workdir=workdir,
            )
            r["added_p50_ms"] = r["p50_ms"] - direct["p50_ms"]
            result["levels"][str(c)] = r
            print(
                f"floor ({args.client}) c={c:<2d} {r['rps']:7.1f} rps  "
                f"added p50 {r['added_p50_ms']:.2f} ms  "
                f"cpu {r['cpu_ms_per_req']:.3f} ms/req  errors {r['errors']}",
                flush=True,
            )
    finally:
        server.stop()
        mock.stop()
    result["machine"] = h.machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
