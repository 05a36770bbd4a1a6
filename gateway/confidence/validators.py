"""Hard validators for a cheap answer: JSON and schema, allowed labels, grounding, completeness.

Each validator is a pure function of the request and the answer that returns `Finding`s (a
machine-readable reason slug and a human sentence); no finding means the check passed. Which
checks apply to a request (is JSON expected, are labels enumerated) is decided here too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gateway.confidence import schemas
from gateway.core.labels import normalize_label
from gateway.core.types import ChatRequest, Completion

Reason = Literal[
    "invalid_json",
    "schema_mismatch",
    "unknown_tool",
    "label_not_allowed",
    "value_not_in_source",
    "truncated",
    "empty",
    "low_token_confidence",
    "disagreement",
    "no_logprobs",
    "unchecked",
]
# Reasons from hard validators: any of them caps the verdict's score.
HARD_REASONS: frozenset[Reason] = frozenset(
    {
        "invalid_json",
        "schema_mismatch",
        "unknown_tool",
        "label_not_allowed",
        "value_not_in_source",
        "truncated",
        "empty",
    }
)

_MAX_SCHEMA_ERRORS = 3
# Extracted values that mean "not found" rather than a claim about the source.
_ABSTAIN = frozenset({"", "n/a", "na", "none", "null", "unknown", "not found", "not provided", "-"})


@dataclass(frozen=True, slots=True)
class Finding:
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """The answer parsed as JSON; `ok` is False when it did not parse."""

    ok: bool
    value: Any = None


# --- what the request expects ------------------------------------------------------------------


def expected_json(request: ChatRequest) -> tuple[bool, dict[str, Any] | None]:
    """(does the request demand JSON, its json_schema's `schema` if it gave one)."""
    fmt = request.response_format or {}
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return True, schema if isinstance(schema, dict) else None
    return kind == "json_object", None


def parse_json(text: str) -> JsonAnswer:
    try:
        return JsonAnswer(True, orjson.loads(text))
    except orjson.JSONDecodeError:
        return JsonAnswer(False)


def looks_like_json(text: str) -> bool:
    head = text.lstrip()[:1]
    return head == "{" or head == "["


# --- JSON and schema ---------------------------------------------------------------------------


def check_schema(
    value: Any, schema: dict[str, Any], *, where: str = "answer"
) -> tuple[list[Finding], list[Finding], str | None]:
    """(structural mismatches, enum/const mismatches, note when the schema is unusable).

    Enum and const violations are split out: they are label errors, reported by the `labels`
    check, while everything else is a `schema_mismatch`.
    """
    validator = schemas.validator(schema)
    if isinstance(validator, str):
        return [], [], validator
    try:
        errors = schemas.errors(validator, value, _MAX_SCHEMA_ERRORS)
    except schemas.Uncheckable as exc:
        return [], [], f"answer not checked against the request's schema: {exc}"
    structural: list[Finding] = []
    labels: list[Finding] = []
    for error in errors:
        at = error.json_path
        if error.validator in ("enum", "const"):
            allowed = error.validator_value
            shown = allowed if isinstance(allowed, list) else [allowed]
            labels.append(
                Finding(
                    "label_not_allowed",
                    f"{where} {at}: {error.instance!r} is not one of {shown}",
                )
            )
        else:
            structural.append(Finding("schema_mismatch", f"{where} {at}: {error.message}"))
    return structural, labels, None


def check_tool_calls(request: ChatRequest, completion: Completion) -> list[Finding]:
    """Each tool call names a declared function and its arguments are JSON matching its schema."""
    declared: dict[str, dict[str, Any] | None] = {}
    for tool in request.tools or []:
        fn = tool["function"]
        params = fn.get("parameters")
        declared[fn["name"]] = params if isinstance(params, dict) else None
    findings: list[Finding] = []
    for i, call in enumerate(completion.tool_calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            findings.append(Finding("invalid_json", f"tool_calls[{i}] has no function"))
            continue
        name = fn.get("name")
        if declared and name not in declared:
            known = ", ".join(sorted(declared))
            findings.append(
                Finding("unknown_tool", f"tool_calls[{i}] calls {name!r}; declared: {known}")
            )
            continue
        raw = fn.get("arguments")
        args = parse_json(raw) if isinstance(raw, str) else JsonAnswer(isinstance(raw, dict), raw)
        if not args.ok:
            findings.append(
                Finding("invalid_json", f"tool_calls[{i}] ({name}) arguments are not JSON")
            )
            continue
        schema = declared.get(name) if isinstance(name, str) else None
        if schema is not None:
            structural, enum_errors, _ = check_schema(
                args.value, schema, where=f"tool_calls[{i}] ({name})"
            )
            findings.extend(structural)
            findings.extend(Finding("schema_mismatch", f.detail) for f in enum_errors)
    return findings


# --- labels ------------------------------------------------------------------------------------


def check_label(answer_text: str, parsed: JsonAnswer, labels: tuple[str, ...]) -> list[Finding]:
    """A plain answer must be one label; a JSON answer must carry a label as a string value."""
    allowed = {normalize_label(label) for label in labels}
    if parsed.ok and isinstance(parsed.value, dict | list):
        strings = [v for v in leaves(parsed.value) if isinstance(v, str)]
        if any(normalize_label(v) in allowed for v in strings):
            return []
        return [Finding("label_not_allowed", f"no value of the answer is one of {list(labels)}")]
    if normalize_label(answer_text) in allowed:
        return []
    shown = answer_text.strip()
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return [Finding("label_not_allowed", f"answer {shown!r} is not one of {list(labels)}")]


# --- grounding ---------------------------------------------------------------------------------


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def enum_values(schema: dict[str, Any]) -> frozenset[str]:
    """Every string an `enum`/`const` in the schema allows: those are labels, not extractions."""
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return frozenset(_collect_enums(schema))
    return _enums_for(key)


@functools.lru_cache(maxsize=512)
def _enums_for(schema_key: bytes) -> frozenset[str]:
    return frozenset(_collect_enums(orjson.loads(schema_key)))


def _collect_enums(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, item in schema.items():
            if key == "enum" and isinstance(item, list):
                found.update(v for v in item if isinstance(v, str))
            elif key == "const" and isinstance(item, str):
                found.add(item)
            else:
                found |= _collect_enums(item)
    elif isinstance(schema, list):
        for item in schema:
            found |= _collect_enums(item)
    return found


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def check_grounded(
    request: ChatRequest,
    answer_text: str,
    parsed: JsonAnswer,
    schema: dict[str, Any] | None,
) -> tuple[bool, list[Finding]]:
    """(did the check apply, findings): extracted values must appear in the prompt's text.

    Values are the JSON answer's string and number leaves (enum values and "not found" answers
    skipped), or a short plain answer (at most 8 words) as a whole. A value matches when it is a
    substring of the source after case and whitespace folding, or after dropping everything but
    letters and digits ("555-0100" matches "555 0100").
    """
    values: list[str]
    if parsed.ok and isinstance(parsed.value, dict | list):
        skip = enum_values(schema) if schema else frozenset()
        values = []
        for leaf in leaves(parsed.value):
            if isinstance(leaf, str):
                if leaf not in skip and _squash(leaf) not in _ABSTAIN:
                    values.append(leaf)
            elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
                values.append(str(leaf))
    else:
        plain = answer_text.strip()
        if not plain or len(plain.split()) > 8 or _squash(plain) in _ABSTAIN:
            return False, []
        values = [plain]
    if not values:
        return False, []
    source = "\n".join(m.text() for m in request.messages if m.role != "assistant")
    squashed = _squash(source)
    alnum: str | None = None
    missing: list[str] = []
    for value in values:
        if _squash(value) in squashed:
            continue
        if alnum is None:
            alnum = _alnum(source)
        compact = _alnum(value)
        if compact and compact in alnum:
            continue
        missing.append(value)
    if not missing:
        return True, []
    shown = ", ".join(repr(v if len(v) <= 40 else v[:37] + "...") for v in missing[:3])
    more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
    return True, [Finding("value_not_in_source", f"not found in the prompt: {shown}{more}")]


# --- completeness ------------------------------------------------------------------------------


def check_complete(request: ChatRequest, completion: Completion) -> list[Finding]:
    """Not cut off (finish_reason "length", or every allowed token used) and not empty."""
    findings: list[Finding] = []
    limit = request.output_limit()
    used = completion.usage.completion_tokens
    if completion.finish_reason == "length":
        findings.append(Finding("truncated", "finish_reason is 'length'"))
    elif limit is not None and used >= limit:
        findings.append(Finding("truncated", f"used {used} of max {limit} completion tokens"))
    if not (completion.content or "").strip() and not completion.tool_calls:
        findings.append(Finding("empty", "no content and no tool calls"))
    return findings
