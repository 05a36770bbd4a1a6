"""Assemble labeled steps from the written instruction bank and real support material.

    python data/steps/assemble.py          # writes data/steps/assembled-{train,val,test}.jsonl

Where `generate.py` combines a few dozen instruction templates per kind with its own corpus,
this combines the bank (`bank/`: 1,400+ instructions in eight languages, agent system prompts and
agent turns, each written independently) with real material (`real/`: customer messages and
dialogues, knowledge-base articles and policies, tool schemas from public datasets; see
SOURCES.md) into the shapes agents send: instruction in the system prompt or the user message,
a persona over a late instruction, multi-turn histories, tool calls and tool results whose next
step is the one labeled, long threads and logs.

The split is grouped, not by step: every component (instruction, customer message, dialogue,
KB article, persona, tool, agent turn) belongs to exactly one of train / val / test by a hash of
its identity, and a step is built only from components of its own side. So no instruction,
customer message or KB snippet of the test side appears in train. val is for calibration and
for choosing the operating point; test is reported only.

Deterministic (seeded); labels are the bank's: the instruction's kind and tier, or the agent
turn's next kind and tier; a summary of more than ~6,000 tokens is deep.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 20261203
SIDES = ("train", "val", "test")
STEPS_PER_INSTRUCTION = 4
STEPS_PER_TURN = 3
LONG_SUMMARY_CHARS = 26_000  # ~6,500 tokens: over the fast-summary route's limit

LANG_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "pt": "Portuguese",
    "it": "Italian",
    "nl": "Dutch",
    "ja": "Japanese",
}
LABEL_SETS: dict[str, list[list[str]]] = {
    "en": [
        ["billing", "shipping", "returns", "technical", "account"],
        ["positive", "neutral", "negative"],
        ["P1", "P2", "P3", "P4"],
        ["refund_request", "order_status", "cancel_subscription", "change_address", "other"],
        ["urgent", "normal", "low"],
        ["bug", "feature_request", "question", "complaint"],
        ["spam", "not_spam"],
        ["tier1", "tier2", "billing_team", "fraud_team"],
    ],
    "de": [
        ["Rechnung", "Versand", "Rückgabe", "Technik", "Konto"],
        ["positiv", "neutral", "negativ"],
    ],
    "fr": [["facturation", "livraison", "retour", "technique", "compte"], ["urgent", "normal"]],
    "es": [["facturación", "envío", "devolución", "técnico", "cuenta"], ["alta", "media", "baja"]],
    "pt": [["cobrança", "entrega", "devolução", "técnico", "conta"], ["positivo", "negativo"]],
    "it": [["fatturazione", "spedizione", "reso", "tecnico", "account"], ["alta", "bassa"]],
    "nl": [["facturatie", "verzending", "retour", "technisch", "account"], ["hoog", "laag"]],
    "ja": [["請求", "配送", "返品", "技術", "アカウント"], ["高", "中", "低"]],
}
FIELD_SETS = [
    ["order_id", "customer_name", "email"],
    ["account_number", "amount", "date"],
    ["booking_reference", "check_in", "check_out", "guests"],
    ["tracking_number", "carrier", "delivery_date"],
    ["product", "quantity", "reason"],
    ["phone", "address", "postcode"],
    ["invoice_number", "due_date", "total"],
]
LOG_EVENTS = [
    "payment gateway timeout after 30000ms",
    "retrying webhook delivery (attempt {n})",
    "user {u} login failed: invalid 2FA code",
    "order {o} state changed PENDING -> PAID",
    "inventory sync: sku {s} stock={n}",
    "TLS handshake failed with upstream api.partner.example",
    "rate limit exceeded for key ****{n}",
    "cache miss for session {u}",
    "refund {o} issued amount={n}.00",
    "disk usage at {n}% on db-replica-2",
    "NullPointerException in CheckoutService.applyCoupon",
    "queue depth {n} on notifications",
]
LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"]


def side_of(key: str) -> str:
    """train / val / test for a component, by a stable hash of its identity (65/15/20)."""
    bucket = zlib.crc32(key.encode()) % 20
    return "test" if bucket < 4 else ("val" if bucket < 7 else "train")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class Pools:
    """Every component of one side, indexed the ways the assembler picks them."""

    def __init__(self, side: str) -> None:
        self.side = side
        self.messages: dict[str, list[str]] = defaultdict(list)
        self.threads: dict[str, list[str]] = defaultdict(list)
        self.kb: list[str] = []
        self.personas: dict[str, list[str]] = defaultdict(list)
        self.tools: list[dict[str, Any]] = []
        self.turns: list[dict[str, Any]] = []
        self.instructions: list[dict[str, Any]] = []

    def message(self, rng: random.Random, lang: str) -> str:
        pool = self.messages.get(lang) if rng.random() < 0.75 else None
        return rng.choice(pool or self.messages["en"])

    def thread(self, rng: random.Random, lang: str) -> str:
        pool = self.threads.get(lang) if rng.random() < 0.6 else None
        return rng.choice(pool or self.threads["en"])

    def persona(self, rng: random.Random, lang: str) -> str:
        pool = self.personas.get(lang) if rng.random() < 0.5 else None
        return rng.choice(pool or self.personas["en"])


def load_pools() -> dict[str, Pools]:
    pools = {side: Pools(side) for side in SIDES}
    real, bank = HERE / "real", HERE / "bank"
    messages = read_jsonl(real / "customer_messages.jsonl")
    messages += read_jsonl(bank / "messages_written.jsonl")  # es/pt: no licensed real text
    for row in messages:
        pools[side_of("msg:" + row["text"])].messages[row["lang"]].append(row["text"])
    for row in read_jsonl(real / "conversations.jsonl"):
        text = "\n".join(
            f"{'Customer' if t['role'] == 'customer' else 'Agent'}: {t['text']}"
            for t in row["turns"]
        )
        pools[side_of("conv:" + text[:200])].threads[row["lang"]].append(text)
    for row in read_jsonl(real / "agent_prompts.jsonl"):
        if row.get("kind_hint") in (None, "kb_article", "policy", "workflow_guideline"):
            pools[side_of("kb:" + row["text"][:200])].kb.append(row["text"])
        else:
            pools[side_of("kb:" + row["text"][:200])].personas[row.get("lang", "en")].append(
                row["text"]
            )
    for row in read_jsonl(real / "tools.jsonl"):
        pools[side_of("tool:" + row["tool"]["function"]["name"])].tools.append(row["tool"])
    for row in read_jsonl(bank / "system_prompts.jsonl"):
        pools[side_of("persona:" + row["id"])].personas[row["lang"]].append(row["text"])
    for row in read_jsonl(bank / "agent_turns.jsonl"):
        pools[side_of("turn:" + row["id"])].turns.append(row)
    instructions = read_jsonl(bank / "instructions.jsonl")
    instructions += read_jsonl(bank / "instructions2.jsonl")
    for row in instructions:
        pools[side_of("instr:" + row["id"])].instructions.append(row)
    for p in pools.values():
        if not p.personas["en"]:
            p.personas["en"].append("You are a helpful customer support assistant.")
    return pools


def log_block(rng: random.Random, lines: int) -> str:
    out = []
    for _ in range(lines):
        event = rng.choice(LOG_EVENTS).format(
            n=rng.randint(1, 999),
            u=f"u{rng.randint(1000, 99999)}",
            o=f"ORD-{rng.randint(100000, 999999)}",
            s=f"SKU-{rng.randint(100, 9999)}",
        )
        stamp = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}"
        out.append(f"{stamp}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z "
                   f"{rng.choice(LEVELS)} {event}")  # fmt: skip
    return "\n".join(out)


def record(rng: random.Random) -> str:
    kind = rng.choice(["order", "account", "booking", "subscription", "shipment"])
    data: dict[str, Any] = {"id": f"{kind[:3].upper()}-{rng.randint(10000, 999999)}"}
    if kind == "order":
        data |= {
            "status": rng.choice(["shipped", "processing", "delivered", "cancelled"]),
            "placed_at": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "items": [
                {
                    "sku": f"SKU-{rng.randint(100, 999)}",
                    "qty": rng.randint(1, 3),
                    "price": round(rng.uniform(5, 300), 2),
                }
                for _ in range(rng.randint(1, 3))
            ],
            "currency": rng.choice(["EUR", "USD", "GBP", "JPY"]),
        }
    elif kind == "account":
        data |= {
            "plan": rng.choice(["Starter", "Pro", "Business"]),
            "balance": round(rng.uniform(-50, 500), 2),
            "created": f"20{rng.randint(15, 25)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            "flags": rng.sample(["vip", "past_due", "fraud_review", "trial"], rng.randint(0, 2)),
        }
    elif kind == "booking":
        data |= {
            "check_in": f"2025-0{rng.randint(1, 9)}-{rng.randint(10, 28)}",
            "nights": rng.randint(1, 9),
            "rate": round(rng.uniform(60, 400), 2),
            "refundable": rng.random() < 0.5,
        }
    elif kind == "subscription":
        data |= {
            "renews_on": f"2025-{rng.randint(1, 12):02d}-15",
            "price_monthly": round(rng.uniform(5, 120), 2),
            "seats": rng.randint(1, 50),
        }
    else:
        data |= {
            "carrier": rng.choice(["DHL", "UPS", "PostNL", "Yamato", "La Poste"]),
            "events": [
                rng.choice(
                    [
                        "label created",
                        "in transit",
                        "out for delivery",
                        "delivery attempted",
                        "held at depot",
                    ]
                )
                for _ in range(rng.randint(1, 4))
            ],
        }
    return json.dumps(data, ensure_ascii=False)


def long_thread(rng: random.Random, pools: Pools, lang: str) -> str:
    parts: list[str] = []
    while sum(map(len, parts)) < LONG_SUMMARY_CHARS:
        parts.append(pools.thread(rng, lang))
        if rng.random() < 0.3:
            parts.append(log_block(rng, rng.randint(20, 60)))
    return "\n\n---\n\n".join(parts)


def fillers(rng: random.Random, pools: Pools, instr: dict[str, Any]) -> dict[str, str]:
    lang = instr["lang"]
    labels = rng.choice(LABEL_SETS.get(lang) or LABEL_SETS["en"])
    if rng.random() < 0.3:
        labels = rng.choice(LABEL_SETS["en"])
    thread = pools.thread(rng, lang)
    if (instr["kind"] == "summarize" and instr["tier"] == "deep") or rng.random() < 0.06:
        thread = long_thread(rng, pools, lang)
    return {
        "labels": ", ".join(labels),
        "fields": ", ".join(rng.choice(FIELD_SETS)),
        "ticket": pools.message(rng, lang),
        "kb": rng.choice(pools.kb)[: rng.choice([600, 1200, 2500, 4000])],
        "thread": thread,
        "log": log_block(rng, rng.randint(6, 40)),
        "record": record(rng),
        "n": str(rng.choice([1, 2, 3, 5, 80, 160, 280])),
        "lang_name": LANG_NAMES[rng.choice(list(LANG_NAMES))],
    }


def default_content(kind: str, fill: dict[str, str], rng: random.Random) -> str:
    """What a placeholder-free instruction works on, by kind."""
    if kind == "summarize":
        return fill["thread"]
    if kind == "lookup":
        return f"{fill['kb']}\n\nCustomer question: {fill['ticket']}"
    if kind == "reason" and rng.random() < 0.5:
        return f"{fill['record']}\n\n{fill['ticket']}"
    return fill["ticket"]


_PLACEHOLDER = re.compile(r"\{(labels|fields|ticket|kb|thread|log|record|n|lang_name)\}")


def instruction_step(rng: random.Random, pools: Pools, instr: dict[str, Any]) -> dict[str, Any]:
    fill = fillers(rng, pools, instr)
    text = _PLACEHOLDER.sub(lambda m: fill[m.group(1)], instr["text"])
    has_content = any(k in instr["text"] for k in ("{ticket}", "{kb}", "{thread}", "{log}",
                                                   "{record}"))  # fmt: skip
    content = "" if has_content else default_content(instr["kind"], fill, rng)
    placement = instr.get("placement", "either")
    if placement == "either":
        placement = rng.choice(["system", "user"])
    shape = rng.random()
    messages: list[dict[str, Any]] = []
    if shape < 0.35:  # a multi-turn agent step: persona, history, then a late instruction
        messages.append({"role": "system", "content": pools.persona(rng, instr["lang"])})
        history = pools.thread(rng, instr["lang"]).split("\n")[: rng.randint(2, 8)]
        for line in history:
            role = "user" if line.startswith("Customer:") else "assistant"
            messages.append({"role": role, "content": line.split(": ", 1)[-1]})
        if messages[-1]["role"] != "user":
            messages.append({"role": "user", "content": fill["ticket"]})
        late = text + (f"\n\n{content}" if content else "")
        messages.append({"role": rng.choice(["system", "user"]), "content": late})
    elif placement == "system":
        messages.append({"role": "system", "content": text})
        messages.append({"role": "user", "content": content or fill["ticket"]})
    else:
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": pools.persona(rng, instr["lang"])})
        body = text + (f"\n\n{content}" if content else "")
        messages.append({"role": "user", "content": body})
    request: dict[str, Any] = {"model": "auto", "messages": messages}
    decorate(rng, pools, request, instr["kind"])
    tier = instr["tier"]
    chars = sum(len(m["content"]) for m in messages)
    if instr["kind"] == "summarize" and chars > LONG_SUMMARY_CHARS - 2000:
        tier = "deep"
    return {"request": request, "kind": instr["kind"], "tier": tier, "lang": instr["lang"],
            "source": "bank-instruction", "group": instr["id"]}  # fmt: skip


def turn_step(rng: random.Random, pools: Pools, turn: dict[str, Any]) -> dict[str, Any]:
    lang = turn.get("lang", "en")
    messages: list[dict[str, Any]] = [{"role": "system", "content": pools.persona(rng, lang)}]
    messages.append({"role": "user", "content": pools.message(rng, lang)})
    context = turn.get("context")
    name = turn.get("tool_name") or (rng.choice(pools.tools)["function"]["name"]
                                     if pools.tools else "lookup_order")  # fmt: skip
    call_id = f"call_{rng.randint(10**7, 10**8)}"
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"id": rng.randint(1000, 99999)})},
    }
    if context == "tool_result":
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": turn["text"]})
    elif context == "assistant_plan":
        messages.append({"role": "assistant", "content": turn["text"], "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": record(rng)})
    else:  # customer_followup
        reply = rng.choice(pools.thread(rng, lang).split("\n"))[-300:]
        messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "user", "content": turn["text"]})
    request: dict[str, Any] = {"model": "auto", "messages": messages}
    if pools.tools and rng.random() < 0.7:
        request["tools"] = rng.sample(pools.tools, min(len(pools.tools), rng.randint(1, 5)))
    return {"request": request, "kind": turn["next_kind"], "tier": turn["next_tier"],
            "lang": lang, "source": "bank-agent-turn", "group": turn["id"]}  # fmt: skip


def decorate(rng: random.Random, pools: Pools, request: dict[str, Any], kind: str) -> None:
    """The request options agents set, drawn per kind (never the label itself)."""
    r = rng.random()
    if kind in ("classify", "extract") and r < 0.35:
        request["response_format"] = {"type": "json_object"}
    if kind == "classify" and rng.random() < 0.3:
        request["max_tokens"] = rng.choice([5, 10, 20])
    elif rng.random() < 0.25:
        request["max_tokens"] = rng.choice([64, 256, 512, 1024, 2048])
    if rng.random() < 0.4:
        request["temperature"] = rng.choice([0, 0.2, 0.7])
    if pools.tools and rng.random() < 0.15:
        request["tools"] = rng.sample(pools.tools, min(len(pools.tools), rng.randint(1, 4)))


def assemble() -> dict[str, list[dict[str, Any]]]:
    pools = load_pools()
    out: dict[str, list[dict[str, Any]]] = {}
    for side, p in pools.items():
        rng = random.Random(f"{SEED}:{side}")
        rows: list[dict[str, Any]] = []
        makers: list[tuple[Callable[..., dict[str, Any]], dict[str, Any], int]] = [
            (instruction_step, i, STEPS_PER_INSTRUCTION) for i in p.instructions
        ] + [(turn_step, t, STEPS_PER_TURN) for t in p.turns]
        for make, item, count in makers:
            for n in range(count):
                row = make(rng, p, item)
                row["id"] = f"asm-{side}-{item['id']}-{n}"
                if rng.random() < 0.04:
                    row["headers"] = {"x-step-kind": row["kind"]}
                rows.append(row)
        out[side] = rows
    return out


def main() -> None:
    parts = assemble()
    for side, rows in parts.items():
        with (HERE / f"assembled-{side}.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{side}: {len(rows)} steps")


if __name__ == "__main__":
    main()
