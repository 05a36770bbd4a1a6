"""Request -> StepFeatures: the whole step's structure plus hashed n-grams over bounded windows.

A step is more than its task: in a multi-turn agent step the last user message is often the
customer's original request, unchanged for every step, while what the model must do now sits in
a later system message, the assistant's last turn (its plan, its tool call) or the tool result
that just arrived. So the features read:
- the instruction window: the head of the system prompt, any system message after the last user
  message (a late instruction), the head and tail of the last user message, and, when the step
  answers a tool result, the assistant's last turn;
- the context window: the same plus more of the user message and the head of the last tool
  result;
- structure: the role of the last message, tool names and called tools, response_format and its
  property names, answer sets, counts of amounts, dates and conditions (the work asked), turns,
  length buckets, language.
Word n-grams and 5-character word prefixes (accents folded) carry meaning across wording and
the eight languages. Everything costs O(window), not O(prompt). Feature ids are stable across
processes (zlib.crc32), so weights trained in one process score in another.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import and_, xor
from typing import Any

from gateway.classify.language import detect_language
from gateway.core.types import ChatRequest

HASH_BITS = 18
HASH_MASK = (1 << HASH_BITS) - 1
# Salt for bigram ids so "ab"+"c" and "a"+"bc" do not share a bucket with a unigram.
_BIGRAM_SALT = 0x9E3779B9
# Instruction n-grams (system prompt head, user message head and tail) get their own id space:
# "summarize" in the instruction says more about the step than "summarize" inside a ticket.
INSTRUCTION_SALT = 0x5BD1E995

_SYSTEM_HEAD = 600
_USER_HEAD = 800
_USER_TAIL = 400
_INSTR_SYSTEM = 400
_INSTR_USER = 240
_INSTR_PLAN = 240  # the assistant's last turn, when the step answers a tool result
_TOOL_HEAD = 400  # the head of the tool result the step answers
_SCAN_CHARS = 2000  # bounded slice for structural regexes
_MAX_TOOLS = 24  # tool definitions / calls read for names
PREFIX_SALT = 0x27D4EB2F

# One CJK character is one token (Japanese and Chinese have no spaces); other scripts by word.
_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_DIGITS = re.compile(r"\d+")

_SLASH_SET = re.compile(r"[a-z]/[a-z_]+/[a-z]")
_BULLET_LABELS = re.compile(r"(?:^[ \t]*(?:[-*•]|\d+[.)])[ \t]*[\w/&' -]{1,32}$\n?){3,}", re.M)
_BULLET_HINT = ("\n-", "\n*", "\n•", "\n1.", "\n1)")
_LOG_WORDS = ("ERROR", "WARN", "FATAL", "Traceback", "Exception", "stack trace")
_TIMESTAMP = re.compile(r"\d\d\d\d-\d\d-\d\d[ T]\d\d:\d\d")
# Instruction cues: words and phrases that name the task (or an answer set), in the languages
# we serve. They are features, not rules: the model learns what each is worth. Matched by
# n-gram id against the instruction ids already computed, so they cost one dict look-up per id.
_CUE_WORDS: dict[str, str] = {
    "classify": "classify classification categorize categorise category categories label labels "
    "tag intent priority sentiment queue spam clasifica categoría categorías kategorie ordne "
    "catégorie catégories classe classifique categoria rótulo rótulos 分類 優先 種類",
    "extract": "extract pull_out parse get_the find_every find_all field fields extrae "
    "extrahiere extrais extraia campos felder champs 抽出",
    "format": "rewrite reformat format convert translate fix_spelling fix_grammar shorten mask "
    "redact bullet_list markdown reescribe formatiere reformate aufzählung tabelle table 形式 "
    "整え 翻訳",
    "lookup": "knowledge_base kb faq help_center article articles snippet snippets according_to "
    "using_only only_from conhecimento connaissances wissensdatenbank conocimiento artículo "
    "artículos artigos d_après ナレ 記事",
    "summarize": "summarize summarise summary recap sum_up tl condense handover resume resumen "
    "resuma resumo fasse zusammenfassung résume résumé 要約 まと",
    "draft": "draft compose write_a write_an write_the write_back reply_to respond_to reply "
    "respond redacta escribe schreibe verfasse rédige écris escreva 返信 作成 メー",
    "reason": "decide determine eligible eligibility policy policies precedence calculate "
    "calculation prorate work_out can_we should_we whether root_cause diagnose re_evaluate "
    "justify justifica decida política políticas richtlinie richtlinien entscheide begründe "
    "politique politiques décide analise analiza 判断 規定 理由",
    "answer_set": "one_of choose_from pick_one label_only one_word answer_with reply_with "
    "respond_with return_only options allowed_values yes_or yes_no uno_de una_de eine_der "
    "einen_der une_des l_une uma_das um_dos いず",
}
_QUESTION = re.compile("[?\uff1f]")  # ASCII and full-width question marks
_NAME_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Money and percentages, and dates: how much computation the ask involves.
_AMOUNT = re.compile(r"[$€£¥]\s?\d|\d(?:[.,]\d+)?\s?(?:€|\$|£|%|eur\b|usd\b|gbp\b|円)", re.I)
_DATE = re.compile(r"\b\d{4}-\d\d-\d\d\b|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b|\d+月\d+日")
# Words that add a condition or an exception to the work asked, in the languages we serve.
_CONDITION_WORDS = (
    "unless except exception however but only_if provided otherwise whereas although "
    "wenn außer ausnahme jedoch aber sofern sonst sauf exception mais cependant sinon "
    "excepto salvo pero sin_embargo siempre_que exceto mas porém contudo caso tranne però "
    "tuttavia purché behalve maar echter tenzij mits ただし 場合 除き 例外"
)
_FOLD = str.maketrans("àáâãäåçèéêëìíîïñòóôõöùúûüýÿß", "aaaaaaceeeeiiiinooooouuuuyys")


@dataclass(frozen=True, slots=True)
class StepFeatures:
    """What the model scores and what the profile reports."""

    text_ids: tuple[int, ...]  # hashed n-gram ids of the whole window (deduplicated)
    instr_ids: tuple[int, ...]  # hashed n-gram ids of the instruction-bearing parts
    prefix_ids: tuple[int, ...]  # hashed word prefixes of the instruction-bearing parts
    struct_ids: tuple[int, ...]  # hashed ids of the structural signals below
    structure: tuple[str, ...]  # human-readable structural signals, e.g. "json_schema"
    prompt_tokens: int
    language: str
    expects_json: bool
    has_tools: bool
    turns: int
    output_limit: int | None


def feature_id(name: str) -> int:
    return zlib.crc32(name.encode()) & HASH_MASK


def estimate_tokens(chars: int, sample: str) -> int:
    """~4 characters per token, ~1 per CJK character (ratio measured on a bounded sample)."""
    if not sample or sample.isascii():
        return max(1, chars // 4)
    cjk = len(_CJK_CHAR.findall(sample))
    ratio = cjk / len(sample)
    return max(1, int(chars * (ratio + (1.0 - ratio) / 4.0)))


def phrase_id(phrase: str, salt: int = INSTRUCTION_SALT) -> int:
    """The id `text_ids` gives a one-word phrase, or the first bigram of a longer one."""
    raw = [t.encode() for t in _TOKEN.findall(phrase.lower().translate(_FOLD))]
    first = zlib.crc32(raw[0], salt)
    if len(raw) == 1:
        return first & HASH_MASK
    return zlib.crc32(raw[1], first ^ _BIGRAM_SALT) & HASH_MASK


def text_ids(window: str, salt: int = 0) -> tuple[int, ...]:
    """Hashed unigram and bigram ids of `window` (lower-cased, digit runs folded to 0)."""
    return _hashed(_raw_tokens(window), salt)


def _raw_tokens(window: str) -> list[bytes]:
    tokens = _TOKEN.findall(_DIGITS.sub("0", window.lower().translate(_FOLD)))
    if not tokens:
        return []
    return "\x00".join(tokens).encode().split(b"\x00")


def _hashed(raw: list[bytes], salt: int) -> tuple[int, ...]:
    """Written as C-level map/set operations: this is the classifier's hot loop."""
    if not raw:
        return ()
    crc = zlib.crc32
    uni = list(map(crc, raw, repeat(salt, len(raw))))
    bi = map(crc, raw[1:], map(xor, uni, repeat(_BIGRAM_SALT, len(raw) - 1)))
    ids = set(map(and_, uni, repeat(HASH_MASK, len(raw))))
    ids.update(map(and_, bi, repeat(HASH_MASK, len(raw) - 1)))
    return tuple(ids)


