"""Request -> StepFeatures: structural signals plus hashed word/char n-grams over a bounded window.

Everything here costs O(window), not O(prompt): n-grams come from the head of the system prompt
and the head and tail of the last user message; regexes run over bounded slices. Feature ids are
stable across processes (zlib.crc32), so weights trained in one process score in another.
"""

from __future__ import annotations

import re
import zlib
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
_SCAN_CHARS = 2000  # bounded slice for structural regexes

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


@dataclass(frozen=True, slots=True)
class StepFeatures:
    """What the model scores and what the profile reports."""

    text_ids: tuple[int, ...]  # hashed n-gram ids of the whole window (deduplicated)
    instr_ids: tuple[int, ...]  # hashed n-gram ids of the instruction-bearing parts
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
    raw = [t.encode() for t in _TOKEN.findall(phrase.lower())]
    first = zlib.crc32(raw[0], salt)
    if len(raw) == 1:
        return first & HASH_MASK
    return zlib.crc32(raw[1], first ^ _BIGRAM_SALT) & HASH_MASK


def text_ids(window: str, salt: int = 0) -> tuple[int, ...]:
    """Hashed unigram and bigram ids of `window` (lower-cased, digit runs folded to 0)."""
    return _hashed(_raw_tokens(window), salt)


def _raw_tokens(window: str) -> list[bytes]:
    tokens = _TOKEN.findall(_DIGITS.sub("0", window.lower()))
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


_CUE_IDS: dict[int, str] = {
    phrase_id(phrase.replace("_", " ")): cue
    for cue, phrases in _CUE_WORDS.items()
    for phrase in phrases.split()
}


def extract(request: ChatRequest) -> StepFeatures:
    messages = request.messages
    system_parts: list[str] = []
    last_user = ""
    user_turns = 0
    assistant_turns = 0
    tool_msgs = 0
    total_chars = 0
    for m in messages:
        text = m.text()
        total_chars += len(text)
        role = m.role
        if role == "user":
            user_turns += 1
            last_user = text
        elif role in ("system", "developer"):
            system_parts.append(text)
        elif role == "assistant":
            assistant_turns += 1
        else:
            tool_msgs += 1
    system = "\n".join(system_parts)
    if len(last_user) > _USER_HEAD + _USER_TAIL:
        user_window = last_user[:_USER_HEAD] + "\n" + last_user[-_USER_TAIL:]
    else:
        user_window = last_user
    window = system[:_SYSTEM_HEAD] + "\n" + user_window
    if len(last_user) > 2 * _INSTR_USER:
        instr = last_user[:_INSTR_USER] + "\n" + last_user[-_INSTR_USER:]
    else:
        instr = last_user
    instr = system[:_INSTR_SYSTEM] + "\n" + instr

    language = detect_language(last_user or system)
    prompt_tokens = estimate_tokens(total_chars, window[:_SCAN_CHARS])

    structure: list[str] = []
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
        n_tools = len(request.tools or ())
        structure.append("tools" if n_tools < 3 else "tools>=3")
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
        structure.append("history")
    if system:
        structure.append("system_prompt")
    scan = system[:_SCAN_CHARS] + "\n" + user_window[:_SCAN_CHARS]
    # A short step's instruction window is its whole window: tokenise it once.
    window_tokens = _raw_tokens(window)
    instr_ids = _hashed(window_tokens if instr == window else _raw_tokens(instr), INSTRUCTION_SALT)
    cues = {_CUE_IDS[i] for i in _CUE_IDS.keys() & instr_ids}
    if scan.count("|") >= 2 or ("/" in instr and _SLASH_SET.search(instr.lower())):
        cues.add("answer_set")
    structure.extend(sorted(f"cue:{c}" for c in cues))
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
        struct_ids=tuple(feature_id("s:" + s) for s in structure),
        structure=tuple(structure),
        prompt_tokens=prompt_tokens,
        language=language,
        expects_json=expects_json,
        has_tools=has_tools,
        turns=user_turns,
        output_limit=limit,
    )


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
