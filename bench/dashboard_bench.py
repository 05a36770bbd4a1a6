"""Time the cost dashboard on a large PostgreSQL ledger: every data request, and the page render.

    python bench/spend_seed.py --url postgresql://postgres@127.0.0.1/stepgate_bench   # ~5 min
    python bench/dashboard_bench.py --url postgresql://postgres@127.0.0.1/stepgate_bench

Starts `stepgate serve` on the seeded ledger (policies/support.yaml), opens /dashboard in
headless Chromium for each view (24h, 7d, 30d, 30d filtered by team) and records the time until
the page reports `ready` (navigation start to all charts drawn) and every fetch it made
(Resource Timing). Each of those data requests is then re-timed over HTTP `--repeat` times.
Budgets (issue 8): each data request < 500 ms, page render < 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.db.engine import normalize_url  # noqa: E402
from tests.e2e_server import serve  # noqa: E402
from tests.test_dashboard_browser import chromium  # noqa: E402

ADMIN = "bench-admin-key-0123456789abcdef"
VIEWS = ("range=24h", "range=7d", "range=30d", "range=30d&team=billing")
REQUEST_BUDGET_MS = 500
RENDER_BUDGET_MS = 2000


def ledger_rows(url: str) -> int:
    dsn = make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM requests").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL ledger seeded by spend_seed")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "support.yaml"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loads", type=int, default=3, help="page loads per view")
    args = parser.parse_args()
    rows = ledger_rows(args.url)
    print(f"ledger: {rows:,} requests")
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        env = {
            "STEPGATE_ADMIN_KEY": ADMIN,
            "STEPGATE_DATABASE_URL": args.url,
            "STEPGATE_SPOOL_DIR": f"{work}/spool",
        }
        with serve(Path(args.policy), Path(work), env=env) as base, chromium() as page:
            page.send("Network.setCookie", {"name": "stepgate_admin", "value": ADMIN,
                                            "url": base, "httpOnly": True})  # fmt: skip
            page.send("Network.setCacheDisabled", {"cacheDisabled": False})
            page.goto(f"{base}/dashboard?range=24h")  # warm: assets cached, connections open
            page.wait_for("document.body.dataset.state === 'ready'", timeout_s=60)
            data_urls: dict[str, None] = {}
            print(f"\n{'page view':32} {'render ms (each load)':>28}  fetches  slowest fetch ms")
            for view in VIEWS:
                renders: list[float] = []
                slowest = 0.0
                fetches = 0
                for _ in range(args.loads):
                    page.send("Page.navigate", {"url": "about:blank"})
                    page.wait_for("location.href === 'about:blank'")
                    page.send("Page.navigate", {"url": f"{base}/dashboard?{view}"})
                    page.wait_for(
                        "location.href.includes('/dashboard?') && document.body"
                        " && ['ready', 'empty', 'error'].includes(document.body.dataset.state)",
                        timeout_s=60,
                    )
                    state = page.evaluate("document.body.dataset.state")
                    if state != "ready":
                        failures.append(f"{view}: page state {state}")
                    renders.append(float(page.evaluate("Number(document.body.dataset.readyMs)")))
                    entries = page.evaluate(
                        "performance.getEntriesByType('resource')"
                        ".filter(e => e.initiatorType === 'fetch')"
                        ".map(e => [e.name, e.duration])"
                    )
                    fetches = len(entries)
                    for name, duration in entries:
                        data_urls[name.replace(base, "")] = None
                        slowest = max(slowest, float(duration))
                shown = " ".join(f"{r:6.0f}" for r in renders)
                print(f"{view:32} {shown:>28}  {fetches:7d}  {slowest:8.0f}")
                if max(renders) > RENDER_BUDGET_MS:
                    failures.append(f"{view}: render {max(renders):.0f} ms")

            headers = {"authorization": f"Bearer {ADMIN}"}
            print(f"\n{'data request':100} {'p50 ms':>7} {'max ms':>7}")
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for url in data_urls:
                    client.get(url).raise_for_status()
                    times = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        client.get(url).raise_for_status()
                        times.append((time.perf_counter() - t0) * 1000)
                    print(f"{url[:100]:100} {statistics.median(times):7.1f} {max(times):7.1f}")
                    if statistics.median(times) > REQUEST_BUDGET_MS:
                        failures.append(f"{url}: p50 {statistics.median(times):.0f} ms")
    print("\nbudgets: data request p50 < 500 ms, render < 2000 ms:",
          "all met" if not failures else "MISSED\n  " + "\n  ".join(failures))  # fmt: skip
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
