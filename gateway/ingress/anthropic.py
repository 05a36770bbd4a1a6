"""The Anthropic Messages dialect: `POST /v1/messages` bodies in (`anthropic_parse`), Messages
JSON and the Messages event stream out, errors as `{"type": "error", "error": {...}}`.

An answer from a native Anthropic backend keeps its own content blocks (`Completion.blocks`,
`Chunk.block_event`), thinking blocks included; any other backend's answer is rendered as
text and `tool_use` blocks.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.core.errors import BadRequest, StepgateError
from gateway.core.types import ChatRequest, Chunk, Completion, Usage
from gateway.ingress.anthropic_parse import parse_messages
from gateway.ingress.edge import final_usage, parse_json, stepgate_headers
from gateway.relay import StreamEnd, StreamOutcome
from gateway.trace import ResponseMeta

# `anthropic-version` is a date; the SDKs send newer ones as they are released, and every
# version since the first keeps the Messages shapes this dialect speaks.
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FIRST_VERSION = "2023-01-01"

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Anthropic's error types by status.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_body(error: StepgateError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(error.status)
    if kind is None:
        kind = "invalid_request_error" if error.status < 500 else "api_error"
    return {
        "type": "error",
        "error": {
            "type": kind,
            "message": error.message,
            # Stepgate's own code (e.g. `forbidden_parameter`), for programs that branch on it.
            "code": error.code or error.error_class,
        },
    }


def render_error(error: StepgateError) -> tuple[int, bytes, dict[str, str]]:
    return error.status, orjson.dumps(error_body(error)), error.headers()


def stop_reason(finish_reason: str | None) -> str:
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def usage_json(usage: Usage) -> dict[str, Any]:
    """Anthropic counts cache reads apart from `input_tokens`; ours include them."""
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def content_blocks(c: Completion) -> list[dict[str, Any]]:
    if c.blocks:
        return list(c.blocks)
    blocks: list[dict[str, Any]] = []
    if c.content:
        blocks.append({"type": "text", "text": c.content})
    for call in c.tool_calls:
        fn = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": fn.get("name") or "",
                "input": _arguments(fn.get("arguments")),
            }
        )
    return blocks


def _arguments(raw: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` is. Arguments that are not a
    JSON object are kept, under `arguments`, rather than lost."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"arguments": raw}


def _message_id(given: str, request_id: str) -> str:
    return given if given.startswith("msg_") else f"msg_{request_id}"


def message_body(c: Completion, *, request_id: str) -> bytes:
    return orjson.dumps(
        {
            "id": _message_id(c.id, request_id),
            "type": "message",
            "role": "assistant",
            "model": c.model,
            "content": content_blocks(c),
            "stop_reason": stop_reason(c.finish_reason),
            "stop_sequence": None,
            "usage": usage_json(c.usage),
        }
    )


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


MESSAGE_STOP = event("message_stop", {"type": "message_stop"})
_PING = event("ping", {"type": "ping"})


class _Blocks:
    """Content-block bookkeeping for one stream: the index of each block as the client sees it
    (contiguous, in order of start), and which block is open."""

    def __init__(self) -> None:
        self.next = 0
        self.open: int | None = None
        self.open_text = False
        self.tools: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self.native: dict[int, int] = {}  # upstream block index -> block index

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        frame = event("content_block_stop", {"type": "content_block_stop", "index": self.open})
        self.open, self.open_text = None, False
        return [frame]

    def start(self, block: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.open = self.next
        self.next += 1
        out.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": self.open, "content_block": block},
            )
        )
        return out

    def chunk(self, ch: Chunk) -> list[bytes]:
        out: list[bytes] = []
        if ch.block_event is not None:
            out += self._native(ch.block_event)
        if ch.content:
            if not self.open_text:
                out += self.start({"type": "text", "text": ""})
                self.open_text = True
            out.append(_delta(self.open, {"type": "text_delta", "text": ch.content}))
        for call in ch.tool_calls:
            i = call.get("index", 0)
            fn = call.get("function") or {}
            if i not in self.tools:
                out += self.start(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or "",
                        "name": fn.get("name") or "",
                        "input": {},
                    }
                )
                self.tools[i] = self.next - 1
            args = fn.get("arguments")
            if args:
                out.append(
                    _delta(self.tools[i], {"type": "input_json_delta", "partial_json": args})
                )
        return out

    def _native(self, raw: dict[str, Any]) -> list[bytes]:
        kind, upstream = raw.get("type"), raw.get("index", 0)
        if kind == "content_block_start":
            out = self.start(raw.get("content_block") or {})
            self.native[upstream] = self.next - 1
            return out
        index = self.native.get(upstream)
        if index is None:
            return []
        if kind == "content_block_stop":
            if self.open == index:
                return self.close()
            return []
        return [event(str(kind), {**raw, "index": index})]


def _delta(index: int | None, delta: dict[str, Any]) -> bytes:
    return event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


class AnthropicDialect:
    name = "anthropic"
    end_frame = MESSAGE_STOP

    def check_headers(self, headers: Mapping[str, str]) -> None:
        version = headers.get("anthropic-version")
        if version is None:
            raise BadRequest(
                "anthropic-version: header is required (e.g. `anthropic-version: 2023-06-01`; "
                "the Anthropic SDKs send it)",
                param="anthropic-version",
            )
        if not _VERSION.match(version) or version < FIRST_VERSION:
            raise BadRequest(
                f"anthropic-version: {version[:40]!r} is not an API version; send a date "
                f"from {FIRST_VERSION} on, e.g. 2023-06-01",
                param="anthropic-version",
            )

    def parse(self, body: bytes) -> ChatRequest:
        return parse_messages(parse_json(body, what="Messages request"))

    def completion(self, completion: Completion, request: ChatRequest, request_id: str) -> bytes:
        return message_body(completion, request_id=request_id)

    async def frames(
        self, outcome: StreamOutcome, request: ChatRequest, request_id: str
    ) -> AsyncIterator[bytes]:
        blocks = _Blocks()
        started = False
        finish: str | None = None
        record = None
        try:
            async for chunk in outcome.chunks:
                if isinstance(chunk, StreamEnd):
                    record = chunk.record
                    continue
                if not started:
                    started = True
                    yield self._start(chunk.id, chunk.model, request_id)
                    yield _PING
                for frame in blocks.chunk(chunk):
                    yield frame
                if chunk.finish_reason:
                    finish = chunk.finish_reason
        except StepgateError as exc:
            # Bytes may have reached the client: report the failure in-stream, no message_stop.
            yield self.error_frame(exc)
            return
        if not started:
            yield self._start("", request.model, request_id)
        for frame in blocks.close():
            yield frame
        usage, extra = final_usage(record) or (Usage(), {})
        yield event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(finish), "stop_sequence": None},
                "usage": usage_json(usage),
                **extra,
            },
        )
        yield MESSAGE_STOP

    @staticmethod
    def _start(given_id: str, model: str, request_id: str) -> bytes:
        message: dict[str, Any] = {
            "id": _message_id(given_id, request_id),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The real counts come in `message_delta` (cumulative, as Anthropic sends them).
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message})

    def error(self, error: StepgateError) -> tuple[int, bytes, dict[str, str]]:
        return render_error(error)

    def error_frame(self, error: StepgateError) -> bytes:
        return event("error", error_body(error))

    def headers(self, meta: ResponseMeta) -> dict[str, str]:
        return {**stepgate_headers(meta), **self.id_headers(meta.request_id)}

    def id_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id, "request-id": request_id}


ANTHROPIC = AnthropicDialect()
