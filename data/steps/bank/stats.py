"""Validate the step bank files and print counts (used to fill README.md).

Usage: python3 data/steps/bank/stats.py [--markdown]
Exit status is non-zero if any file fails validation.
"""

import collections
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {"classify", "extract", "format", "lookup", "summarize", "draft", "reason"}
TIERS = {"fast", "deep"}
LANGS = {"en", "de", "fr", "es", "pt", "it", "nl", "ja"}
PLACEMENTS = {"system", "user", "either"}
NEEDS = {"ticket", "kb", "thread", "log", "record", "labels", "fields", "none"}
CONTEXTS = {"assistant_plan", "tool_result", "customer_followup"}
PLACEHOLDERS = {"labels", "fields", "kb", "ticket", "thread", "log", "record", "n", "lang_name"}
KIND_ORDER = ["classify", "extract", "format", "lookup", "summarize", "draft", "reason"]
LANG_ORDER = ["en", "de", "fr", "es", "pt", "it", "nl", "ja"]

errors = []


def load(name):
    rows = []
    path = os.path.join(HERE, name)
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                errors.append(f"{name}:{i}: blank line")
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                errors.append(f"{name}:{i}: bad JSON: {e}")
    ids = [r.get("id") for r in rows]
    dup = [k for k, v in collections.Counter(ids).items() if v > 1]
    if dup:
        errors.append(f"{name}: duplicate ids {dup[:5]}")
    texts = [r.get("text") for r in rows]
    dupt = [k for k, v in collections.Counter(texts).items() if v > 1]
    if dupt:
        errors.append(f"{name}: {len(dupt)} duplicate texts")
    return rows


def check(name, rows, required, enums):
    for r in rows:
        for k in required:
            if k not in r or r[k] in ("", None, []):
                errors.append(f"{name}:{r.get('id')}: missing {k}")
        for k, allowed in enums.items():
            if k in r and r[k] not in allowed:
                errors.append(f"{name}:{r.get('id')}: bad {k}={r[k]!r}")


ins = load("instructions.jsonl")
check(
    "instructions",
    ins,
    ["id", "text", "kind", "tier", "lang", "placement", "needs"],
    {"kind": KINDS, "tier": TIERS, "lang": LANGS, "placement": PLACEMENTS},
)
for r in ins:
    for n in r.get("needs", []):
        if n not in NEEDS:
            errors.append(f"instructions:{r['id']}: bad need {n}")
    for tok in re.findall(r"\{([a-z_]+)\}", r["text"]):
        if tok not in PLACEHOLDERS:
            errors.append(f"instructions:{r['id']}: unknown placeholder {{{tok}}}")
        elif tok not in ("n", "lang_name") and tok not in r["needs"]:
            errors.append(f"instructions:{r['id']}: {{{tok}}} used but not in needs")
    if r["kind"] == "draft" and r["tier"] != "deep":
        errors.append(f"instructions:{r['id']}: draft must be deep")

sp = load("system_prompts.jsonl")
check("system_prompts", sp, ["id", "text", "lang", "domain"], {"lang": LANGS})

at = load("agent_turns.jsonl")
check(
    "agent_turns",
    at,
    ["id", "context", "text", "next_kind", "next_tier", "lang", "domain", "note"],
    {"context": CONTEXTS, "next_kind": KINDS, "next_tier": TIERS, "lang": LANGS},
)
for r in at:
    if r["context"] == "tool_result" and not r.get("tool_name"):
        errors.append(f"agent_turns:{r['id']}: tool_result without tool_name")


def table(rows, rk, ck, rorder, corder):
    c = collections.Counter((r[rk], r[ck]) for r in rows)
    head = "| " + rk + " | " + " | ".join(corder) + " | total |"
    sep = "|" + "---|" * (len(corder) + 2)
    out = [head, sep]
    for a in rorder:
        vals = [c[(a, b)] for b in corder]
        out.append(f"| {a} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    tot = [sum(c[(a, b)] for a in rorder) for b in corder]
    out.append("| total | " + " | ".join(map(str, tot)) + f" | {sum(tot)} |")
    return "\n".join(out)


def pct(rows, key, order):
    c = collections.Counter(r[key] for r in rows)
    return ", ".join(f"{k} {c[k]} ({100 * c[k] / len(rows):.1f}%)" for k in order if c[k])


print(f"## instructions.jsonl — {len(ins)} rows\n")
print("By kind x tier:\n")
print(table(ins, "kind", "tier", KIND_ORDER, ["fast", "deep"]))
print("\nBy kind x language:\n")
print(table(ins, "kind", "lang", KIND_ORDER, LANG_ORDER))
print("\nLanguages: " + pct(ins, "lang", LANG_ORDER))
print("\nPlacement: " + pct(ins, "placement", ["user", "system", "either"]))
nc = collections.Counter(n for r in ins for n in r["needs"])
print("\nNeeds (rows mentioning each): " + ", ".join(f"{k} {nc[k]}" for k in sorted(nc)))
ph = collections.Counter(t for r in ins for t in set(re.findall(r"\{([a-z_]+)\}", r["text"])))
print("\nPlaceholders (rows using each): " + ", ".join(f"{{{k}}} {ph[k]}" for k in sorted(ph)))
no_ph = sum(1 for r in ins if not re.search(r"\{[a-z_]+\}", r["text"]))
print(f"\nRows with no placeholder: {no_ph}")

print(f"\n## system_prompts.jsonl — {len(sp)} rows\n")
print("Languages: " + pct(sp, "lang", LANG_ORDER))
dc = collections.Counter(r["domain"] for r in sp)
print(f"\nDomains ({len(dc)}): " + ", ".join(f"{k} {dc[k]}" for k in sorted(dc)))
print(
    f"\nLong prompts (>= 1,500 characters): {sum(len(r['text']) >= 1500 for r in sp)}; "
    f"max length {max(len(r['text']) for r in sp)} characters"
)

print(f"\n## agent_turns.jsonl — {len(at)} rows\n")
print("By next_kind x next_tier:\n")
print(table(at, "next_kind", "next_tier", KIND_ORDER, ["fast", "deep"]))
print("\nContexts: " + pct(at, "context", ["tool_result", "assistant_plan", "customer_followup"]))
print("\nLanguages: " + pct(at, "lang", LANG_ORDER))
print(f"\nDomains: {len(set(r['domain'] for r in at))}")

if errors:
    print("\nVALIDATION ERRORS:", file=sys.stderr)
    for e in errors[:50]:
        print("  " + e, file=sys.stderr)
    sys.exit(1)
print("\nValidation: OK (all files parse, ids unique, kinds/tiers/langs valid)")