_CONDITION_IDS: dict[int, str] = {
    phrase_id(word.replace("_", " ")): word for word in _CONDITION_WORDS.split()
}

_CUE_IDS: dict[int, str] = {
    phrase_id(phrase.replace("_", " ")): cue
    for cue, phrases in _CUE_WORDS.items()
    for phrase in phrases.split()
}


def extract(request: ChatRequest) -> StepFeatures:
    messages = request.messages
    system_parts: list[str] = []
    late_system = ""  # a system/developer message after the last user message
    last_user = ""
    last_assistant = ""
    called: list[str] = []  # tools the assistant's last turn called
    last_tool = ""
    user_turns = assistant_turns = tool_msgs = 0
    total_chars = 0
    for m in messages:
        text = m.text()
        total_chars += len(text)
        role = m.role
        if role == "user":
            user_turns += 1
            last_user = text
            late_system = ""
        elif role in ("system", "developer"):
            system_parts.append(text)
            if user_turns:
                late_system = text
        elif role == "assistant":
            assistant_turns += 1
            last_assistant = text
            called = _function_words(m.tool_calls)
        else:
            tool_msgs += 1
            last_tool = text
    last_role = messages[-1].role if messages else "none"
    if last_role == "developer":
        last_role = "system"
    elif last_role == "function":
        last_role = "tool"
    system = "\n".join(system_parts)
    if len(last_user) > _USER_HEAD + _USER_TAIL:
        user_window = last_user[:_USER_HEAD] + "\n" + last_user[-_USER_TAIL:]
    else:
        user_window = last_user
    if len(last_user) > 2 * _INSTR_USER:
        instr_user = last_user[:_INSTR_USER] + "\n" + last_user[-_INSTR_USER:]
    else:
        instr_user = last_user
    # When the step follows a tool result, the assistant's last turn says what it set out to do.
    answering_tool = last_role == "tool"
    plan = last_assistant[:_INSTR_PLAN] if answering_tool else ""
    instr = system[:_INSTR_SYSTEM] + "\n" + late_system[:_INSTR_SYSTEM] + "\n" + instr_user
    if plan:
        instr += "\n" + plan
    window = system[:_SYSTEM_HEAD] + "\n" + late_system[:_INSTR_SYSTEM] + "\n" + user_window
    if plan:
        window += "\n" + plan
    if last_tool and (answering_tool or last_role == "system"):
        window += "\n" + last_tool[:_TOOL_HEAD]

    language = detect_language(last_user or system)
    prompt_tokens = estimate_tokens(total_chars, window[:_SCAN_CHARS])

    structure: list[str] = [f"last_role:{last_role}"]
    if not total_chars and not request.tools:
        structure.append("no_text")
    if late_system:
        structure.append("late_instruction")
    if plan:
        structure.append("plan")
    if called:
        structure.append("called_tool")
        structure.extend(f"called:{t}" for t in called)
    rf = request.response_format or {}
    rf_type = rf.get("type")
    expects_json = rf_type in ("json_object", "json_schema")
    if rf_type == "json_schema":
        structure.append("json_schema")
        structure.extend(_schema_signals(rf.get("json_schema")))
    elif rf_type == "json_object":
        structure.append("json_object")
    has_tools = bool(request.tools)
    if has_tools:
        tools = request.tools or ()
        structure.append("tools" if len(tools) < 3 else "tools>=3")
        structure.extend(f"tool:{t}" for t in _function_words(tools))
    if tool_msgs:
        structure.append("tool_results")
    limit = request.output_limit()
    if limit:
        structure.append(_bucket("max_tokens", limit, (16, 64, 256, 1024)))
    else:
        structure.append("max_tokens:none")
    structure.append(_bucket("prompt_tokens", prompt_tokens, (64, 256, 1024, 3000, 6000, 12000)))
    structure.append(_bucket("turns", user_turns, (1, 2, 4)))
    if assistant_turns:
        structure.append(_bucket("assistant_turns", assistant_turns, (1, 3)))
    if system:
        structure.append("system_prompt")
    scan = "\n".join((system[:_SCAN_CHARS], late_system[:_SCAN_CHARS], user_window[:_SCAN_CHARS]))
    # A short step's instruction window is its whole window: tokenise it once.
    window_tokens = _raw_tokens(window)
    instr_tokens = window_tokens if instr == window else _raw_tokens(instr)
    instr_ids = _hashed(instr_tokens, INSTRUCTION_SALT)
    cues = {_CUE_IDS[i] for i in _CUE_IDS.keys() & instr_ids}
    if scan.count("|") >= 2 or ("/" in instr and _SLASH_SET.search(instr.lower())):
        cues.add("answer_set")
    structure.extend(sorted(f"cue:{c}" for c in cues))
    conditions = len(_CONDITION_IDS.keys() & instr_ids)
    if conditions:
        structure.append(_bucket("conditions", conditions, (1, 2)))
    work = instr_user + "\n" + late_system[:_SCAN_CHARS]
    amounts = len(_AMOUNT.findall(work))
    if amounts:
        structure.append(_bucket("amounts", amounts, (1, 2)))
    dates = len(_DATE.findall(work))
    if dates:
        structure.append(_bucket("dates", dates, (1, 2)))
    if "%" in work:
        structure.append("percent")
    if any(h in scan for h in _BULLET_HINT) and _BULLET_LABELS.search(scan):
        structure.append("bullet_labels")
    if "```" in last_user or "```" in system:
        structure.append("code_block")
    head = last_user[:_SCAN_CHARS]
    if any(w in head for w in _LOG_WORDS) or _TIMESTAMP.search(head):
        structure.append("log_block")
    questions = len(_QUESTION.findall(user_window))
    structure.append(f"questions:{min(questions, 2)}")
    temperature = request.temperature
    if temperature is not None:
        structure.append("temperature:0" if temperature <= 0.2 else "temperature:high")
    structure.append(f"lang:{language}")

    return StepFeatures(
        text_ids=_hashed(window_tokens, 0),
        instr_ids=instr_ids,
        prefix_ids=_prefixes(instr_tokens),
        struct_ids=tuple(feature_id("s:" + s) for s in structure),
        structure=tuple(structure),
        prompt_tokens=prompt_tokens,
        language=language,
        expects_json=expects_json,
        has_tools=has_tools,
        turns=user_turns,
        output_limit=limit,
    )


