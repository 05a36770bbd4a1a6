#!/usr/bin/env python3
"""Extract real customer-support material from fetched public git mirrors.

Writes, next to this file:
  customer_messages.jsonl  real customer utterances (many domains, some languages)
  conversations.jsonl      multi-turn customer/agent dialogues (<= 30 turns)
  agent_prompts.jsonl      real agent system prompts, policies, workflow guidelines, KB articles
  tools.jsonl              real tool definitions as OpenAI function-tool schemas
and prints a per-source / per-language count summary (used for SOURCES.md).

Every row carries "source" (owner/name:path@commit) and "license".

Input: bare git mirrors as laid out by the search tool's `fetch`, i.e.
  <mirrors>/<owner>+<name>/repo     (default --mirrors: .mirror/ beside the repository)
Each source is read at a pinned commit (the one the data was built from); when that commit is
missing from a mirror the mirror's HEAD is used and a warning is printed. A source whose mirror
is missing is skipped with a warning. No network access is needed.

Usage: python data/steps/real/build.py [--mirrors DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import os
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict

SEED = 14

# key -> (repo, pinned commit, license of the material taken)
REPOS = {
    "polyai": (
        "PolyAI-LDN/task-specific-datasets",
        "57ec275d8078af65b7731c2a98be812d844a6d6b",
        "CC-BY-4.0",
    ),
    "clinc": ("clinc/oos-eval", "828f8093932c8fe6ca7936c3d2e52903b1c523de", "CC-BY-3.0"),
    "sgd": (
        "google-research-datasets/dstc8-schema-guided-dialogue",
        "e852981ae34990f4358979625854259302feaa78",
        "CC-BY-SA-4.0",
    ),
    "taskmaster": (
        "google-research-datasets/Taskmaster",
        "d92cb6af3005f1dc09c39e75e7daf4a04905e00b",
        "CC-BY-4.0",
    ),
    "abcd": ("asappresearch/abcd", "6b8700ce67c6b37b062dd7a60abc76d7ef832a97", "MIT"),
    "dialogstudio": ("salesforce/DialogStudio", "3e54576b4db71c56468ae4591a94ce9e419ed01c", "MIT"),
    "taubench": ("sierra-research/tau-bench", "59a200c6d575d595120f1cb70fea53cef0632f6b", "MIT"),
    "tau2": ("sierra-research/tau2-bench", "a2c024725189473d2d7cea3a5cfdbcc67478e41f", "MIT"),
    "xsid": ("mainlp/xsid", "761d926c3f2e9f6bea13192d2f39cec1d04d9777", "CC-BY-SA-4.0"),
    "xrisawoz": (
        "stanford-oval/dialogues",
        "a2d317843b2c92338112bc56fc279b73a01fb66f",
        "BSD-3-Clause",
    ),
    "jmultiwoz": (
        "nu-dialogue/jmultiwoz",
        "a78dd334b907e12318b76bb23d0a9ed1498b8d15",
        "CC-BY-SA-4.0",
    ),
    "oai_agents": (
        "openai/openai-agents-python",
        "7f7a44f8dc0650296bd5ab6c745c9bcbaa6ac3b7",
        "MIT",
    ),
    "oai_cs_demo": (
        "openai/openai-cs-agents-demo",
        "bd7bfca0f5abf50529370814c3e7c88542011925",
        "MIT",
    ),
    "anthropic_cookbook": (
        "anthropics/anthropic-cookbook",
        "4b36a1e1f64361397f4cbe4fbc7cdace338f16f8",
        "MIT",
    ),
}

# ---------------------------------------------------------------------------------------------
# git access


class Mirror:
    def __init__(self, root: str, key: str):
        self.key = key
        self.repo, pinned, self.license = REPOS[key]
        self.gitdir = os.path.join(root, self.repo.replace("/", "+"), "repo")
        self.ok = os.path.isdir(self.gitdir)
        self.commit = None
        if not self.ok:
            warn(f"{self.repo}: no mirror at {self.gitdir}; skipped")
            return
        if self._git("cat-file", "-e", pinned + "^{commit}", check=False) is not None:
            self.commit = pinned
        else:
            self.commit = self._git("rev-parse", "HEAD").decode().strip()
            warn(f"{self.repo}: pinned commit {pinned[:12]} absent, using HEAD {self.commit[:12]}")

    def _git(self, *args, check=True):
        p = subprocess.run(["git", "--git-dir", self.gitdir, *args], capture_output=True)
        if p.returncode != 0:
            if check:
                raise RuntimeError(f"git {' '.join(args)}: {p.stderr.decode()[:200]}")
            return None
        return p.stdout

    def files(self, prefix: str = "") -> list[str]:
        if not self.ok:
            return []
        out = self._git("ls-tree", "-r", "--name-only", self.commit, "--", prefix or ".")
        return [ln for ln in out.decode("utf-8", "replace").splitlines() if ln]

    def read(self, path: str) -> str | None:
        """File text at the pinned commit; None when the file or its blob is absent."""
        if not self.ok:
            return None
        out = self._git("show", f"{self.commit}:{path}", check=False)
        if out is None:
            return None
        return out.decode("utf-8", "replace")

    def src(self, path: str) -> str:
        return f"{self.repo}:{path}@{self.commit[:12]}"


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# text helpers

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
URL = re.compile(r"https?://|www\.", re.I)
PHONE = re.compile(r"\(?\+?\d{1,3}\)?[\s.-]?\(?\d{3}\)?[\s.-]\d{3}[\s.-]?\d{4}")
LONGNUM = re.compile(r"\d[\d ]{8,}\d")
CJK = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"


def clean(t: str) -> str:
    t = unicodedata.normalize("NFC", t or "")
    t = t.replace("\u00a0", " ")
    return re.sub(r"\s+", " ", t).strip()


def pii_like(t: str) -> bool:
    return bool(EMAIL.search(t) or URL.search(t) or PHONE.search(t) or LONGNUM.search(t))


def dedup_key(t: str) -> str:
    return re.sub(r"[\W_]+", "", t.lower())


def join_cjk(t: str) -> str:
    """xSID tokenises Japanese with spaces; drop spaces between CJK characters."""
    t = re.sub(rf"(?<=[{CJK}])\s+(?=[{CJK}])", "", t)
    t = re.sub(rf"(?<=[{CJK}])\s+(?=[0-9A-Za-z])|(?<=[0-9A-Za-z])\s+(?=[{CJK}])", "", t)
    return t


def stratified(items: list, key, cap: int, rng: random.Random) -> list:
    """Round-robin over groups (shuffled) until cap items are chosen."""
    groups = defaultdict(list)
    for it in items:
        groups[key(it)].append(it)
    for g in groups.values():
        rng.shuffle(g)
    order = sorted(groups)
    rng.shuffle(order)
    out, i = [], 0
    while len(out) < cap and any(groups[g] for g in order):
        g = order[i % len(order)]
        if groups[g]:
            out.append(groups[g].pop())
        i += 1
    return out


def split_sections(text: str, limit: int = 4000) -> list[str]:
    """Split a markdown/policy text into sections of <= limit chars (headings, then paragraphs)."""
    text = text.strip()
    if len(text) <= limit:
        return [text]
    parts = re.split(r"\n(?=#{1,3} )", text)
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        if len(p) <= limit:
            out.append(p)
            continue
        buf = ""
        for para in re.split(r"\n\s*\n", p):
            while len(para) > limit:  # a single huge paragraph: cut on line breaks
                cut = para.rfind("\n", 0, limit)
                cut = cut if cut > limit // 2 else limit
                if buf:
                    out.append(buf.strip())
                    buf = ""
                out.append(para[:cut].strip())
                para = para[cut:]
            if len(buf) + len(para) + 2 > limit:
                out.append(buf.strip())
                buf = ""
            buf += para + "\n\n"
        if buf.strip():
            out.append(buf.strip())
    # merge tiny neighbours
    merged = []
    for s in out:
        if merged and len(merged[-1]) + len(s) + 2 <= limit and len(s) < 400:
            merged[-1] = merged[-1] + "\n\n" + s
        else:
            merged.append(s)
    return merged


# ---------------------------------------------------------------------------------------------
# collectors: customer messages


def msg(text, lang, domain, source, license, intent=None, origin=None):
    row = {"text": text, "lang": lang, "domain": domain}
    if intent:
        row["intent"] = intent
    if origin:
        row["origin"] = origin
    row["source"] = source
    row["license"] = license
    return row


def banking77(m: Mirror, rng, cap=1500):
    rows = []
    for path in ("banking_data/train.csv", "banking_data/test.csv"):
        txt = m.read(path)
        if txt is None:
            continue
        for r in csv.DictReader(io.StringIO(txt)):
            rows.append(
                msg(
                    clean(r["text"]),
                    "en",
                    "banking",
                    m.src(path),
                    m.license,
                    r["category"],
                    "crowdsourced",
                )
            )
    return stratified(rows, lambda r: r["intent"], cap, rng)


CLINC_DOMAINS = {
    "banking": "banking",
    "credit_cards": "banking",
    "travel": "travel",
    "auto_and_commute": "automotive",
}
CLINC_EXTRA = {  # selected intents of other CLINC domains that are support-like
    "restaurant_reservation": "restaurants",
    "confirm_reservation": "restaurants",
    "cancel_reservation": "restaurants",
    "accept_reservations": "restaurants",
    "how_busy": "restaurants",
    "order_status": "ecommerce",
    "order": "ecommerce",
    "insurance": "insurance",
    "insurance_change": "insurance",
    "direct_deposit": "payroll",
    "payday": "payroll",
    "taxes": "payroll",
    "rollover_401k": "payroll",
    "w2": "payroll",
    "pto_request": "hr",
    "pto_balance": "hr",
    "pto_request_status": "hr",
    "pto_used": "hr",
}
CLINC_SKIP = {
    "translate",
    "timezone",
    "plug_type",
    "vaccines",
    "mpg",
    "distance",
    "current_location",
    "gas",
    "traffic",
    "directions",
}


def clinc150(m: Mirror, rng, cap=1500):
    dom = json.loads(m.read("data/domains.json") or "{}")
    intent_domain = {}
    for d, intents in dom.items():
        for i in intents:
            if d in CLINC_DOMAINS:
                intent_domain[i] = CLINC_DOMAINS[d]
    intent_domain.update(CLINC_EXTRA)
    data = json.loads(m.read("data/data_full.json") or "{}")
    rows = []
    for split in ("train", "val", "test"):
        for text, intent in data.get(split, []):
            if intent in intent_domain and intent not in CLINC_SKIP:
                rows.append(
                    msg(
                        clean(text),
                        "en",
                        intent_domain[intent],
                        m.src("data/data_full.json"),
                        m.license,
                        intent,
                        "crowdsourced",
                    )
                )
    return stratified(rows, lambda r: r["intent"], cap, rng)


def nlupp(m: Mirror, rng, caps=(("banking", 300), ("hotels", 500))):
    out = []
    for domain, cap_per_domain in caps:
        label = domain
        rows = []
        for path in m.files(f"nlupp/data/{domain}/"):
            if not path.endswith(".json"):
                continue
            for ex in json.loads(m.read(path) or "[]"):
                intents = ex.get("intents") or []
                rows.append(
                    msg(
                        clean(ex["text"]),
                        "en",
                        label,
                        m.src(path),
                        m.license,
                        "+".join(sorted(intents)) if intents else None,
                        "crowdsourced",
                    )
                )
        out += stratified(rows, lambda r: r.get("intent", ""), cap_per_domain, rng)
    return out


SGD_DOMAIN = {
    "Banks": "banking",
    "Payment": "payments",
    "Buses": "bus_travel",
    "Flights": "flights",
    "Hotels": "hotels",
    "RentalCars": "car_rental",
    "Restaurants": "restaurants",
    "RideSharing": "ride_sharing",
    "Services": "appointments",
    "Trains": "trains",
    "Travel": "travel",
    "Events": "events_tickets",
    "Homes": "real_estate",
    "Movies": "movie_tickets",
}


def sgd_dialogues(m: Mirror):
    """All SGD dialogues present in the mirror (some large blobs are absent)."""
    for split in ("train", "dev", "test"):
        for path in m.files(f"{split}/"):
            if not re.search(r"/dialogues_\d+\.json$", path):
                continue
            txt = m.read(path)
            if txt is None:
                continue
            for d in json.loads(txt):
                svc = d["services"][0].split("_")[0]
                if svc in SGD_DOMAIN:
                    yield path, SGD_DOMAIN[svc], d


def sgd_messages(m: Mirror, rng, cap=1500):
    rows = []
    for path, domain, d in sgd_dialogues(m):
        user_turns = [t for t in d["turns"] if t["speaker"] == "USER"]
        for k, t in enumerate(user_turns[:-1]):  # the last user turn is usually "thanks, bye"
            text = clean(t["utterance"])
            if k > 0 and len(text.split()) < 7:
                continue
            intent, dom = None, domain
            for fr in t.get("frames", []):
                intent = (fr.get("state") or {}).get("active_intent") or intent
                dom = SGD_DOMAIN.get(fr.get("service", "").split("_")[0])
            if intent == "NONE":
                intent = None
            if dom is None:
                continue
            rows.append(msg(text, "en", dom, m.src(path), m.license, intent, "crowdsourced"))
    return stratified(rows, lambda r: r["domain"], cap, rng)


def taskmaster_first_user(m: Mirror):
    """(path, domain, turns) of the Taskmaster dialogues present.

    TM-4 coffee ordering, TM-3 movie tickets, TM-1 sample.
    """
    for path in m.files("TM-4-2024/data/"):
        txt = m.read(path)
        if txt is None:
            continue
        for d in json.loads(txt):
            turns = [
                ("customer" if u["speaker"] == "user" else "agent", clean(u["text"]))
                for u in d["utterances"]
            ]
            yield path, "food_ordering", turns
    for path in m.files("TM-3-2020/splits/"):
        if not path.endswith(".tsv"):
            continue
        txt = m.read(path)
        if txt is None:
            continue
        for line in txt.splitlines():
            body = line.split("<C>", 1)[-1]
            turns = []
            for role, text in re.findall(r"<(U|A)>(.*?)(?=<U>|<A>|<P[A-Z]*>|<E>|<C>|$)", body):
                text = clean(text)
                if text:
                    turns.append(("customer" if role == "U" else "agent", text))
            yield path, "movie_tickets", turns
    txt = m.read("TM-1-2019/sample.json")
    if txt:
        data = json.loads(txt)
        for d in data if isinstance(data, list) else [data]:
            turns = [
                ("customer" if u["speaker"] == "USER" else "agent", clean(u["text"]))
                for u in d["utterances"]
            ]
            yield "TM-1-2019/sample.json", "restaurants", turns


def taskmaster_messages(m: Mirror, rng, cap_per_domain=250):
    rows = []
    for path, domain, turns in taskmaster_first_user(m):
        first = next((t for r, t in turns if r == "customer" and len(t.split()) >= 3), None)
        if first:
            rows.append(
                msg(first, "en", domain, m.src(path), m.license, None, "crowdsourced_self_dialog")
            )
    out = []
    for dom in sorted({r["domain"] for r in rows}):
        sub = [r for r in rows if r["domain"] == dom]
        rng.shuffle(sub)
        out += sub[:cap_per_domain]
    return out


def parse_display(text: str):
    """tau-bench few-shot 'messages_display': lines 'user: ...', 'assistant: ...', 'tool: ...'."""
    turns, cur = [], None
    for line in text.split("\n"):
        mm = re.match(r"^(user|assistant|tool): ?(.*)$", line)
        if mm:
            cur = [mm.group(1), mm.group(2)]
            turns.append(cur)
        elif cur is not None:
            cur[1] += "\n" + line
    return turns


def tau_trajectories(m: Mirror):
    """(path, domain, turns[(role, text)]) from tau-bench trajectories and few-shot data.

    Text turns only: tool calls and tool results are dropped.
    """
    for path, domain in (
        ("historical_trajectories/gpt-4o-airline.json", "airline"),
        ("historical_trajectories/gpt-4o-retail.json", "retail"),
        ("historical_trajectories/sonnet-35-new-airline.json", "airline"),
        ("historical_trajectories/sonnet-35-new-retail.json", "retail"),
    ):
        txt = m.read(path)
        if txt is None:
            continue
        for ep in json.loads(txt):
            turns = []
            for t in ep.get("traj", []):
                c = t.get("content")
                if (
                    t.get("role") in ("user", "assistant")
                    and isinstance(c, str)
                    and c.strip()
                    and c.strip() != "###STOP###"
                ):
                    turns.append(("customer" if t["role"] == "user" else "agent", c.strip()))
            yield path, domain, turns
    for path, domain in (
        ("few_shot_data/MockRetailDomainEnv-few_shot.jsonl", "retail"),
        ("few_shot_data/MockAirlineDomainEnv-few_shot.jsonl", "airline"),
    ):
        txt = m.read(path)
        if txt is None:
            continue
        for line in txt.splitlines():
            if not line.strip():
                continue
            ex = json.loads(line)
            turns = []
            for role, c in parse_display(ex.get("messages_display", "")):
                c = c.strip()
                if role in ("user", "assistant") and c and c != "None" and c != "###STOP###":
                    turns.append(("customer" if role == "user" else "agent", c))
            yield path, domain, turns


def tau_messages(m: Mirror, rng, cap_per_domain=200):
    rows = []
    for path, domain, turns in tau_trajectories(m):
        for _r, t in [x for x in turns if x[0] == "customer"][:2]:
            t = clean(t)
            if len(t.split()) >= 5 and not pii_like(t):
                rows.append(
                    msg(t, "en", domain, m.src(path), m.license, None, "llm_simulated_user")
                )
    out = []
    for dom in sorted({r["domain"] for r in rows}):
        sub = [r for r in rows if r["domain"] == dom]
        rng.shuffle(sub)
        out += sub[:cap_per_domain]
    return out


def abcd_dialogues(m: Mirror, ds: Mirror):
    """ABCD sample dialogues + DialogStudio's ABCD originals (the full gz is absent)."""
    seen = set()
    txt = m.read("data/abcd_sample.json")
    for d in json.loads(txt or "[]"):
        key = d.get("convo_id")
        seen.add(key)
        intent = f"{d['scenario']['flow']}/{d['scenario']['subflow']}"
        yield (
            m,
            "data/abcd_sample.json",
            intent,
            [(r, clean(t)) for r, t in d["original"] if r in ("agent", "customer")],
        )
    txt = ds.read("task-oriented-dialogues/ABCD/original_examples.json") if ds.ok else None
    for d in json.loads(txt or "[]"):
        if d.get("convo_id") in seen or "original" not in d:
            continue
        sc = d.get("scenario", {})
        intent = f"{sc.get('flow')}/{sc.get('subflow')}" if sc else None
        yield (
            ds,
            "task-oriented-dialogues/ABCD/original_examples.json",
            intent,
            [(r, clean(t)) for r, t in d["original"] if r in ("agent", "customer")],
        )


