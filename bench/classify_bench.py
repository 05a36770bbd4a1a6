"""Classifier latency: p50/p99 of Classifier.classify on an ~8,000-token and a short prompt.

Run: python bench/classify_bench.py [--iterations N]; writes bench/results/classify.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path

from gateway.classify.classifier import Classifier
from gateway.core.types import ChatRequest

RESULTS = Path(__file__).resolve().parent / "results" / "classify.json"

_TURN = (
    "Customer: My order 4417723 arrived with a cracked screen and the replacement you sent "
    "last week is also damaged. I have been a customer for years and this is unacceptable.\n"
    "Agent: I'm sorry to hear that. I've opened a case with logistics and marked it urgent; "
    "a supervisor will call you tomorrow before noon with a resolution.\n"
)


def long_request() -> ChatRequest:
    body = _TURN * 98  # ~32,000 characters, ~8,000 tokens at 4 characters per token
    return ChatRequest.model_validate(
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "You are a support assistant for an online shop."},
                {
                    "role": "user",
                    "content": "Summarize this conversation for the supervisor.\n\n" + body,
                },
            ],
            "max_tokens": 300,
        }
    )


def short_request() -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "auto",
            "messages": [
                {
                    "role": "system",
                    "content": "Classify the ticket into one of: billing, shipping, technical, "
                    "account, other. Answer with the label only.",
                },
                {"role": "user", "content": "I was charged twice for order 88123, please fix."},
            ],
            "max_tokens": 5,
        }
    )


def measure(classifier: Classifier, request: ChatRequest, iterations: int) -> dict[str, float]:
    headers: dict[str, str] = {}
    for _ in range(200):  # warm-up
        classifier.classify(request, headers)
    wall: list[int] = []
    cpu: list[int] = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for _ in range(iterations):
        start, cpu_start = clock(), cpu_clock()
        classifier.classify(request, headers)
        cpu.append(cpu_clock() - cpu_start)
        wall.append(clock() - start)
    wall.sort()
    cpu.sort()
    n = len(wall)
    return {
        "iterations": iterations,
        "p50_us": wall[n // 2] / 1000,
        "p99_us": wall[int(n * 0.99)] / 1000,
        "max_us": wall[-1] / 1000,
        "mean_us": statistics.fmean(wall) / 1000,
        # CPU time of this thread: what the work costs when other processes share the cores.
        "cpu_p50_us": cpu[n // 2] / 1000,
        "cpu_p99_us": cpu[int(n * 0.99)] / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    start = time.perf_counter()
    classifier = Classifier.load()
    load_ms = (time.perf_counter() - start) * 1000
    gc.freeze()  # as the gateway does once start-up is done (gateway/app.py)
    long_req = long_request()
    chars = sum(len(m.text()) for m in long_req.messages)
    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "weights_load_ms": round(load_ms, 1),
        "long": {
            "chars": chars,
            "estimated_tokens": classifier.classify(long_req, {}).prompt_tokens,
            **measure(classifier, long_req, args.iterations),
        },
        "short": measure(classifier, short_request(), args.iterations),
        "target_p99_us": 1000,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }
    for name in ("long", "short"):
        r = results[name]
        assert isinstance(r, dict)
        print(
            f"{name:5s} p50 {r['p50_us']:7.1f} us   p99 {r['p99_us']:7.1f} us   "
            f"max {r['max_us']:8.1f} us"
        )
    print(
        f"weights load {load_ms:.1f} ms; load average {results['load_average_1m']} "
        f"on {results['cpu_count']} cores"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
