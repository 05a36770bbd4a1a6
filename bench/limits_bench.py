"""Per-request cost of auth + limits (Gate.authenticate + admit + settle), in-process and Redis.

    python bench/limits_bench.py [--n 5000] [--redis redis://127.0.0.1:6379/13]

A key with rpm, tpm and daily/monthly budgets plus team limits from the policy, so every
request touches 4 buckets and 4 budget counters. Reports µs per request (wall and CPU), the
settles drained at the end included, with the key cache warm (the steady state).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from gateway.classify.classifier import Classifier
from gateway.core.records import RequestRecord
from gateway.db.engine import create_db_engine
from gateway.db.migrate import upgrade
from gateway.ingress.openai import parse_chat
from gateway.limits.gate import Gate, GateOptions
from gateway.limits.keys import KeyLimits, create_key
from gateway.limits.memory import MemoryStore
from gateway.limits.redis_store import RedisStore
from gateway.limits.store import LimitStore
from gateway.routing import decide
from gateway.runtime import ConnectorFactory, PolicyHolder

BENCH = Path(__file__).resolve().parent
TEAM_LIMITS = """
limits:
  teams:
    bench:
      {rpm: 100000000, tpm: 1000000000, daily_budget_usd: "100000", monthly_budget_usd: "1000000"}
"""


async def measure(
    store: LimitStore, engine: object, holder: PolicyHolder, key: str, n: int
) -> tuple[float, float]:
    gate = Gate(
        store=store,
        engine=engine,
        options=GateOptions(require_keys=True, key_prefix=f"bench-{uuid.uuid4().hex[:6]}:"),
    )  # type: ignore[arg-type]
    chat = parse_chat(
        {
            "model": "auto",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "Is this billing or shipping?"}],
        }
    )
    headers = {"authorization": f"Bearer {key}"}
    gen = holder.current
    profile = Classifier.load().classify(chat, headers)
    decision = decide(gen.policy, profile, model=chat.model)
    record = RequestRecord(
        request_id="r",
        started_at=time.time(),
        api_key_id=None,
        team="bench",
        route=decision.route,
        step_kind=profile.kind,
        difficulty=0.1,
        final_backend=None,
        status=200,
        error_class=None,
        latency_ms=1.0,
        ttft_ms=None,
        escalated=False,
        confidence=None,
        disposition="final",
        escalation_reason=None,
        stream=False,
        cache_hit=False,
        attempts=(),
    )

    async def one() -> None:
        principal = await gate.authenticate(headers)
        reservation = await gate.admit(principal, chat, profile, decision, gen)
        gate.settle(reservation, record)

    for _ in range(200):  # warm: key cache, seeds, scripts loaded
        await one()
    await gate.flush()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        await one()
    await gate.flush()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await gate.aclose()
    return wall / n * 1e6, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    os.environ.setdefault("BENCH_UPSTREAM_V1", "http://127.0.0.1:9/v1")
    os.environ.setdefault("BENCH_AR_KEY", "unused")
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text((BENCH / "policy.yaml").read_text() + TEAM_LIMITS)
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        engine = create_db_engine(url)
        key, _ = create_key(
            engine,
            team="bench",
            limits=KeyLimits(
                rpm=10**8, tpm=10**9, daily_budget_nanos=10**18, monthly_budget_nanos=10**18
            ),
        )
        # A machine-speed reference to compare runs on shared or loaded hosts by.
        t0 = time.process_time()
        sum(range(10**7))
        print(f"reference: sum(range(10**7)) took {time.process_time() - t0:.3f} s CPU")
        holder = PolicyHolder(policy, ConnectorFactory())
        holder.load_initial()
        for name, store in (("in-process", MemoryStore()), ("redis", RedisStore(args.redis))):
            wall, cpu = asyncio.run(measure(store, engine, holder, key, args.n))
            print(
                f"{name:10s} auth+limits: {wall:7.1f} µs/request wall, "
                f"{cpu:7.1f} µs CPU (n={args.n})"
            )
        engine.dispose()


if __name__ == "__main__":
    main()