def abcd_messages(m, ds):
    rows = []
    for mir, path, intent, turns in abcd_dialogues(m, ds):
        for r, t in turns:
            if r == "customer" and len(t.split()) >= 5 and not pii_like(t):
                rows.append(
                    msg(
                        t,
                        "en",
                        "ecommerce",
                        mir.src(path),
                        REPOS["abcd"][2],
                        intent,
                        "crowdsourced_roleplay",
                    )
                )
    return rows


XSID_DOMAIN = {
    "weather": "weather",
    "alarm": "alarms",
    "reminder": "reminders",
    "BookRestaurant": "restaurants",
    "AddToPlaylist": "media",
    "PlayMusic": "media",
    "RateBook": "media",
    "SearchCreativeWork": "media",
    "SearchScreeningEvent": "movie_tickets",
}


def xsid(m: Mirror, rng, cap_per_lang=600):
    out = []
    for lang in ("de", "it", "nl", "ja"):
        rows = []
        for split in ("valid", "test"):
            path = f"data/xSID-0.5/{lang}.{split}.conll"
            txt = m.read(path)
            if txt is None:
                continue
            text = intent = None
            for line in txt.splitlines():
                if line.startswith("# text = "):
                    text = line[len("# text = ") :]
                elif line.startswith("# intent = "):
                    intent = line[len("# intent = ") :].strip()
                elif not line.strip() and text:
                    t = re.sub(r"\s+([.,!?;:])(?=\s|$)", r"\1", clean(text))
                    if lang == "ja":
                        t = join_cjk(t)
                        t = re.sub(r"(?<=\d) (?=\d)", "", t)
                    dom = (
                        XSID_DOMAIN.get(intent.split("/")[0], "virtual_assistant")
                        if intent
                        else "virtual_assistant"
                    )
                    rows.append(
                        msg(
                            t,
                            lang,
                            dom,
                            m.src(path),
                            m.license,
                            intent,
                            "human_translation_of_english",
                        )
                    )
                    text = intent = None
        out += stratified(rows, lambda r: r.get("intent", ""), cap_per_lang, rng)
    return out


