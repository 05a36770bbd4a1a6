# ruff: noqa: E501  (natural-language data literals)
"""Generate data/steps/{train,test}.jsonl: labeled support-agent steps as OpenAI chat bodies.

Deterministic (seeded). Raw material is hand-written (corpus.py, instructions.py, handwritten.py);
this script combines it with varied request shapes: system vs user instructions, json_schema and
json_object formats, tools and tool results, multi-turn histories, max_tokens, hints.
Run: python data/steps/generate.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
import handwritten  # noqa: E402
import instructions as ins  # noqa: E402

SEED = 20240611
TEST_SHARE = 0.25
FAST_KINDS = {"classify", "extract", "format", "lookup"}

LANG_WEIGHTS = {"en": 46, "es": 10, "de": 9, "fr": 9, "pt": 9, "ja": 10, "it": 3, "nl": 4}
KIND_COUNTS = {
    "classify": 150,
    "extract": 120,
    "format": 95,
    "lookup": 110,
    "summarize": 135,
    "draft": 125,
    "reason": 130,
}

LABEL_SETS = [
    ["billing", "shipping", "technical", "account", "other"],
    ["refund_request", "order_status", "cancellation", "complaint", "question"],
    ["low", "medium", "high", "urgent"],
    ["positive", "neutral", "negative"],
    ["spam", "not_spam"],
    ["needs_human", "bot_can_handle"],
    ["fraud_risk", "no_risk"],
    ["explain_charge", "dispute_charge", "refund", "other"],
    ["en", "es", "de", "fr", "pt", "ja"],
    ["hardware", "connectivity", "billing", "porting", "roaming"],
]
FIELD_SETS = [
    ["order_id", "email", "issue"],
    ["order_id", "amount", "date"],
    ["customer_name", "email", "phone"],
    ["product", "problem", "requested_resolution"],
    ["account_id", "plan", "amount", "date"],
    ["booking_reference", "travel_date", "destination"],
]
FORMAT_TARGETS = [
    "a markdown bullet list",
    "plain text without markdown",
    "an HTML paragraph",
    "a formal letter",
    "a JSON object with keys greeting, body, closing",
    "three short sentences",
]
OFFERS = [
    "a 10% voucher",
    "free express shipping on the next order",
    "a one-month credit",
    "a callback from a supervisor",
    "a full refund of the delivery fee",
]
NAMES = [
    "Maria Lopez",
    "Jonas Becker",
    "Chloé Bernard",
    "João Silva",
    "Yuki Sato",
    "Sam Patel",
    "Aisha Khan",
    "Liam O'Brien",
    "Giulia Rossi",
    "Daan de Vries",
]
PLANS = ["Starter", "Team", "Business", "Pro", "Enterprise"]


def fill(rng: random.Random, text: str) -> str:
    name = rng.choice(NAMES)
    values = {
        "order": rng.choice(["#", "ORD-", "A", "", "BK"]) + str(rng.randint(10000, 9999999)),
        "email": name.split()[0].lower().replace("é", "e").replace("ã", "a") + "@example.com",
        "amount": rng.choice(["€", "$", "£", "R$ ", "¥"])
        + f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}",
        "date": rng.choice(
            [
                "2024-03-14",
                "12/05/2024",
                "5 June",
                "June 18",
                "3. Mai",
                "le 7 mars",
                "dia 9 de abril",
                "4月2日",
            ]
        ),
        "name": name,
        "plan": rng.choice(PLANS),
        "phone": f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
    }
    return text.format(**values)


def ticket(rng: random.Random, lang: str) -> tuple[str, str]:
    domain, text = rng.choice(corpus.TICKETS[lang])
    return domain, fill(rng, text)


def instruction(rng: random.Random, table: dict[str, list[str]], lang: str) -> str:
    # Half the non-English steps keep an English system prompt, as many real agents do.
    if lang != "en" and lang in table and rng.random() < 0.55:
        return rng.choice(table[lang])
    return rng.choice(table["en"])


def body(rng: random.Random, instr: str, content: str, **extra: Any) -> dict[str, Any]:
    style = rng.random()
    if style < 0.55:
        messages = [{"role": "system", "content": instr}, {"role": "user", "content": content}]
    elif style < 0.85:
        messages = [{"role": "user", "content": f"{instr}\n\n{content}"}]
    else:
        messages = [
            {
                "role": "system",
                "content": rng.choice(
                    [
                        "You are Ava, the support assistant for a large online retailer.",
                        "You are a helpful customer support agent. Be concise.",
                        "You work in tier-1 support. Follow the instructions exactly.",
                    ]
                ),
            },
            {"role": "user", "content": f"{instr}\n\n---\n{content}"},
        ]
    req: dict[str, Any] = {"model": "auto", "messages": messages}
    req.update({k: v for k, v in extra.items() if v is not None})
    if "temperature" not in req and rng.random() < 0.4:
        req["temperature"] = rng.choice([0, 0.2, 0.7])
    return req


def enum_schema(name: str, labels: list[str]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": name,
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": labels}},
                "required": ["label"],
                "additionalProperties": False,
            },
        },
    }


def fields_schema(fields: list[str]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "fields",
            "schema": {
                "type": "object",
                "properties": {f: {"type": ["string", "null"]} for f in fields},
                "required": fields,
            },
        },
    }


def make_classify(rng: random.Random, lang: str) -> tuple[dict[str, Any], str]:
    domain, text = ticket(rng, lang)
    labels = rng.choice(LABEL_SETS)
    shape = rng.random()
    if shape < 0.2:
        listed = "\n" + "\n".join(f"- {lab}" for lab in labels)
    elif shape < 0.35:
        listed = " | ".join(labels)
    else:
        listed = ", ".join(labels)
    instr = instruction(rng, ins.CLASSIFY, lang).format(labels=listed)
    if rng.random() < 0.15:
        instr += "\nDefinitions: " + "; ".join(
            f"{lab} = the customer {rng.choice(['asks us to explain', 'mentions', 'complains about', 'reports'])} "
            f"something about {lab.replace('_', ' ')}"
            for lab in labels[:3]
        )
    extra: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.25:
        extra["response_format"] = enum_schema("ticket_label", labels)
    elif roll < 0.35:
        extra["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "tag_ticket",
                    "description": "Set the ticket's category",
                    "parameters": {
                        "type": "object",
                        "properties": {"category": {"type": "string", "enum": labels}},
                        "required": ["category"],
                    },
                },
            }
        ]
        extra["tool_choice"] = "required"
    if rng.random() < 0.6:
        extra["max_tokens"] = rng.choice([1, 5, 10, 16, 20, 50])
    if rng.random() < 0.15:
        text = text + "\n\n" + rng.choice(corpus.LOG_SNIPPETS)
    if rng.random() < 0.2:
        text = f"Subject: {text[:40]}...\nFrom: {fill(rng, '{email}')}\n\n{text}"
    return body(rng, instr, text, **extra), domain


def make_extract(rng: random.Random, lang: str) -> tuple[dict[str, Any], str]:
    domain, text = ticket(rng, lang)
    fields = rng.choice(FIELD_SETS)
    instr = instruction(rng, ins.EXTRACT, lang).format(fields=", ".join(fields))
    extra: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.45:
        extra["response_format"] = fields_schema(fields)
    elif roll < 0.65:
        extra["response_format"] = {"type": "json_object"}
    elif roll < 0.72:
        extra["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "save_fields",
                    "parameters": {
                        "type": "object",
                        "properties": {f: {"type": "string"} for f in fields},
                    },
                },
            }
        ]
    if rng.random() < 0.25:
        # A longer source: an e-mail thread with quoted history.
        parts = [text] + [fill(rng, ticket(rng, lang)[1]) for _ in range(rng.randint(2, 6))]
        text = "\n\n> ".join(parts)
    if rng.random() < 0.5:
        extra["max_tokens"] = rng.choice([64, 128, 200, 256])
    return body(rng, instr, text, **extra), domain


def make_format(rng: random.Random, lang: str) -> tuple[dict[str, Any], str]:
    _, reply = rng.choice([r for r in corpus.REPLIES if r[0] == lang] or corpus.REPLIES)
    target_lang = ins.LANG_NAMES[rng.choice(["es", "de", "fr", "pt", "ja", "en"])]
    instr = instruction(rng, ins.FORMAT, lang).format(
        target=rng.choice(FORMAT_TARGETS), target_lang=target_lang
    )
    extra: dict[str, Any] = {}
    if rng.random() < 0.4:
        extra["max_tokens"] = rng.choice([100, 200, 300, 400])
    if "JSON" in instr and rng.random() < 0.7:
        extra["response_format"] = {"type": "json_object"}
    return body(rng, instr, fill(rng, reply), **extra), "support"


def make_lookup(rng: random.Random, lang: str) -> tuple[dict[str, Any], str]:
    domain, text = ticket(rng, lang)
    while domain not in corpus.KB:
        domain, text = ticket(rng, lang)
    snippets = corpus.KB[domain][:]
    rng.shuffle(snippets)
    if rng.random() < 0.5:
        others = [s for d, ss in corpus.KB.items() if d != domain for s in ss]
        snippets += rng.sample(others, rng.randint(1, 4))
    kb = "\n".join(snippets)
    instr = instruction(rng, ins.LOOKUP, lang)
    extra: dict[str, Any] = {}
    if rng.random() < 0.25:
        # Agent loop: the KB came back as a tool result.
        req = {
            "model": "auto",
            "messages": [
                {"role": "system", "content": instr},
                {"role": "user", "content": text},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": "search_kb",
                                "arguments": json.dumps({"query": text[:60]}),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": kb},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "search_kb",
                        "parameters": {
                            "type": "object",
                            "properties": {"query": {"type": "string"}},
                        },
                    },
                }
            ],
        }
        return req, domain
    if rng.random() < 0.5:
        extra["max_tokens"] = rng.choice([80, 150, 200, 300])
    content = f"Knowledge base:\n{kb}\n\nCustomer question:\n{text}"
    return body(rng, instr, content, **extra), domain


def transcript(rng: random.Random, lang: str, turns: int) -> tuple[str, str]:
    domain, first = ticket(rng, lang)
    lines = [f"Customer: {first}"]
    for _ in range(turns):
        lines.append("Agent: " + fill(rng, rng.choice(corpus.AGENT_LINES)))
        nxt = rng.choice(corpus.CUSTOMER_LINES) if rng.random() < 0.7 else ticket(rng, lang)[1]
        lines.append("Customer: " + fill(rng, nxt))
        if rng.random() < 0.1:
            lines.append("Internal note: " + rng.choice(corpus.LOG_SNIPPETS))
    return domain, "\n".join(lines)


def make_summarize(rng: random.Random, lang: str) -> tuple[dict[str, Any], str, str]:
    long = rng.random() < 0.3
    turns = rng.randint(330, 480) if long else rng.randint(2, 25)
    domain, text = transcript(rng, lang, turns)
    instr = instruction(rng, ins.SUMMARIZE, lang)
    extra: dict[str, Any] = {}
    if rng.random() < 0.5:
        extra["max_tokens"] = rng.choice([150, 200, 300, 500])
    # Over the fast-summary route's 6,000-token limit, a summary needs the AR model's context.
    return body(rng, instr, text, **extra), domain, "deep" if long else "fast"


def make_draft(rng: random.Random, lang: str) -> tuple[dict[str, Any], str]:
    instr = instruction(rng, ins.DRAFT, lang).format(offer=rng.choice(OFFERS))
    if rng.random() < 0.45:
        domain, first = ticket(rng, lang)
        messages: list[dict[str, Any]] = [
            {
                "role": "system",
                "content": f"You are a customer support agent for the {domain} team. {instr}",
            },
            {"role": "user", "content": first},
        ]
        for _ in range(rng.randint(1, 4)):
            messages.append(
                {"role": "assistant", "content": fill(rng, rng.choice(corpus.AGENT_LINES))}
            )
            messages.append(
                {"role": "user", "content": fill(rng, rng.choice(corpus.CUSTOMER_LINES))}
            )
        req: dict[str, Any] = {"model": "auto", "messages": messages}
        if rng.random() < 0.5:
            req["temperature"] = rng.choice([0.5, 0.7, 0.9])
        return req, domain
    domain, text = transcript(rng, lang, rng.randint(0, 6))
    extra: dict[str, Any] = {}
    if rng.random() < 0.4:
        extra["max_tokens"] = rng.choice([200, 300, 500, 800])
    return body(rng, instr, text, **extra), domain


def make_reason(rng: random.Random, lang: str) -> tuple[dict[str, Any], str]:
    domain, text = ticket(rng, lang)
    while domain not in corpus.POLICIES:
        domain, text = ticket(rng, lang)
    pols = rng.sample(corpus.POLICIES[domain], min(len(corpus.POLICIES[domain]), rng.randint(2, 4)))
    facts = rng.choice(
        [
            "Facts: delivered {date}; customer has 2 refunds in the last 90 days; item not marked "
            "final sale; photo received 9 days after delivery.",
            "Facts: annual plan bought {date}; outage of 6 hours this month; invoice {amount}.",
            "Facts: account age 3 years; income arrived 14:02, fee charged 13:55 the same day.",
            "Facts: flight cancelled 2 days before departure due to crew shortage; customer "
            "accepted rebooking, then asked for compensation.",
            "Facts: purchase {date}, 30% of the gems already spent, one earlier refund in May.",
            "",
        ]
    )
    case = "\n".join(pols) + "\n\nCase:\n" + text + ("\n" + fill(rng, facts) if facts else "")
    instr = instruction(rng, ins.REASON, lang)
    extra: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.2:
        instr += " Answer with one of: approve, deny, escalate."
        extra["max_tokens"] = rng.choice([5, 20, 300])
    elif roll < 0.35:
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": "decision",
                "schema": {
                    "type": "object",
                    "properties": {
                        "decision": {"type": "string", "enum": ["approve", "deny", "partial"]},
                        "amount": {"type": "number"},
                        "reasoning": {"type": "string"},
                        "policies_applied": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        }
    elif roll < 0.5:
        extra["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": n,
                    "parameters": {
                        "type": "object",
                        "properties": {"order_id": {"type": "string"}},
                    },
                },
            }
            for n in ("get_order", "get_refund_history", "issue_refund")
        ]
    elif roll < 0.6:
        case += "\n\nLogs:\n" + rng.choice(corpus.LOG_SNIPPETS)
        instr = rng.choice(
            [
                "Diagnose the root cause from the logs and the customer's report, then decide the "
                "next step and whether a credit is due under the policies.",
                instr,
            ]
        )
    return body(rng, instr, case, **extra), domain


def pick_lang(rng: random.Random) -> str:
    langs = list(LANG_WEIGHTS)
    return rng.choices(langs, weights=[LANG_WEIGHTS[k] for k in langs])[0]


def generate() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    rows: list[dict[str, Any]] = []
    for kind, count in KIND_COUNTS.items():
        for n in range(count):
            lang = pick_lang(rng)
            tier = "fast" if kind in FAST_KINDS else "deep"
            if kind == "summarize":
                req, domain, tier = make_summarize(rng, lang)
            else:
                req, domain = globals()[f"make_{kind}"](rng, lang)
            row: dict[str, Any] = {
                "id": f"gen-{kind}-{n:03d}",
                "request": req,
                "kind": kind,
                "tier": tier,
                "lang": lang,
                "domain": domain,
            }
            hint = rng.random()
            if hint < 0.04:
                row["headers"] = {"x-step-kind": kind}
            elif hint < 0.07:
                req["metadata"] = {
                    "step_kind": kind,
                    "latency_budget_ms": str(rng.choice([300, 2000])),
                }
            elif hint < 0.10:
                row["headers"] = {"x-latency-budget-ms": str(rng.choice([250, 800, 5000]))}
            rows.append(row)
    rows.extend(handwritten.rows())
    return rows


def split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stratified by (kind, tier): every fourth row of each shuffled stratum goes to test."""
    rng = random.Random(SEED + 1)
    strata: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        strata.setdefault((row["kind"], row["tier"]), []).append(row)
    train, test = [], []
    for key in sorted(strata):
        group = strata[key]
        rng.shuffle(group)
        n_test = round(len(group) * TEST_SHARE)
        test += group[:n_test]
        train += group[n_test:]
    return sorted(train, key=lambda r: r["id"]), sorted(test, key=lambda r: r["id"])


def main() -> None:
    rows = generate()
    train, test = split(rows)
    for name, part in (("train", train), ("test", test)):
        with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for row in part:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} steps: {len(train)} train, {len(test)} test")


if __name__ == "__main__":
    main()