def _words(name: str) -> list[str]:
    """`getOrderStatus` / `get_order_status` -> ["get", "order", "status"] (lower-case)."""
    return [w.lower() for w in _NAME_WORD.findall(name)][:6]


def _function_words(items: Sequence[dict[str, Any]] | None) -> list[str]:
    """The words of the function names in tool definitions or tool calls (both carry
    `{"function": {"name": ...}}`), sorted and deduplicated."""
    out: set[str] = set()
    for item in (items or ())[:_MAX_TOOLS]:
        fn = item.get("function") if isinstance(item, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str):
            out.update(_words(name))
    return sorted(out)


def _prefixes(tokens: list[bytes]) -> tuple[int, ...]:
    """Hashed 5-byte prefixes of the (accent-folded) words of four bytes or more:
    "categorise", "categoría" and "catégorie" meet at "categ"."""
    stems = {t[:5] for t in tokens if len(t) >= 4}
    if not stems:
        return ()
    crc = zlib.crc32
    return tuple({crc(w, PREFIX_SALT) & HASH_MASK for w in stems})


def _bucket(name: str, value: int, edges: tuple[int, ...]) -> str:
    for edge in edges:
        if value <= edge:
            return f"{name}<={edge}"
    return f"{name}>{edges[-1]}"


def _schema_signals(spec: Any) -> list[str]:
    """Shape of a json_schema response format: property count and enum-valued properties."""
    if not isinstance(spec, dict):
        return []
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        return []
    props = schema.get("properties")
    if not isinstance(props, dict):
        return ["json_props:0"]
    enums = sum(1 for p in props.values() if isinstance(p, dict) and "enum" in p)
    out = [_bucket("json_props", len(props), (1, 3, 8))]
    if enums:
        out.append("json_enum" if enums == len(props) else "json_some_enum")
    return out