RISAWOZ_DOMAIN = {
    "Attraction": "travel",
    "Restaurant": "restaurants",
    "Hotel": "hotels",
    "Flight": "flights",
    "Train": "trains",
    "Weather": "weather",
    "Movie": "media",
    "TV": "media",
    "PC": "electronics_shopping",
    "Car": "car_shopping",
    "Class": "education",
    "Hospital": "healthcare",
}


def xrisawoz_dialogues(m: Mirror):
    path = "dialogues/risawoz/data/original/fr_fewshot.json"
    txt = m.read(path)
    for d in json.loads(txt or "[]"):
        turns, doms = [], Counter()
        for t in d.get("dialogue", []):
            for dd in t.get("turn_domain", []):
                doms[dd] += 1
            u = t.get("user_utterance")
            s = t.get("system_utterance")
            u = clean(u[0] if isinstance(u, list) else u or "")
            s = clean(s[0] if isinstance(s, list) else s or "")
            if u:
                turns.append(("customer", u, t.get("turn_domain", [None])[0]))
            if s:
                turns.append(("agent", s, None))
        dom = doms.most_common(1)[0][0] if doms else None
        yield path, RISAWOZ_DOMAIN.get(dom, "travel"), turns


def xrisawoz_messages(m: Mirror, rng, cap=500):
    rows = []
    for path, dom, turns in xrisawoz_dialogues(m):
        for r, t, td in turns:
            if r == "customer" and len(t.split()) >= 4 and not pii_like(t):
                rows.append(
                    msg(
                        t,
                        "fr",
                        RISAWOZ_DOMAIN.get(td, dom),
                        m.src(path),
                        m.license,
                        None,
                        "human_post_edited_translation",
                    )
                )
    return stratified(rows, lambda r: r["domain"], cap, rng)


