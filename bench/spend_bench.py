"""Time GET /v1/spend/summary and /v1/spend/timeseries against a seeded ledger.

    python bench/spend_seed.py --url postgresql://postgres@127.0.0.1/stepgate_bench
    python bench/spend_bench.py --url postgresql://postgres@127.0.0.1/stepgate_bench

Calls the real handlers in-process through httpx's ASGI transport (admin key, parsing, the
query, JSON rendering) and prints p50/p95 per call over --repeat runs, after one warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import httpx
from starlette.applications import Starlette

from gateway.api.spend import spend_routes
from gateway.ledger.writer import Ledger
from gateway.settings import Settings

ADMIN = "bench-admin-key-0123456789abcdef"
CALLS: list[tuple[str, dict[str, str]]] = [
    ("/v1/spend/summary", {"range": "30d"}),
    ("/v1/spend/summary", {"range": "30d", "group_by": "route"}),
    ("/v1/spend/summary", {"range": "7d", "group_by": "team"}),
    ("/v1/spend/summary", {"range": "30d", "group_by": "day"}),
    ("/v1/spend/summary", {"range": "24h", "group_by": "backend", "team": "billing"}),
    ("/v1/spend/timeseries", {"range": "24h", "bucket": "hour"}),
    ("/v1/spend/timeseries", {"range": "7d", "bucket": "hour"}),
    ("/v1/spend/timeseries", {"range": "30d", "bucket": "day", "group_by": "route"}),
    ("/v1/spend/timeseries", {"range": "30d", "bucket": "hour"}),
    ("/v1/spend/timeseries", {"range": "24h", "bucket": "minute"}),
]


async def run(url: str, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as spool:
        ledger = await Ledger.open(database_url=url, spool_dir=spool)
        app = Starlette(routes=spend_routes)
        app.state.settings = Settings(admin_key=ADMIN)
        app.state.ledger = ledger
        headers = {"authorization": f"Bearer {ADMIN}"}
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                print(f"{'call':72} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  requests")
                for path, params in CALLS:
                    first = await client.get(path, params=params, headers=headers)
                    first.raise_for_status()
                    body = first.json()
                    seen = body["totals"]["requests"] if "totals" in body else sum(
                        p["requests"] for p in body["points"]
                    )  # fmt: skip
                    times = []
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        resp = await client.get(path, params=params, headers=headers)
                        times.append((time.perf_counter() - t0) * 1000)
                        resp.raise_for_status()
                    times.sort()
                    p95 = times[max(0, round(0.95 * len(times)) - 1)]
                    name = path + "?" + "&".join(f"{k}={v}" for k, v in params.items())
                    print(f"{name:72} {statistics.median(times):8.1f} {p95:8.1f} "
                          f"{times[-1]:8.1f}  {seen}")  # fmt: skip
        finally:
            await ledger.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.repeat))


if __name__ == "__main__":
    main()
