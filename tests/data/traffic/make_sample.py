"""Regenerate support_sample.jsonl: data/steps/test.jsonl as recorded gateway traffic.

Each labeled step becomes a traffic line `{"id", "request", "headers"?, "team", "response"?}`.
About 70% carry a recorded OpenAI response with synthetic but plausible usage (prompt tokens
from the text, completion tokens by step kind, cached system-prompt tokens on some); the rest
have none, so `stepgate simulate` estimates them. Some steps carry the hint headers an
integrated agent sends. Deterministic: `python tests/data/traffic/make_sample.py`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "data" / "steps" / "test.jsonl"
TARGET = Path(__file__).with_name("support_sample.jsonl")

# (median, spread) of completion tokens per step kind
OUTPUT = {
    "classify": (4, 3),
    "extract": (60, 40),
    "format": (180, 90),
    "lookup": (110, 60),
    "summarize": (160, 80),
    "draft": (320, 140),
    "reason": (450, 200),
}
TEAMS = ["tier1", "tier1", "billing", "trust-safety", "returns"]
MODELS = {"fast": "diffusiongemma-26b-a4b-it", "deep": "gpt-4.1-mini"}


def words(request: dict[str, object]) -> int:
    total = 0
    for message in request["messages"]:  # type: ignore[attr-defined]
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content)
        total += len(str(content).split())
    return total


def main() -> None:
    rng = random.Random(20250601)
    out = []
    for raw in SOURCE.read_text(encoding="utf-8").splitlines():
        step = json.loads(raw)
        line: dict[str, object] = {"id": step["id"], "request": step["request"]}
        headers: dict[str, str] = {}
        if rng.random() < 0.15:
            headers["X-Step-Kind"] = step["kind"]
        if rng.random() < 0.10:
            headers["X-Latency-Budget-Ms"] = str(rng.choice([300, 800, 2000, 5000]))
        if headers:
            line["headers"] = headers
        line["team"] = rng.choice(TEAMS)
        if rng.random() < 0.7:
            prompt = max(8, round(words(step["request"]) * rng.uniform(1.25, 1.5)) + 6)
            median, spread = OUTPUT[step["kind"]]
            completion = max(1, round(rng.gauss(median, spread / 2)))
            cap = step["request"].get("max_tokens")
            if isinstance(cap, int):
                completion = min(completion, cap)
            cached = (prompt // 128) * 128 if prompt >= 1024 and rng.random() < 0.5 else 0
            usage: dict[str, object] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            if cached:
                usage["prompt_tokens_details"] = {"cached_tokens": cached}
            line["response"] = {
                "id": f"chatcmpl-{step['id']}",
                "object": "chat.completion",
                "model": MODELS[step["tier"]],
                "choices": [{"index": 0, "finish_reason": "stop"}],
                "usage": usage,
            }
        out.append(json.dumps(line, ensure_ascii=False))
    TARGET.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