def jmultiwoz_examples(m: Mirror):
    """Dialogue excerpts quoted as comments in JMultiWOZ's prompt file (<顧客> ... <店員> ...)."""
    path = "tod_models/llm/prompts.py"
    txt = m.read(path) or ""
    out = []
    for line in txt.splitlines():
        line = line.strip()
        if not line.startswith("#") or "<顧客>" not in line:
            continue
        body = line.lstrip("# ").strip()
        turns = []
        for role, text in re.findall(r"<(顧客|店員)>(.*?)(?=<顧客>|<店員>|$)", body):
            text = clean(text).strip('"“”')
            if text:
                turns.append(("customer" if role == "顧客" else "agent", text))
        if turns:
            out.append((path, turns))
    return out


def jmultiwoz_messages(m: Mirror):
    rows, seen = [], set()
    for path, turns in jmultiwoz_examples(m):
        for r, t in turns:
            if r == "customer" and len(t) >= 8 and t not in seen:
                seen.add(t)
                rows.append(msg(t, "ja", "travel", m.src(path), m.license, None, "crowdsourced"))
    return rows


# ---------------------------------------------------------------------------------------------
# conversations


def convo(turns, lang, domain, source, license, intent=None, origin=None, max_turns=30):
    turns = [{"role": r, "text": t} for r, t in turns if t]
    # merge consecutive turns of the same role (ABCD agents often send two bubbles)
    merged = []
    for t in turns:
        if merged and merged[-1]["role"] == t["role"]:
            merged[-1]["text"] += "\n" + t["text"]
        else:
            merged.append(dict(t))
    if len(merged) < 2 or len(merged) > max_turns:
        return None
    row = {"turns": merged, "lang": lang, "domain": domain}
    if intent:
        row["intent"] = intent
    if origin:
        row["origin"] = origin
    row.update(source=source, license=license)
    return row


