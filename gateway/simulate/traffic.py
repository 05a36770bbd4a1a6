"""Recorded traffic files: one JSON object a line, `{"id", "request", "headers"?, "response"?}`.

Optional extras: `team` (routes may match on it). Other keys are ignored, so labeled step files
(data/steps/*.jsonl) replay as they are. A malformed line raises `TrafficLineError` naming its
line number; the reader never stops at one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from gateway.core.errors import StepgateError
from gateway.core.types import ChatRequest, Usage
from gateway.ingress.openai import parse_chat


@dataclass(frozen=True, slots=True)
class TrafficStep:
    line: int
    id: str
    request: ChatRequest
    headers: dict[str, str]  # lower-case names
    team: str | None
    usage: Usage | None  # recorded `response.usage`, when the line has one


class TrafficLineError(Exception):
    """One line cannot be replayed; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def iter_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) for every non-blank line."""
    for number, raw in enumerate(fh, start=1):
        if raw.strip():
            yield number, raw


def parse_line(raw: bytes, line: int) -> TrafficStep:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TrafficLineError(line, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TrafficLineError(line, "a traffic line must be a JSON object")
    step_id = data.get("id", f"line-{line}")
    if not isinstance(step_id, str | int) or isinstance(step_id, bool):
        raise TrafficLineError(line, f"`id` must be a string or integer, got {step_id!r}")
    if "request" not in data:
        raise TrafficLineError(line, "missing `request` (the OpenAI chat completion body)")
    try:
        request = parse_chat(data["request"])
    except StepgateError as exc:
        raise TrafficLineError(line, f"request: {exc.message}") from None
    team = data.get("team")
    if team is not None and not isinstance(team, str):
        raise TrafficLineError(line, f"`team` must be a string, got {team!r}")
    return TrafficStep(
        line=line,
        id=str(step_id),
        request=request,
        headers=_headers(data.get("headers"), line),
        team=team,
        usage=_usage(data.get("response"), line),
    )


def _headers(value: Any, line: int) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TrafficLineError(line, "`headers` must be an object of name: value")
    out: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise TrafficLineError(line, f"headers.{name} must be a string, got {item!r}")
        out[str(name).lower()] = str(item)
    return out


def _usage(response: Any, line: int) -> Usage | None:
    if response is None:
        return None
    if not isinstance(response, dict):
        raise TrafficLineError(line, "`response` must be the OpenAI response object")
    usage = response.get("usage")
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise TrafficLineError(line, "response.usage must be an object")
    prompt = _count(usage, "prompt_tokens", line)
    completion = _count(usage, "completion_tokens", line)
    details = usage.get("prompt_tokens_details")
    cached = _count(details, "cached_tokens", line) if isinstance(details, dict) else 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)


def _count(obj: dict[str, Any], key: str, line: int) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TrafficLineError(line, f"response.usage.{key} must be a whole number, got {value!r}")
    return value
