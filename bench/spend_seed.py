"""Seed a PostgreSQL ledger with N requests (+ attempts + rollups) spread over the last D days.

    python bench/spend_seed.py --url postgresql://postgres@127.0.0.1/stepgate_bench \
        --requests 1000000 --days 30

Raw rows go in with COPY; the rollups are then built in SQL with the same rules the writer
applies (request figures under the final backend, money under each attempt's backend, bucket
from the request's start), and checked against the raw rows.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime

import psycopg
from sqlalchemy.engine import make_url

from gateway.db.engine import normalize_url
from gateway.db.migrate import upgrade
from gateway.ledger import histogram
from gateway.ledger.tables import GRAINS, SUM_COLUMNS

TEAMS = ("support-eu", "support-us", "billing", "returns", "vip", "bots", None)
# route -> (kinds, primary backend, escalation share)
ROUTES = {
    "fast": (("classify", "extract", "format", "lookup"), "dllm", 0.10),
    "drafting": (("summarize", "draft"), "dllm", 0.20),
    "deep": (("reason",), "ar-main", 0.0),
}
PRICES = {  # nano-dollars per prompt / completion token
    "dllm": (50, 200),
    "ar-main": (400, 1600),
    "ar-backup": (1000, 5000),
}
REQUEST_COLUMNS = (
    "request_id", "started_at", "api_key_id", "team", "route", "step_kind", "difficulty",
    "final_backend", "status", "error_class", "latency_ms", "ttft_ms", "escalated", "confidence",
    "disposition", "escalation_reason", "stream", "cache_hit", "attempt_count", "prompt_tokens",
    "completion_tokens", "cached_tokens", "cost_nanos", "baseline_cost_nanos",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "request_id", "attempt", "role", "backend", "backend_type", "model", "outcome",
    "error_class", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_nanos",
    "baseline_cost_nanos", "latency_ms", "started_at",
)  # fmt: skip


def _cost(backend: str, prompt: int, completion: int) -> int:
    p, c = PRICES[backend]
    return p * prompt + c * completion


def copy_raw(conn: psycopg.Connection, *, n: int, days: int, seed: int) -> None:
    rng = random.Random(seed)
    now = time.time()
    start = now - days * 86400
    routes = list(ROUTES)
    with conn.cursor() as cur:
        with cur.copy(f"COPY requests ({', '.join(REQUEST_COLUMNS)}) FROM STDIN") as req_copy:
            attempts: list[tuple[object, ...]] = []
            for i in range(n):
                rid = f"bench-{i:08d}"
                t = start + (now - start) * i / n
                at = datetime.fromtimestamp(t, tz=UTC)
                route = rng.choices(routes, weights=(70, 20, 10))[0]
                kinds, backend, esc_share = ROUTES[route]
                prompt, completion = rng.randint(50, 2000), rng.randint(1, 400)
                tries = [(backend, prompt, completion, "primary", "ok")]
                if rng.random() < 0.02:  # a failed first try, then the fallback
                    tries = [("ar-main", prompt, 0, "primary", "error"),
                             ("ar-backup", prompt, completion, "fallback", "ok")]  # fmt: skip
                escalated = rng.random() < esc_share
                if escalated:
                    tries.append(("ar-main", prompt, completion, "escalation", "ok"))
                status = 502 if rng.random() < 0.01 else 200
                latency = rng.lognormvariate(5.0 if backend == "dllm" else 6.5, 0.6)
                cost = baseline = 0
                for n_try, (b, p, c, role, outcome) in enumerate(tries):
                    a_cost, a_base = _cost(b, p, c), _cost("ar-main", p, c)
                    cost += a_cost
                    baseline += a_base
                    error = None if outcome == "ok" else "provider_unavailable"
                    kind_of = "dllm" if b == "dllm" else "litellm"
                    attempts.append(
                        (rid, n_try, role, b, kind_of, f"model-{b}", outcome, error, p, c, 0,
                         a_cost, a_base, latency / len(tries), at)
                    )  # fmt: skip
                req_copy.write_row((
                    rid, at, "key-1", rng.choice(TEAMS), route, rng.choice(kinds),
                    rng.random(), tries[-1][0], status,
                    None if status < 400 else "provider_all_failed", latency, None, escalated,
                    rng.random(), "final", "low_confidence" if escalated else None, False, False,
                    len(tries), sum(x[1] for x in tries), sum(x[2] for x in tries), 0, cost,
                    baseline,
                ))  # fmt: skip
        with cur.copy(f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN") as att_copy:
            for row in attempts:
                att_copy.write_row(row)


def build_rollups(conn: psycopg.Connection) -> None:
    hist = (
        ", ".join(
            f"sum(CASE WHEN r.latency_ms > {lo} AND r.latency_ms <= {hi} THEN 1 ELSE 0 END)"
            for lo, hi in zip((-1, *histogram.BOUNDS_MS[:-1]), histogram.BOUNDS_MS, strict=True)
        )
        + f", sum(CASE WHEN r.latency_ms > {histogram.BOUNDS_MS[-1]} THEN 1 ELSE 0 END)"
    )
    hist_cols = ", ".join(histogram.COLUMNS)
    attempt_cols = [
        c for c in SUM_COLUMNS if c not in ("requests", "errors", "escalations", "drafts")
    ]
    for grain, size in GRAINS.items():
        bucket = f"(floor(extract(epoch FROM r.started_at))::bigint / {size}) * {size}"
        conn.execute(f"""
            INSERT INTO rollups (grain, bucket_start, route, backend, team, kind, requests, errors,
                                 escalations, drafts, latency_ms_sum, {hist_cols})
            SELECT '{grain}', {bucket}, r.route, coalesce(r.final_backend, ''),
                   coalesce(r.team, ''), r.step_kind, count(*),
                   sum(CASE WHEN r.status >= 400 THEN 1 ELSE 0 END),
                   sum(CASE WHEN r.escalated THEN 1 ELSE 0 END),
                   sum(CASE WHEN r.disposition = 'draft' THEN 1 ELSE 0 END),
                   sum(r.latency_ms), {hist}
            FROM requests r GROUP BY 1, 2, 3, 4, 5, 6
        """)
        conn.execute(f"""
            INSERT INTO rollups (grain, bucket_start, route, backend, team, kind,
                                 {", ".join(attempt_cols)})
            SELECT '{grain}', {bucket}, r.route, a.backend, coalesce(r.team, ''), r.step_kind,
                   count(*), sum(CASE WHEN a.outcome = 'error' THEN 1 ELSE 0 END),
                   sum(a.prompt_tokens), sum(a.completion_tokens), sum(a.cached_tokens),
                   coalesce(sum(a.cost_nanos), 0), coalesce(sum(a.baseline_cost_nanos), 0),
                   coalesce(sum(a.baseline_cost_nanos - a.cost_nanos), 0),
                   sum(CASE WHEN a.cost_nanos IS NULL THEN 1 ELSE 0 END),
                   sum(CASE WHEN a.baseline_cost_nanos IS NULL THEN 1 ELSE 0 END)
            FROM attempts a JOIN requests r USING (request_id) GROUP BY 1, 2, 3, 4, 5, 6
            ON CONFLICT (grain, bucket_start, route, backend, team, kind) DO UPDATE SET
            {", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in attempt_cols)}
        """)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    upgrade(args.url)
    dsn = make_url(normalize_url(args.url)).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE requests, attempts, rollups")
        t0 = time.perf_counter()
        copy_raw(conn, n=args.requests, days=args.days, seed=args.seed)
        t1 = time.perf_counter()
        build_rollups(conn)
        conn.commit()
        t2 = time.perf_counter()
        conn.execute("ANALYZE requests; ANALYZE attempts; ANALYZE rollups")
        conn.commit()
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM attempts),"
            " (SELECT count(*) FROM rollups),"
            " (SELECT sum(requests) FROM rollups WHERE grain = 'day'),"
            " (SELECT sum(cost_nanos) FROM rollups WHERE grain = 'hour'),"
            " (SELECT sum(cost_nanos) FROM attempts)"
        ).fetchone()
    assert counts is not None
    requests, attempts, rollup_rows, rolled, rolled_cost, raw_cost = counts
    assert rolled == requests and rolled_cost == raw_cost, counts
    print(f"requests={requests} attempts={attempts} rollup_rows={rollup_rows} "
          f"copy={t1 - t0:.1f}s rollups={t2 - t1:.1f}s")  # fmt: skip


if __name__ == "__main__":
    main()