def conversations(mir: dict, rng) -> list:
    out = []
    m = mir["sgd"]
    rows = []
    for path, domain, d in sgd_dialogues(m):
        turns = [
            ("customer" if t["speaker"] == "USER" else "agent", clean(t["utterance"]))
            for t in d["turns"]
        ]
        r = convo(
            turns,
            "en",
            domain,
            m.src(path) + f"#{d['dialogue_id']}",
            m.license,
            None,
            "crowdsourced_paraphrase",
        )
        if r:
            rows.append(r)
    out += stratified(rows, lambda r: r["domain"], 450, rng)

    m = mir["taskmaster"]
    per = defaultdict(list)
    for path, domain, turns in taskmaster_first_user(m):
        r = convo(turns, "en", domain, m.src(path), m.license, None, "crowdsourced_self_dialog")
        if r:
            per[domain].append(r)
    for dom, cap in (("food_ordering", 120), ("movie_tickets", 80), ("restaurants", 20)):
        rng.shuffle(per[dom])
        out += per[dom][:cap]

    m = mir["taubench"]
    per = defaultdict(list)
    for path, domain, turns in tau_trajectories(m):
        r = convo(
            turns, "en", domain, m.src(path), m.license, None, "llm_simulated_user_and_llm_agent"
        )
        if r:
            per[(path, domain)].append(r)
    for k in sorted(per):
        rng.shuffle(per[k])
        out += per[k][: (100 if "historical" in k[0] else 60)]

    for mm, path, intent, turns in abcd_dialogues(mir["abcd"], mir["dialogstudio"]):
        r = convo(
            turns,
            "en",
            "ecommerce",
            mm.src(path),
            REPOS["abcd"][2],
            intent,
            "crowdsourced_roleplay",
        )
        if r:
            out.append(r)

    m = mir["xrisawoz"]
    for path, dom, turns in xrisawoz_dialogues(m):
        r = convo(
            [(a, b) for a, b, _ in turns],
            "fr",
            dom,
            m.src(path),
            m.license,
            None,
            "human_post_edited_translation",
        )
        if r:
            out.append(r)

    m = mir["jmultiwoz"]
    for path, turns in jmultiwoz_examples(m):
        if len(turns) >= 3:
            r = convo(turns, "ja", "travel", m.src(path), m.license, None, "crowdsourced_excerpt")
            if r:
                out.append(r)
    return out


# ---------------------------------------------------------------------------------------------
# agent prompts


def prompt(text, domain, source, license, kind_hint=None, title=None, lang="en"):
    text = text.replace("\ufeff", "").strip()
    row = {"text": text, "domain": domain}
    if kind_hint:
        row["kind_hint"] = kind_hint
    if title:
        row["title"] = title
    if lang != "en":
        row["lang"] = lang
    row.update(source=source, license=license)
    return row


def doc_prompts(m: Mirror, path, domain, kind_hint, title=None):
    txt = m.read(path)
    if not txt:
        return []
    secs = split_sections(txt)
    return [
        prompt(
            s,
            domain,
            m.src(path) + (f"#part{i + 1}" if len(secs) > 1 else ""),
            m.license,
            kind_hint,
            title,
        )
        for i, s in enumerate(secs)
    ]


def py_strings(src: str, consts: dict | None = None):
    """Prompt-like strings in Python source.

    instructions= kwargs, *PROMPT*/*INSTRUCTION* assignments,
    return values of *instructions*/*prompt* functions; f-string fields kept as {placeholders}."""
    consts = consts or {}
    tree = ast.parse(src)

    def render(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            s = ""
            for v in node.values:
                if isinstance(v, ast.Constant):
                    s += str(v.value)
                else:
                    expr = ast.unparse(v.value)
                    s += consts.get(expr, "{" + expr + "}")
            return s
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = render(node.left), render(node.right)
            return a + b if a is not None and b is not None else None
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "strip"
        ):
            r = render(node.func.value)
            return r.strip() if r is not None else None
        if isinstance(node, ast.Dict):
            return None
        return None

    found = []
    for node in ast.walk(tree):  # (ast.walk order is deterministic)
        if isinstance(node, ast.keyword) and node.arg == "instructions":
            r = render(node.value)
            if r:
                found.append(("instructions", r))
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(re.search(r"PROMPT|INSTRUCTION|SYSTEM", n) for n in names):
                if isinstance(node.value, ast.Dict):
                    for k, v in zip(node.value.keys, node.value.values, strict=True):
                        r = render(v)
                        if r and isinstance(k, ast.Constant):
                            found.append((f"{names[0]}[{k.value}]", r))
                else:
                    r = render(node.value)
                    if r:
                        found.append((names[0], r))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and re.search(
            r"instruction|prompt", node.name
        ):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Return) and sub.value is not None:
                    r = render(sub.value)
                    if r:
                        found.append((node.name, r))
    names, uniq = Counter(), []
    for name, text in found:
        names[name] += 1
        uniq.append((name if names[name] == 1 else f"{name}.{names[name]}", text))
    return uniq


