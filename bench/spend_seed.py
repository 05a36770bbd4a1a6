"""Seed a FRESH PostgreSQL ledger with N requests (+ attempts + rollups) over the last D days.

    python bench/spend_seed.py --url postgresql://postgres@127.0.0.1/stepgate_spend_bench \
        --requests 1000000 --days 30          # ~5 minutes on 2 cores
    python bench/spend_seed.py --url ... --drop   # drop the bench database afterwards

The database named in --url is dropped if it exists, created empty and migrated to head with
`gateway.db.migrate.upgrade`. Raw rows go in with COPY, in chunks (requests, then their
attempts). Routes, backends and teams match policies/support.yaml; a share of the cheap-route
answers fails its check with one of several verdict reasons and is escalated, flagged as a
draft, or (escalation target down) returned as a draft. Every rollup table (`rollups`,
`escalation_rollups`) is then built in SQL from the raw rows with the rules the writer applies
(gateway/ledger/rollups.py) and checked against the raw rows at every grain.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from gateway.db.engine import normalize_url
from gateway.db.migrate import upgrade
from gateway.ledger import histogram
from gateway.ledger.rollups import UNSPECIFIED
from gateway.ledger.tables import ESCALATION_SUM_COLUMNS, GRAINS, NAME_LEN, SUM_COLUMNS

TEAMS = ("support-eu", "support-us", "billing", "returns", "vip", "bots", None)
# route -> (kinds, primary backend, share escalated, share flagged as a draft), as in
# policies/support.yaml (the deep route answers on the escalation target: a failed check is a
# draft there, never an escalation).
ROUTES: dict[str, tuple[tuple[str, ...], str, float, float]] = {
    "fast-structured": (("classify", "extract", "format", "lookup"), "dllm", 0.10, 0.02),
    "fast-summary": (("summarize", "draft"), "dllm", 0.20, 0.03),
    "deep": (("reason",), "ar-main", 0.0, 0.01),
}
ROUTE_WEIGHTS = (70, 20, 10)
# Verdict slugs (gateway/confidence/validators.Reason) and how often each is the first reason.
REASONS = (
    "low_token_confidence", "schema_mismatch", "invalid_json", "label_not_allowed",
    "value_not_in_source", "truncated", "disagreement", "empty",
)  # fmt: skip
REASON_WEIGHTS = (40, 15, 10, 12, 10, 5, 6, 2)
ESCALATION_DOWN = 0.05  # share of escalations whose target fails: the cheap answer is a draft
PRICES = {  # nano-dollars per prompt / completion token
    "dllm": (50, 200),
    "ar-main": (400, 1600),
    "ar-backup": (1000, 5000),
}
CHUNK = 100_000
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
Row = tuple[object, ...]


def _cost(backend: str, prompt: int, completion: int) -> int:
    p, c = PRICES[backend]
    return p * prompt + c * completion


def dsn_of(url: str, dbname: str | None = None) -> str:
    u = make_url(normalize_url(url)).set(drivername="postgresql")
    if dbname is not None:
        u = u.set(database=dbname)
    return u.render_as_string(False)


def recreate(url: str, *, create: bool = True) -> None:
    """Drop the database named in `url` (if it exists) and, with `create`, make it anew."""
    name = make_url(normalize_url(url)).database
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop database {name!r}: name a bench database")
    with psycopg.connect(dsn_of(url, "postgres"), autocommit=True) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))


def one_request(
    rng: random.Random, i: int, at: datetime, routes: list[str]
) -> tuple[Row, list[Row]]:
    rid = f"bench-{i:08d}"
    route = rng.choices(routes, weights=ROUTE_WEIGHTS)[0]
    kinds, backend, esc_share, flag_share = ROUTES[route]
    prompt, completion = rng.randint(50, 2000), rng.randint(1, 400)
    # (backend, prompt, completion, role, outcome)
    tries = [(backend, prompt, completion, "primary", "ok")]
    if rng.random() < 0.02:  # a failed first try, then the fallback
        tries = [(backend, prompt, 0, "primary", "error"),
                 ("ar-backup", prompt, completion, "fallback", "ok")]  # fmt: skip
    final = tries[-1][0]
    escalated, disposition, reason = False, "final", None
    check = rng.random()
    if check < esc_share + flag_share:
        reason = rng.choices(REASONS, weights=REASON_WEIGHTS)[0]
        if check < esc_share:
            if rng.random() < ESCALATION_DOWN:
                tries.append(("ar-main", prompt, 0, "escalation", "error"))
                disposition = "draft"
            else:
                tries.append(("ar-main", prompt, completion, "escalation", "ok"))
                escalated, final = True, "ar-main"
        else:
            disposition = "draft"
    status = 502 if rng.random() < 0.01 else 200
    latency = rng.lognormvariate(5.0 if backend == "dllm" else 6.5, 0.6)
    cost = baseline = 0
    attempts: list[Row] = []
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
    request = (
        rid, at, f"key-{rng.randint(1, 40)}", rng.choice(TEAMS), route, rng.choice(kinds),
        rng.random(), final, status, None if status < 400 else "provider_all_failed", latency,
        None, escalated, rng.random(), disposition, reason, False, False, len(tries),
        sum(x[1] for x in tries), sum(x[2] for x in tries), 0, cost, baseline,
    )  # fmt: skip
    return request, attempts


def copy_raw(conn: psycopg.Connection, *, n: int, days: int, seed: int) -> None:
    rng = random.Random(seed)
    now = time.time()
    start = now - days * 86400
    routes = list(ROUTES)
    req_sql = f"COPY requests ({', '.join(REQUEST_COLUMNS)}) FROM STDIN"
    att_sql = f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN"
    with conn.cursor() as cur:
        for lo in range(0, n, CHUNK):
            attempts: list[Row] = []
            with cur.copy(req_sql) as req_copy:
                for i in range(lo, min(n, lo + CHUNK)):
                    at = datetime.fromtimestamp(start + (now - start) * i / n, tz=UTC)
                    request, these = one_request(rng, i, at, routes)
                    req_copy.write_row(request)
                    attempts += these
            with cur.copy(att_sql) as att_copy:
                for row in attempts:
                    att_copy.write_row(row)


def _bucket(size: int) -> str:
    return f"(floor(extract(epoch FROM r.started_at))::bigint / {size}) * {size}"


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
        bucket = _bucket(size)
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
                   coalesce(sum(CASE WHEN a.cost_nanos IS NOT NULL
                                     THEN a.baseline_cost_nanos - a.cost_nanos END), 0),
                   sum(CASE WHEN a.cost_nanos IS NULL THEN 1 ELSE 0 END),
                   sum(CASE WHEN a.baseline_cost_nanos IS NULL THEN 1 ELSE 0 END)
            FROM attempts a JOIN requests r USING (request_id) GROUP BY 1, 2, 3, 4, 5, 6
            ON CONFLICT (grain, bucket_start, route, backend, team, kind) DO UPDATE SET
            {", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in attempt_cols)}
        """)
    # escalation_rollups: requests whose cheap answer was not accepted (rollups.failed_check),
    # per reason, with what all their attempts and their escalation attempts cost.
    failed = "(r.escalation_reason IS NOT NULL OR r.escalated OR r.disposition = 'draft')"
    conn.execute(f"""
        CREATE TEMP TABLE failed_checks AS
        SELECT r.request_id, r.started_at, r.route, coalesce(r.team, '') AS team,
               r.step_kind AS kind,
               left(coalesce(r.escalation_reason, '{UNSPECIFIED}'), {NAME_LEN}) AS reason,
               CASE WHEN r.escalated THEN 1 ELSE 0 END AS escalated,
               CASE WHEN r.disposition = 'draft' THEN 1 ELSE 0 END AS drafts,
               coalesce(sum(a.cost_nanos), 0) AS cost_nanos,
               coalesce(sum(CASE WHEN a.role = 'escalation' THEN a.cost_nanos END), 0)
                   AS escalation_cost_nanos,
               sum(CASE WHEN a.request_id IS NOT NULL AND a.cost_nanos IS NULL THEN 1 ELSE 0 END)
                   AS unknown_cost_attempts
        FROM requests r LEFT JOIN attempts a USING (request_id)
        WHERE {failed}
        GROUP BY r.request_id
    """)
    sums = ", ".join(f"sum({c})" for c in ESCALATION_SUM_COLUMNS if c != "requests")
    for grain, size in GRAINS.items():
        conn.execute(f"""
            INSERT INTO escalation_rollups (grain, bucket_start, route, team, kind, reason,
                                            {", ".join(ESCALATION_SUM_COLUMNS)})
            SELECT '{grain}', {_bucket(size)}, r.route, r.team, r.kind, r.reason, count(*),
                   {sums}
            FROM failed_checks r GROUP BY 1, 2, 3, 4, 5, 6
        """)


