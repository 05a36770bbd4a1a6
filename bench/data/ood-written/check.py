"""Validate steps.jsonl and print counts (used to fill README.md).

Usage: python bench/data/ood-written/check.py [path/to/steps.jsonl]
"""

import json
import sys
from collections import Counter
from pathlib import Path

KINDS = {"classify", "extract", "format", "lookup", "summarize", "draft", "reason"}
TIERS = {"fast", "deep"}
LANGS = {"en", "de", "fr", "es", "pt", "it", "nl", "ja"}
SHAPES = {"single", "multi-turn", "agent-tools"}
ROLES = {"system", "user", "assistant", "tool"}
FIELDS = ["id", "request", "kind", "tier", "lang", "domain", "shape", "note"]


def validate(rows):
    errs, ids = [], set()
    for r in rows:
        w = r.get("id")
        if list(r) != FIELDS:
            errs.append(f"{w}: fields {list(r)}")
        if w in ids:
            errs.append(f"{w}: duplicate id")
        ids.add(w)
        for k, ok in (("kind", KINDS), ("tier", TIERS), ("lang", LANGS), ("shape", SHAPES)):
            if r.get(k) not in ok:
                errs.append(f"{w}: bad {k} {r.get(k)!r}")
        msgs = r["request"].get("messages") or []
        if not msgs:
            errs.append(f"{w}: no messages")
        calls = set()
        for i, m in enumerate(msgs):
            role = m.get("role")
            if role not in ROLES:
                errs.append(f"{w}: message {i} bad role {role!r}")
            if role == "assistant":
                for c in m.get("tool_calls") or []:
                    if c.get("type") != "function":
                        errs.append(f"{w}: tool call without type=function")
                    json.loads(c["function"]["arguments"])
                    calls.add(c["id"])
            if role == "tool" and m.get("tool_call_id") not in calls:
                errs.append(f"{w}: tool message {i} has no matching earlier tool_call id")
    return errs


def chars(r):
    return sum(len(m.get("content") or "") for m in r["request"]["messages"])


def rf_type(q):
    return q.get("response_format", {}).get("type")


def main():
    default = Path(__file__).with_name("steps.jsonl")
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    errs = validate(rows)
    if errs:
        print("\n".join(errs))
        sys.exit(1)
    n = len(rows)
    print(f"OK: {n} steps, all valid\n")
    for key in ("kind", "tier", "lang", "shape", "domain"):
        c = Counter(r[key] for r in rows)
        print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in c.most_common()))
    kt = sorted(Counter((r["kind"], r["tier"]) for r in rows).items())
    print("\nkind x tier: " + ", ".join(f"{k}/{t} {v}" for (k, t), v in kt))
    long_sum = [r for r in rows if r["kind"] == "summarize" and chars(r) > 24000]
    print(f"long summaries (>24,000 chars of message text): {len(long_sum)}")
    other = [r for r in rows if r["kind"] not in ("draft", "reason") and r not in long_sum]
    hard = sum(r["tier"] == "deep" for r in other)
    print(f"deep among classify/extract/format/lookup/short summarize: {hard}/{len(other)}")
    rs = [r for r in rows if r["kind"] == "reason"]
    print(f"fast among reason: {sum(r['tier'] == 'fast' for r in rs)}/{len(rs)}")
    pairs = Counter(r["id"][:7] for r in rows if r["id"][-1] in "ab")
    print(f"conversation pairs: {sum(1 for v in pairs.values() if v == 2)}")
    multi = sum(r["shape"] != "single" for r in rows) / n
    print(f"multi-turn + agent-tools share: {multi:.1%}")
    req = [r["request"] for r in rows]
    print(
        f"with tools: {sum('tools' in q for q in req)}, "
        f"tool_choice: {sum('tool_choice' in q for q in req)}, "
        f"response_format json_schema: {sum(rf_type(q) == 'json_schema' for q in req)}, "
        f"json_object: {sum(rf_type(q) == 'json_object' for q in req)}, "
        f"max_tokens <= 100: {sum(q.get('max_tokens', 10**9) <= 100 for q in req)}"
    )


if __name__ == "__main__":
    main()