def agent_prompts(mir: dict) -> list:
    out = []
    m = mir["taubench"]
    out += doc_prompts(
        m, "tau_bench/envs/retail/wiki.md", "retail", "policy", "Retail agent policy"
    )
    out += doc_prompts(
        m, "tau_bench/envs/airline/wiki.md", "airline", "policy", "Airline agent policy"
    )
    m = mir["tau2"]
    for path, dom, kind, title in (
        ("data/tau2/domains/airline/policy.md", "airline", "policy", "Airline agent policy (tau2)"),
        ("data/tau2/domains/retail/policy.md", "retail", "policy", "Retail agent policy (tau2)"),
        ("data/tau2/domains/telecom/main_policy.md", "telecom", "policy", "Telecom agent policy"),
        (
            "data/tau2/domains/telecom/tech_support_manual.md",
            "telecom",
            "kb_article",
            "Telecom tech support manual",
        ),
        (
            "data/tau2/domains/telecom/tech_support_workflow.md",
            "telecom",
            "workflow_guideline",
            "Telecom tech support workflow",
        ),
        (
            "data/tau2/domains/banking_knowledge/prompts/components/policy_header.md",
            "banking",
            "policy",
            "Banking agent policy header",
        ),
        (
            "data/tau2/domains/banking_knowledge/prompts/components/additional_instructions.md",
            "banking",
            "policy",
            "Banking agent instructions",
        ),
        (
            "data/tau2/domains/banking_knowledge/prompts/agentic_search_write.md",
            "banking",
            "agent_instructions",
            "Banking agent: knowledge search",
        ),
    ):
        out += doc_prompts(m, path, dom, kind, title)
    src = m.read("src/tau2/agent/llm_agent.py")
    if src:
        for name, text in py_strings(src):
            out.append(
                prompt(
                    text.strip(),
                    "generic_support",
                    m.src("src/tau2/agent/llm_agent.py") + f"#{name}",
                    m.license,
                    "system_prompt_template",
                    name,
                )
            )
    docs = [
        p for p in m.files("data/tau2/domains/banking_knowledge/documents/") if p.endswith(".json")
    ]
    rng = random.Random(SEED)
    rng.shuffle(docs)
    for path in sorted(docs[:150]):
        d = json.loads(m.read(path) or "{}")
        body = f"# {d.get('title', '')}\n\n{d.get('content', '')}".strip()
        for i, s in enumerate(split_sections(body)):
            out.append(
                prompt(
                    s,
                    "banking",
                    m.src(path) + (f"#part{i + 1}" if i else ""),
                    m.license,
                    "kb_article",
                    d.get("title"),
                )
            )

    m = mir["abcd"]
    g = json.loads(m.read("data/guidelines.json") or "{}")
    for flow, fd in g.items():
        for sub, sd in (fd.get("subflows") or {}).items():
            lines = [f"Flow: {flow} ({fd.get('description', '')})", f"Subflow: {sub}", ""]
            if sd.get("instructions"):
                lines += [clean(x) for x in sd["instructions"]] + [""]
            for k, a in enumerate(sd.get("actions", []), 1):
                lines.append(f"{k}. [{a.get('button', '')}] {clean(a.get('text', ''))}")
                for st in a.get("subtext", []):
                    lines.append(f"   - {clean(st)}")
            text = "\n".join(lines).strip()
            for s in split_sections(text):
                out.append(
                    prompt(
                        s,
                        "ecommerce",
                        m.src("data/guidelines.json") + f"#{flow}/{sub}",
                        m.license,
                        "workflow_guideline",
                        f"{flow} / {sub}",
                    )
                )

    m = mir["taskmaster"]
    for path in m.files("TM-1-2019/instructions/"):
        if "agent" in os.path.basename(path).lower():
            t = m.read(path)
            if t and t.strip():
                dom = re.sub(r"^.*?2-person_|-\d+\.txt$|\.txt$", "", os.path.basename(path))
                out.append(
                    prompt(
                        t.strip(),
                        dom.replace("-", "_"),
                        m.src(path),
                        m.license,
                        "agent_instructions",
                        os.path.basename(path),
                    )
                )

    m = mir["oai_agents"]
    prefix_src = m.read("src/agents/extensions/handoff_prompt.py") or ""
    consts = {}
    mm = re.search(r"RECOMMENDED_PROMPT_PREFIX = \((.*?)\n\)", prefix_src, re.S)
    if mm:
        consts["RECOMMENDED_PROMPT_PREFIX"] = ast.literal_eval("(" + mm.group(1) + ")")
    for path, dom in (
        ("examples/customer_service/main.py", "airline"),
        ("examples/sandbox/healthcare_support/support_agents.py", "healthcare"),
    ):
        src = m.read(path)
        if src:
            for name, text in py_strings(src, consts):
                if len(text) >= 150:
                    out.append(
                        prompt(
                            text.strip(),
                            dom,
                            m.src(path) + f"#{name}",
                            m.license,
                            "agent_instructions",
                            name,
                        )
                    )
    for path in m.files("examples/sandbox/healthcare_support/policies/"):
        if path.endswith(".md"):
            out += doc_prompts(m, path, "healthcare", "policy", os.path.basename(path)[:-3])

    m = mir["oai_cs_demo"]
    for path in ("python-backend/airline/agents.py", "python-backend/airline/guardrails.py"):
        src = m.read(path)
        if src:
            for name, text in py_strings(src, consts):
                if len(text) >= 150:
                    kind = "classify" if "guardrail" in path else "agent_instructions"
                    out.append(
                        prompt(
                            text.strip(), "airline", m.src(path) + f"#{name}", m.license, kind, name
                        )
                    )

    m = mir["jmultiwoz"]
    src = m.read("tod_models/llm/prompts.py")
    if src:
        for name, text in py_strings(src):
            if len(text.strip()) >= 80:
                kind = "extract" if "STATE" in name.upper() else "draft"
                out.append(
                    prompt(
                        text.strip(),
                        "travel",
                        m.src("tod_models/llm/prompts.py") + f"#{name}",
                        m.license,
                        kind,
                        name,
                        lang="ja",
                    )
                )
    # dedupe identical texts
    seen, uniq = set(), []
    for r in out:
        k = dedup_key(r["text"])
        if k and k not in seen:
            seen.add(k)
            uniq.append(r)
    return uniq


