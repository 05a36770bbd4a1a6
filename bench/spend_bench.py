"""Time GET /v1/spend/summary, /timeseries and /escalations against a seeded ledger.

    python bench/spend_seed.py --url postgresql://postgres@127.0.0.1/stepgate_spend_bench
    python bench/spend_bench.py --url postgresql://postgres@127.0.0.1/stepgate_spend_bench \
        --json bench/results/spend.json

Calls the real handlers in-process through httpx's ASGI transport (admin key, parsing, the
query, JSON rendering) and prints p50/p95 per call over --repeat runs, after one warm-up.
Budget (issue 8): every call < 500 ms at p95.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import machine_info
from starlette.applications import Starlette

from gateway.api.spend import spend_routes
from gateway.ledger.writer import Ledger
from gateway.settings import Settings

ADMIN = "bench-admin-key-0123456789abcdef"
BUDGET_MS = 500.0
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
    ("/v1/spend/escalations", {"range": "30d"}),
    ("/v1/spend/escalations", {"range": "7d"}),
    ("/v1/spend/escalations", {"range": "30d", "route": "fast-structured"}),
    ("/v1/spend/escalations", {"range": "7d", "route": "fast-summary", "team": "billing"}),
]


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[max(0, round(q * len(sorted_ms)) - 1)]


def _seen(body: dict[str, Any]) -> int:
    if "totals" in body:
        return int(body["totals"]["requests"])
    return sum(int(p["requests"]) for p in body["points"])


async def run(url: str, repeat: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as spool:
        ledger = await Ledger.open(database_url=url, spool_dir=spool)
        app = Starlette(routes=spend_routes)
        app.state.settings = Settings(admin_key=ADMIN)
        app.state.ledger = ledger
        headers = {"authorization": f"Bearer {ADMIN}"}
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                print(f"{'call':78} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}  requests")
                for path, params in CALLS:
                    first = await client.get(path, params=params, headers=headers)
                    first.raise_for_status()
                    seen = _seen(first.json())
                    times: list[float] = []
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        resp = await client.get(path, params=params, headers=headers)
                        times.append((time.perf_counter() - t0) * 1000)
                        resp.raise_for_status()
                    times.sort()
                    name = path + "?" + "&".join(f"{k}={v}" for k, v in params.items())
                    row = {
                        "call": name,
                        "p50_ms": round(statistics.median(times), 1),
                        "p95_ms": round(percentile(times, 0.95), 1),
                        "max_ms": round(times[-1], 1),
                        "requests_seen": seen,
                        "within_budget": percentile(times, 0.95) < BUDGET_MS,
                    }
                    results.append(row)
                    print(f"{name:78} {row['p50_ms']:7.1f} {row['p95_ms']:7.1f} "
                          f"{row['max_ms']:7.1f}  {seen}")  # fmt: skip
        finally:
            await ledger.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    meta = machine_info()
    meta["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    calls = asyncio.run(run(args.url, args.repeat))
    meta["loadavg_end"] = os.getloadavg()
    over = [c["call"] for c in calls if not c["within_budget"]]
    print(f"\nload average {meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f}, "
          f"commit {meta.get('git_commit')}; budget p95 < {BUDGET_MS:.0f} ms: "
          + ("all met" if not over else "MISSED by " + ", ".join(over)))  # fmt: skip
    if args.json:
        out = {"meta": meta, "repeat": args.repeat, "budget_ms": BUDGET_MS, "calls": calls}
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