def check(conn: psycopg.Connection) -> dict[str, int]:
    """The rollups' sums against the raw rows, at every grain; the raw figures."""
    raw = conn.execute("""
        SELECT (SELECT count(*) FROM requests),
               (SELECT count(*) FROM attempts),
               (SELECT coalesce(sum(cost_nanos), 0) FROM attempts),
               (SELECT count(*) FILTER (WHERE escalated) FROM requests),
               (SELECT count(*) FILTER (WHERE disposition = 'draft') FROM requests),
               (SELECT count(*) FROM failed_checks),
               (SELECT coalesce(sum(a.cost_nanos), 0) FROM attempts a
                  JOIN failed_checks f USING (request_id)),
               (SELECT coalesce(sum(a.cost_nanos), 0) FROM attempts a
                  JOIN failed_checks f USING (request_id) WHERE a.role = 'escalation'),
               (SELECT count(DISTINCT reason) FROM failed_checks)
    """).fetchone()
    assert raw is not None
    figures = dict(zip(
        ("requests", "attempts", "cost_nanos", "escalated", "drafts", "failed_checks",
         "failed_cost_nanos", "escalation_cost_nanos", "reasons"),
        (int(x) for x in raw), strict=True,
    ))  # fmt: skip
    for grain in GRAINS:
        got = conn.execute(
            "SELECT sum(requests), sum(attempts), sum(cost_nanos), sum(escalations), sum(drafts)"
            " FROM rollups WHERE grain = %s",
            (grain,),
        ).fetchone()
        keys = ("requests", "attempts", "cost_nanos", "escalated", "drafts")
        want = tuple(figures[k] for k in keys)
        assert got is not None and tuple(int(x) for x in got) == want, ("rollups", grain, got, want)
        got = conn.execute(
            "SELECT sum(requests), sum(escalated), sum(drafts), sum(cost_nanos),"
            " sum(escalation_cost_nanos) FROM escalation_rollups WHERE grain = %s",
            (grain,),
        ).fetchone()
        keys = (
            "failed_checks",
            "escalated",
            "drafts",
            "failed_cost_nanos",
            "escalation_cost_nanos",
        )
        want = tuple(figures[k] for k in keys)
        assert got is not None and tuple(int(x) for x in got) == want, (
            "escalation_rollups", grain, got, want,
        )  # fmt: skip
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM rollups), (SELECT count(*) FROM escalation_rollups)"
    ).fetchone()
    assert counts is not None
    figures["rollup_rows"], figures["escalation_rollup_rows"] = int(counts[0]), int(counts[1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the bench database (dropped and recreated)")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drop", action="store_true", help="only drop the bench database")
    args = parser.parse_args()
    if args.drop:
        recreate(args.url, create=False)
        print(f"dropped {make_url(normalize_url(args.url)).database}")
        return
    t0 = time.perf_counter()
    recreate(args.url)
    upgrade(args.url)
    with psycopg.connect(dsn_of(args.url)) as conn:
        t1 = time.perf_counter()
        copy_raw(conn, n=args.requests, days=args.days, seed=args.seed)
        conn.commit()
        t2 = time.perf_counter()
        build_rollups(conn)
        conn.commit()
        t3 = time.perf_counter()
        figures = check(conn)
        conn.execute("DROP TABLE failed_checks")
        conn.commit()
    with psycopg.connect(dsn_of(args.url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    t4 = time.perf_counter()
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    print(f"create+migrate={t1 - t0:.1f}s copy={t2 - t1:.1f}s rollups={t3 - t2:.1f}s "
          f"check+vacuum={t4 - t3:.1f}s")  # fmt: skip


if __name__ == "__main__":
    main()