# ---------------------------------------------------------------------------------------------
# tools

PY_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "dict": "object",
    "Dict": "object",
    "list": "array",
    "List": "array",
    "Any": None,
}


def ann_schema(node, aliases):
    """JSON schema for a Python annotation AST node (best effort)."""
    if node is None:
        return {"type": "string"}
    if isinstance(node, ast.Name):
        if node.id in aliases:
            return ann_schema(aliases[node.id], aliases)
        t = PY_TYPES.get(node.id, "object")
        return {"type": t} if t else {}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {"type": "string"}
    if isinstance(node, ast.Subscript):
        base = ast.unparse(node.value).split(".")[-1]
        sl = node.slice
        if base == "Literal":
            vals = [
                e.value
                for e in (sl.elts if isinstance(sl, ast.Tuple) else [sl])
                if isinstance(e, ast.Constant)
            ]
            return {
                "type": "string" if all(isinstance(v, str) for v in vals) else "integer",
                "enum": vals,
            }
        if base in ("List", "list", "Sequence"):
            return {"type": "array", "items": ann_schema(sl, aliases)}
        if base in ("Optional",):
            return ann_schema(sl, aliases)
        if base in ("Dict", "dict"):
            return {"type": "object"}
        if base == "Union":
            return (
                ann_schema(sl.elts[0], aliases)
                if isinstance(sl, ast.Tuple)
                else ann_schema(sl, aliases)
            )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
        return ann_schema(node.left, aliases)
    return {"type": "object"}


def parse_doc(doc: str):
    """(description, {arg: description}) from a Google-style docstring."""
    doc = doc or ""
    parts = re.split(r"\n\s*(Args|Arguments|Parameters|Returns|Raises|Example|Examples):\s*\n", doc)
    desc = clean(parts[0])
    args = {}
    for i in range(1, len(parts) - 1, 2):
        if parts[i] in ("Args", "Arguments", "Parameters"):
            cur = None
            for line in parts[i + 1].splitlines():
                mm = re.match(r"^\s*(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
                if mm:
                    cur = mm.group(1)
                    args[cur] = mm.group(3).strip()
                elif cur and line.strip():
                    args[cur] += " " + line.strip()
    return desc, args


def py_tools(src: str, decorator):
    """OpenAI tool schemas for functions decorated with `decorator`.

    `decorator`: a name or a set of names (is_tool, function_tool, tool).
    """
    decorators = {decorator} if isinstance(decorator, str) else set(decorator)
    tree = ast.parse(src)
    aliases = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            aliases[node.targets[0].id] = node.value
    tools = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        deco = None
        for d in node.decorator_list:
            dn = ast.unparse(d.func if isinstance(d, ast.Call) else d)
            if dn.split(".")[-1] in decorators:
                deco = d
        if deco is None:
            continue
        name, desc_override = node.name, None
        if isinstance(deco, ast.Call):
            for kw in deco.keywords:
                if kw.arg == "name_override" and isinstance(kw.value, ast.Constant):
                    name = kw.value.value
                if kw.arg == "description_override" and isinstance(kw.value, ast.Constant):
                    desc_override = kw.value.value
        desc, argdocs = parse_doc(ast.get_docstring(node) or "")
        props, required = {}, []
        args = node.args.args
        defaults = [None] * (len(args) - len(node.args.defaults)) + list(node.args.defaults)
        for a, dflt in zip(args, defaults, strict=True):
            if a.arg in ("self", "cls", "context", "ctx", "wrapper"):
                continue
            if a.annotation is not None and "RunContextWrapper" in ast.unparse(a.annotation):
                continue
            sch = ann_schema(a.annotation, aliases)
            if argdocs.get(a.arg):
                sch["description"] = argdocs[a.arg]
            if dflt is not None and isinstance(dflt, ast.Constant) and dflt.value is not None:
                sch["default"] = dflt.value
            props[a.arg] = sch
            if dflt is None:
                required.append(a.arg)
        params = {"type": "object", "properties": props, "required": required}
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": desc_override or desc,
                    "parameters": params,
                },
            }
        )
    return tools


