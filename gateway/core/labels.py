"""The label set a classify step allows: what its prompt enumerates ("Answer with one of: a, b,
c", a bulleted list under "Categories:"), and the normalisation under which labels compare.
Shared by the `labels` validator and the backends that answer with a choice (Mercury Decide).
"""

from __future__ import annotations

import re

from gateway.core.types import ChatRequest

_TRIGGER = re.compile(
    r"(?:\bone of|\bcategor(?:y|ies)|\blabels?|\bintents?|\bclasses|\boptions|\bchoices"
    r"|\bchoose from|\bpick from|\bselect from)"
    r"(?:[^:\n\[(]{0,40}:[ \t]*(?P<rest>[^\n]*)|[ \t]*[\[(](?P<bracket>[^\])\n]+)[\])])",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^[ \t]*(?:[-*\u2022]|\d{1,2}[.)])[ \t]+(?P<item>\S[^\n]*)$")
_SPLIT = re.compile(r"\s*(?:,|\||/|;|\bor\b)\s*", re.IGNORECASE)
_BULLET_GLOSS = re.compile(r"\s+[-\u2013\u2014]\s+|:|\s+\(")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_LABEL_STRIP = "\"'`*.\u201c\u201d\u2018\u2019[]() \t"
_LABEL_SPACE = re.compile(r"[\s_\-]+")


def normalize_label(text: str) -> str:
    """Case, quotes, trailing period, and `_`/`-`/space differences do not make labels differ."""
    return _LABEL_SPACE.sub(" ", text.strip().strip(_LABEL_STRIP).lower()).strip()


def _clean_items(items: list[str]) -> tuple[str, ...] | None:
    labels: list[str] = []
    for raw in items:
        item = raw.strip().strip(_LABEL_STRIP)
        if item.lower().startswith(("or ", "and ")):
            item = item.split(" ", 1)[1].strip()
        if not item:
            continue
        if len(item) > 40 or len(item.split()) > 4:
            return None  # a sentence, not a label list
        labels.append(item)
    return tuple(labels) if len(labels) >= 2 else None


def prompt_labels(text: str) -> tuple[str, ...] | None:
    """Labels a prompt enumerates, or None.

    Recognised: "Answer with one of: a, b, c" / "Categories: a | b | c" / "one of [a, b]" and a
    trigger line ending in ':' followed by a bullet or numbered list ("- billing: invoices").
    """
    for match in _TRIGGER.finditer(text):
        inline = match.group("bracket") or _SENTENCE_END.split(match.group("rest") or "", 1)[0]
        if inline.strip():
            found = _clean_items(_SPLIT.split(inline))
            if found:
                return found
            continue
        items: list[str] = []
        for line in text[match.end() :].lstrip("\r\n").splitlines():
            bullet = _BULLET.match(line)
            if bullet is None:
                if items or line.strip():
                    break
                continue
            items.append(_BULLET_GLOSS.split(bullet.group("item"), maxsplit=1)[0])
        found = _clean_items(items)
        if found:
            return found
    return None


def request_labels(request: ChatRequest) -> tuple[str, ...] | None:
    """Labels enumerated by the system/developer messages or the last user message."""
    last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
    for message in request.messages:
        if message.role in ("system", "developer") or message is last_user:
            found = prompt_labels(message.text())
            if found:
                return found
    return None
