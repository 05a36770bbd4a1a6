"""Generate tests/data/calibration_sample.jsonl: recorded cheap answers labelled correct or not.

Deterministic (fixed seed). The answers mimic a dLLM backend on support steps: mostly right
and sure of the values it writes; wrong answers are either unsure on a value token, fail a
hard check (label outside the set, value not in the ticket, cut off), or are confidently wrong
(which no threshold can catch, as in real traffic). Key and punctuation tokens get noisy
probabilities either way, as real engines give them.

    python tests/data/make_calibration_sample.py [OUT.jsonl]
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
from pathlib import Path
from typing import Any

SEED = 20261126
OUT = Path(__file__).with_name("calibration_sample.jsonl")
LABELS = ["billing", "shipping", "refund", "technical", "account"]
TICKETS = {
    "billing": ["I was charged twice for my last order", "Why is there a fee on my invoice?"],
    "shipping": ["My parcel has not arrived after ten days", "Can you ship to Norway?"],
    "refund": ["I want my money back for the broken blender", "Refund the cancelled order please"],
    "technical": ["The app crashes when I open my cart", "Password reset link gives error 500"],
    "account": ["How do I change the email on my account?", "Please delete my profile"],
}
NAMES = ["Ana Silva", "Tom Becker", "Yuki Sato", "Omar Haddad", "Lena Novak", "Raj Patel"]
PRODUCTS = ["blender", "desk lamp", "kettle", "headphones", "backpack", "coffee grinder"]
KB = [
    ("How long do refunds take?", "Refunds are issued within 5 business days.", "5 business days"),
    ("Do you ship abroad?", "We ship to the EU, UK and Norway.", "the EU, UK and Norway"),
    ("What is the return window?", "Items can be returned within 30 days.", "30 days"),
    ("Is there a warranty?", "All appliances carry a 2 year warranty.", "2 year warranty"),
]
_PIECE = re.compile(r" ?[A-Za-z]{1,4}| ?\d{1,3}|[^A-Za-z\d\s]+|\s+")


def pieces(text: str) -> list[str]:
    """A crude BPE: words in pieces of up to 4 letters, digit runs of 3, punctuation runs."""
    out = _PIECE.findall(text)
    assert "".join(out) == text, text
    return out


def logprobs(
    rng: random.Random,
    text: str,
    *,
    sure: bool,
    dip: bool,
    value_spans: list[tuple[int, int]],
    dip_spans: list[tuple[int, int]] | None = None,
    mild: bool = False,
) -> list[dict[str, Any]]:
    """Per-piece logprobs. Pieces overlapping a value span are 'value' pieces: `sure` keeps
    them high, and `dip` puts one of those overlapping `dip_spans` (default: all value spans)
    low; `mild` makes those only a little less sure (a confidently wrong answer). Other pieces
    (keys, punctuation) get noisy probabilities."""
    toks = pieces(text)
    offsets, pos = [], 0
    for tok in toks:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok)

    def overlapping(spans: list[tuple[int, int]]) -> list[int]:
        return [
            i
            for i, (a, b) in enumerate(offsets)
            if any(a < e and s < b for s, e in spans) and toks[i].strip(' "')
        ]

    value_idx = overlapping(value_spans)
    dip_idx = overlapping(dip_spans) if dip_spans is not None else value_idx
    low = rng.choice(dip_idx) if dip and dip_idx else -1
    out = []
    for i, tok in enumerate(toks):
        if i == low:
            p = rng.uniform(0.04, 0.45)
        elif mild and i in dip_idx:
            p = 1.0 - rng.betavariate(1, 8)
        elif i in value_idx:
            p = 1.0 - rng.betavariate(1, 80) if sure else rng.uniform(0.6, 0.95)
        else:
            p = rng.uniform(0.3, 1.0)
        out.append({"token": tok, "logprob": round(math.log(p), 5), "top_logprobs": []})
    return out


def response(
    rid: str, text: str, lps: list[dict[str, Any]] | None, *, finish: str = "stop"
) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": finish,
        "logprobs": None if lps is None else {"content": lps},
    }
    return {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion",
        "model": "diffusiongemma-2b",
        "choices": [choice],
        "usage": {"prompt_tokens": 60, "completion_tokens": len(lps or pieces(text))},
    }


def outcome(rng: random.Random, p_wrong: float) -> str:
    """ok, or wrong: unsure (a low value token), hard (fails a validator), confident."""
    if rng.random() >= p_wrong:
        return "ok"
    return rng.choices(["unsure", "hard", "confident"], weights=[60, 28, 12])[0]


def classify(rng: random.Random, n: int) -> dict[str, Any]:
    truth = rng.choice(LABELS)
    ticket = rng.choice(TICKETS[truth])
    style = n % 3
    if style == 0:
        system = f"Classify the ticket. Answer with one of: {', '.join(LABELS)}."
    elif style == 1:
        system = f"Route this message. Categories: {' | '.join(LABELS)}"
    else:
        system = "Classify the ticket into one of these categories:\n" + "\n".join(
            f"- {label}" for label in LABELS
        )
    kind = outcome(rng, 0.18)
    if kind == "ok":
        answer = truth
    elif kind == "hard":
        answer = rng.choice(["payment", "delivery", "other"])
    else:
        answer = rng.choice([label for label in LABELS if label != truth])
    lps = logprobs(
        rng,
        answer,
        sure=kind in ("ok", "confident"),
        dip=kind == "unsure" or (kind == "ok" and rng.random() < 0.05),
        mild=kind == "confident",
        value_spans=[(0, len(answer))],
    )
    request = {
        "model": "auto",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": ticket}],
        "max_tokens": 8,
        "logprobs": True,
    }
    return {
        "kind": "classify",
        "request": request,
        "response": response(f"c{n}", answer, lps),
        "correct": kind == "ok",
    }


EXTRACT_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "email": {"type": "string"},
        "amount": {"type": "number"},
        "priority": {"enum": ["low", "normal", "high"]},
    },
    "required": ["order_id", "email", "amount", "priority"],
    "additionalProperties": False,
}


def extract(rng: random.Random, n: int) -> dict[str, Any]:
    name = rng.choice(NAMES)
    order = f"A-{rng.randint(10000, 99999)}"
    other = f"A-{rng.randint(10000, 99999)}"
    email = name.lower().replace(" ", ".") + "@example.com"
    amount = round(rng.uniform(5, 400), 2)
    product = rng.choice(PRODUCTS)
    ticket = (
        f"Hi, this is {name} ({email}). My {product}, order {order}, cost ${amount:.2f} "
        f"and arrived broken. My previous order {other} was fine."
    )
    kind = outcome(rng, 0.22)
    got_order = order
    if kind == "confident":
        got_order = other  # a real order number from the ticket, the wrong one
    elif kind == "unsure":
        got_order = rng.choice([other, order[:-1] + str((int(order[-1]) + 3) % 10)])
    elif kind == "hard":
        got_order = f"A-{rng.randint(10000, 99999)}"  # made up: not in the ticket
    body = {"order_id": got_order, "email": email, "amount": amount, "priority": "normal"}
    text = json.dumps(body, separators=(",", ":"))
    start = text.index(got_order)
    order_span = [(start, start + len(got_order))]
    spans = [
        (text.index(v), text.index(v) + len(v)) for v in (got_order, email, str(amount), "normal")
    ]
    truncated = kind == "hard" and rng.random() < 0.3
    if truncated:
        text = text[: len(text) // 2]
    lps = logprobs(
        rng,
        text,
        sure=kind in ("ok", "confident"),
        dip=kind == "unsure" or (kind == "ok" and rng.random() < 0.05),
        mild=kind == "confident",
        value_spans=spans,
        dip_spans=order_span,
    )
    request = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Extract the order details from the ticket."},
            {"role": "user", "content": ticket},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "order", "schema": EXTRACT_SCHEMA, "strict": True},
        },
        "max_tokens": 120,
    }
    return {
        "kind": "extract",
        "request": request,
        "response": response(f"e{n}", text, lps, finish="length" if truncated else "stop"),
        "correct": kind == "ok",
    }


def lookup(rng: random.Random, n: int) -> dict[str, Any]:
    question, snippet, truth = rng.choice(KB)
    kind = outcome(rng, 0.2)
    answer = truth if kind == "ok" else rng.choice([t for _, _, t in KB if t != truth])
    finish = "stop"
    if kind == "hard":
        answer, finish = answer.split()[0], "length"
    lps = logprobs(
        rng,
        answer,
        sure=kind in ("ok", "confident"),
        dip=kind in ("unsure", "hard") or (kind == "ok" and rng.random() < 0.05),
        mild=kind == "confident",
        value_spans=[(0, len(answer))],
    )
    request = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": f"Answer briefly from this article: {snippet}"},
            {"role": "user", "content": question},
        ],
        "max_tokens": 32,
    }
    no_logprobs = n % 10 == 0  # a backend that returns none (SGLang LLaDA2, Mercury)
    return {
        "kind": "lookup",
        "request": request,
        "response": response(f"l{n}", answer, None if no_logprobs else lps, finish=finish),
        "correct": kind == "ok",
    }


def summarize(rng: random.Random, n: int) -> dict[str, Any]:
    name, product = rng.choice(NAMES), rng.choice(PRODUCTS)
    kind = outcome(rng, 0.15)
    wrong_product = rng.choice([p for p in PRODUCTS if p != product])
    about = product if kind == "ok" else wrong_product
    answer = f"{name} reports that the {about} arrived damaged and asks for a replacement."
    start = answer.index(about)
    lps = logprobs(
        rng,
        answer,
        sure=kind in ("ok", "confident"),
        dip=kind in ("unsure", "hard") or (kind == "ok" and rng.random() < 0.05),
        mild=kind == "confident",
        value_spans=[(0, len(answer))],
        dip_spans=[(start, start + len(about))],
    )
    request = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Summarize the ticket in one sentence."},
            {
                "role": "user",
                "content": f"{name}: my {product} came with a cracked lid, please send a new one.",
            },
        ],
        "max_tokens": 80,
    }
    return {
        "kind": "summarize",
        "request": request,
        "response": response(f"s{n}", answer, lps),
        "correct": kind == "ok",
    }


def generate() -> list[str]:
    rng = random.Random(SEED)
    plan = [(classify, 130), (extract, 100), (lookup, 60), (summarize, 40)]
    lines: list[str] = []
    for make, count in plan:
        for n in range(count):
            record = make(rng, n)
            record = {"id": f"{record['kind']}-{n:03d}", **record}
            lines.append(json.dumps(record, separators=(",", ":"), sort_keys=False))
    return lines


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.write_text("\n".join(generate()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