def snake(s: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", s).lower()


def tool_row(tool, domain, source, license):
    return {"tool": tool, "domain": domain, "source": source, "license": license}


def tools(mir: dict) -> list:
    out = []
    m = mir["taubench"]
    for dom in ("retail", "airline"):
        for path in m.files(f"tau_bench/envs/{dom}/tools/"):
            if not path.endswith(".py") or path.endswith("__init__.py"):
                continue
            src = m.read(path) or ""
            tree = ast.parse(src)
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name == "get_info":
                    for sub in ast.walk(node):
                        if isinstance(sub, ast.Return):
                            out.append(
                                tool_row(ast.literal_eval(sub.value), dom, m.src(path), m.license)
                            )
    m = mir["tau2"]
    for dom, path in (
        ("telecom", "src/tau2/domains/telecom/tools.py"),
        ("banking", "src/tau2/domains/banking_knowledge/tools.py"),
        ("retail", "src/tau2/domains/retail/tools.py"),
        ("airline", "src/tau2/domains/airline/tools.py"),
    ):
        src = m.read(path)
        if src:
            for t in py_tools(src, "is_tool"):
                out.append(tool_row(t, dom, m.src(path), m.license))

    m = mir["sgd"]
    seen_svc = set()
    for path in ("train/schema.json", "dev/schema.json", "test/schema.json"):
        for svc in json.loads(m.read(path) or "[]"):
            name = svc["service_name"]
            prefix = name.split("_")[0]
            if name in seen_svc:
                continue
            seen_svc.add(name)
            slots = {s["name"]: s for s in svc["slots"]}
            for it in svc["intents"]:
                props = {}
                for sname in list(it["required_slots"]) + list(it["optional_slots"]):
                    s = slots.get(
                        sname,
                        {"description": sname, "is_categorical": False, "possible_values": []},
                    )
                    p = {"type": "string", "description": s["description"]}
                    if s.get("is_categorical") and s.get("possible_values"):
                        vals = s["possible_values"]
                        if all(v.lstrip("-").isdigit() for v in vals):
                            p = {
                                "type": "integer",
                                "description": s["description"],
                                "enum": [int(v) for v in vals],
                            }
                        else:
                            p["enum"] = vals
                    if sname in it["optional_slots"] and it["optional_slots"][sname] != "dontcare":
                        dv = it["optional_slots"][sname]
                        p["default"] = (
                            int(dv) if p["type"] == "integer" and dv.lstrip("-").isdigit() else dv
                        )
                    props[sname] = p
                fn = {
                    "name": snake(it["name"]),
                    "description": f"{it['description']}. ({svc['description']}.)".replace(
                        "..", "."
                    ),
                    "parameters": {
                        "type": "object",
                        "properties": props,
                        "required": list(it["required_slots"]),
                    },
                }
                out.append(
                    tool_row(
                        {"type": "function", "function": fn},
                        SGD_DOMAIN.get(prefix, snake(prefix)),
                        m.src(path) + f"#{name}",
                        m.license,
                    )
                )

    m = mir["oai_agents"]
    for path, dom in (
        ("examples/customer_service/main.py", "airline"),
        ("examples/sandbox/healthcare_support/tools.py", "healthcare"),
    ):
        src = m.read(path)
        if src:
            for t in py_tools(src, {"function_tool", "tool"}):
                out.append(tool_row(t, dom, m.src(path), m.license))
    m = mir["oai_cs_demo"]
    src = m.read("python-backend/airline/tools.py")
    if src:
        for t in py_tools(src, {"function_tool", "tool"}):
            out.append(tool_row(t, "airline", m.src("python-backend/airline/tools.py"), m.license))

    m = mir["anthropic_cookbook"]
    path = "tool_use/customer_service_agent.ipynb"
    nb = json.loads(m.read(path) or '{"cells": []}')
    for c in nb["cells"]:
        s = "".join(c.get("source", []))
        if c.get("cell_type") == "code" and s.lstrip().startswith("tools = ["):
            for t in ast.literal_eval(s.split("=", 1)[1].strip()):
                fn = {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                }
                out.append(
                    tool_row(
                        {"type": "function", "function": fn}, "ecommerce", m.src(path), m.license
                    )
                )

    # dedupe: same name + parameter names in the same domain (tau-bench wins over tau2 copies)
    seen, uniq = set(), []
    for r in out:
        f = r["tool"]["function"]
        k = (r["domain"], f["name"], tuple(sorted(f["parameters"].get("properties", {}))))
        if k not in seen:
            seen.add(k)
            uniq.append(r)
    return uniq


# ---------------------------------------------------------------------------------------------


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    beside_repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 4, ".mirror")
    ap.add_argument("--mirrors", default=os.path.normpath(beside_repo))
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    mir = {k: Mirror(a.mirrors, k) for k in REPOS}
    rng = random.Random(SEED)

    raw = []
    raw += banking77(mir["polyai"], rng)
    raw += clinc150(mir["clinc"], rng)
    raw += nlupp(mir["polyai"], rng)
    raw += sgd_messages(mir["sgd"], rng)
    raw += taskmaster_messages(mir["taskmaster"], rng)
    raw += tau_messages(mir["taubench"], rng)
    raw += abcd_messages(mir["abcd"], mir["dialogstudio"])
    raw += xsid(mir["xsid"], rng)
    raw += xrisawoz_messages(mir["xrisawoz"], rng)
    raw += jmultiwoz_messages(mir["jmultiwoz"])
    msgs, seen = [], set()
    dropped = Counter()
    for r in raw:
        t = r["text"]
        if len(t) < 6 or len(t) > 800:
            dropped["length"] += 1
            continue
        if pii_like(t):
            dropped["pii_like"] += 1
            continue
        k = (r["lang"], dedup_key(t))
        if k in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(k)
        msgs.append(r)

    convs = conversations(mir, rng)
    prompts = agent_prompts(mir)
    tls = tools(mir)

    os.makedirs(a.out, exist_ok=True)
    write_jsonl(os.path.join(a.out, "customer_messages.jsonl"), msgs)
    write_jsonl(os.path.join(a.out, "conversations.jsonl"), convs)
    write_jsonl(os.path.join(a.out, "agent_prompts.jsonl"), prompts)
    write_jsonl(os.path.join(a.out, "tools.jsonl"), tls)

    def repo_of(r):
        return r["source"].split(":", 1)[0]

    def summary(name, rows, extra=None):
        print(f"\n== {name}: {len(rows)} rows")
        c = Counter((repo_of(r), r["license"]) for r in rows)
        for (repo, lic), n in sorted(c.items()):
            print(f"  {n:6d}  {repo}  [{lic}]")
        if extra:
            c = Counter(extra(r) for r in rows)
            print(
                "  by " + ", ".join(f"{k}={v}" for k, v in sorted(c.items(), key=lambda x: -x[1]))
            )

    summary("customer_messages", msgs, lambda r: r["lang"])
    print(
        "  by domain: "
        + ", ".join(f"{k}={v}" for k, v in Counter(r["domain"] for r in msgs).most_common())
    )
    print(
        "  by (repo, lang): "
        + ", ".join(
            f"{k[0]}/{k[1]}={v}"
            for k, v in sorted(Counter((repo_of(r), r["lang"]) for r in msgs).items())
        )
    )
    print("  dropped:", dict(dropped))
    summary("conversations", convs, lambda r: r["lang"])
    summary("agent_prompts", prompts, lambda r: r.get("kind_hint"))
    summary("tools", tls, lambda r: r["domain"])


if __name__ == "__main__":
    main()
