"""Time the cost dashboard on a large PostgreSQL ledger: every data request, and the page render.

    python bench/spend_seed.py --url postgresql://postgres@127.0.0.1/stepgate_spend_bench  # ~5 min
    python bench/dashboard_bench.py --url postgresql://postgres@127.0.0.1/stepgate_spend_bench \
        --json bench/results/dashboard.json

Starts `stepgate serve` (one worker) on the seeded ledger (policies/support.yaml), opens
/dashboard in headless Chromium for each view (24h, 7d, 30d, 30d filtered by team, 7d filtered
by route) --loads times and records the time until the page reports `ready` (navigation start
to all charts drawn: `document.body.dataset.readyMs`) and every fetch it made (Resource
Timing; the page fires its ten reads at once, so these overlap on the one worker). Each
distinct data request is then re-timed alone over HTTP `--repeat` times (p50/p95).
Budgets (issue 8): each data request < 500 ms at p95, page render < 2 s on every load.
"""

from __future__ import annotations

import argparse
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
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import machine_info  # noqa: E402

from gateway.db.engine import normalize_url  # noqa: E402
from tests.ledger.test_dashboard_browser import Page, chromium  # noqa: E402
from tests.support.e2e_server import serve  # noqa: E402

ADMIN = "bench-admin-key-0123456789abcdef"
VIEWS = (
    "range=24h",
    "range=7d",
    "range=30d",
    "range=30d&team=billing",
    "range=7d&route=fast-structured",
)
REQUEST_BUDGET_MS = 500.0
RENDER_BUDGET_MS = 2000.0


def ledger_rows(url: str) -> int:
    dsn = make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM requests").fetchone()
    return int(row[0]) if row else 0


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[max(0, round(q * len(sorted_ms)) - 1)]


def load_view(page: Page, base: str, view: str) -> tuple[str, float, list[tuple[str, float]]]:
    """One page load from a blank tab: its final state, render ms and (fetch, ms) pairs."""
    page.send("Page.navigate", {"url": "about:blank"})
    page.wait_for("location.href === 'about:blank'")
    page.send("Page.navigate", {"url": f"{base}/dashboard?{view}"})
    page.wait_for(
        "location.href.includes('/dashboard?') && document.body"
        " && ['ready', 'empty', 'error'].includes(document.body.dataset.state)",
        timeout_s=60,
    )
    state = str(page.evaluate("document.body.dataset.state"))
    render = float(page.evaluate("Number(document.body.dataset.readyMs)"))
    entries = page.evaluate(
        "performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'fetch')"
        ".map(e => [e.name, e.duration])"
    )
    return state, render, [(str(name).replace(base, ""), float(ms)) for name, ms in entries]


def time_requests(base: str, urls: list[str], repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    headers = {"authorization": f"Bearer {ADMIN}"}
    print(f"\n{'data request (alone)':96} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for url in urls:
            client.get(url).raise_for_status()
            times: list[float] = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                client.get(url).raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            row = {
                "request": url,
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(percentile(times, 0.95), 1),
                "max_ms": round(times[-1], 1),
                "within_budget": percentile(times, 0.95) < REQUEST_BUDGET_MS,
            }
            rows.append(row)
            print(f"{url[:96]:96} {row['p50_ms']:7.1f} {row['p95_ms']:7.1f} {row['max_ms']:7.1f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL ledger seeded by spend_seed")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "support.yaml"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--loads", type=int, default=5, help="page loads per view")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    meta = machine_info()
    meta["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["ledger_requests"] = rows = ledger_rows(args.url)
    print(f"ledger: {rows:,} requests")
    failures: list[str] = []
    views: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        env = {
            "STEPGATE_ADMIN_KEY": ADMIN,
            "STEPGATE_DATABASE_URL": args.url,
            "STEPGATE_SPOOL_DIR": f"{work}/spool",
        }
        with serve(Path(args.policy), Path(work), env=env) as base, chromium() as page:
            page.send("Network.setCookie", {"name": "stepgate_admin", "value": ADMIN,
                                            "url": base, "httpOnly": True})  # fmt: skip
            page.goto(f"{base}/dashboard?range=24h")  # warm: assets cached, connections open
            page.wait_for("document.body.dataset.state === 'ready'", timeout_s=60)
            data_urls: dict[str, None] = {}
            print(f"\n{'page view':32} {'render ms (each load)':>36}  fetches  slowest fetch ms")
            for view in VIEWS:
                renders: list[float] = []
                fetch_ms: list[float] = []
                fetches = 0
                for _ in range(args.loads):
                    state, render, entries = load_view(page, base, view)
                    if state != "ready":
                        failures.append(f"{view}: page state {state}")
                    renders.append(render)
                    fetches = len(entries)
                    for url, ms in entries:
                        data_urls[url] = None
                        fetch_ms.append(ms)
                fetch_ms.sort()
                shown = " ".join(f"{r:6.0f}" for r in renders)
                print(f"{view:32} {shown:>36}  {fetches:7d}  {fetch_ms[-1]:8.0f}")
                views.append({
                    "view": view,
                    "render_ms": [round(r) for r in renders],
                    "render_p50_ms": round(statistics.median(renders)),
                    "render_max_ms": round(max(renders)),
                    "fetches_per_load": fetches,
                    "in_page_fetch_p50_ms": round(statistics.median(fetch_ms), 1),
                    "in_page_fetch_p95_ms": round(percentile(fetch_ms, 0.95), 1),
                    "in_page_fetch_max_ms": round(fetch_ms[-1], 1),
                    "within_budget": max(renders) < RENDER_BUDGET_MS,
                })  # fmt: skip
                if max(renders) >= RENDER_BUDGET_MS:
                    failures.append(f"{view}: render {max(renders):.0f} ms")
            if page.exceptions:
                failures.append(f"page exceptions: {page.exceptions}")
            requests = time_requests(base, list(data_urls), args.repeat)
    failures += [f"{r['request']}: p95 {r['p95_ms']:.0f} ms" for r in requests
                 if not r["within_budget"]]  # fmt: skip
    meta["loadavg_end"] = os.getloadavg()
    print(f"\nload average {meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f}, "
          f"commit {meta.get('git_commit')}")  # fmt: skip
    print("budgets: data request p95 < 500 ms, render < 2000 ms:",
          "all met" if not failures else "MISSED\n  " + "\n  ".join(failures))  # fmt: skip
    if args.json:
        out = {
            "meta": meta,
            "loads_per_view": args.loads,
            "repeat": args.repeat,
            "budgets_ms": {"data_request_p95": REQUEST_BUDGET_MS, "render": RENDER_BUDGET_MS},
            "views": views,
            "requests": requests,
            "failures": failures,
        }
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
