"""The OpenAI chat-completions dialect: `/v1/chat/completions` bodies in, OpenAI JSON and SSE
out, errors as `{"error": {"message", "type", "code", "param"}}`. Also the shape of every
other endpoint's errors (the gateway's own API follows OpenAI's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from gateway.core.errors import BadRequest, StepgateError
from gateway.core.types import ChatRequest, Chunk, Completion, TokenLogprob, Usage
from gateway.ingress.edge import final_usage, parse_json, stepgate_headers
from gateway.relay import StreamEnd, StreamOutcome
from gateway.trace import ResponseMeta

DONE = b"data: [DONE]\n\n"


def parse_chat(data: Any) -> ChatRequest:
    """A decoded chat-completions body as the internal request (BadRequest naming the field)."""
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return ChatRequest.from_wire(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise BadRequest(f"{loc}: {msg}{more}", param=loc) from exc


def error_body(error: StepgateError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "code": error.code or error.error_class,
            "param": error.param,
        }
    }


def render_error(error: StepgateError) -> tuple[int, bytes, dict[str, str]]:
    """Status, OpenAI-shaped JSON body and extra headers (Retry-After) of an error."""
    return error.status, orjson.dumps(error_body(error)), error.headers()


def _logprobs(items: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.token.encode()),
                "top_logprobs": [
                    {"token": tok, "logprob": lp, "bytes": list(tok.encode())} for tok, lp in t.top
                ],
            }
            for t in items
        ]
    }


def usage_json(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


def completion_body(c: Completion, *, request_id: str, want_logprobs: bool) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": c.content, **c.message_extras}
    if c.tool_calls:
        message["tool_calls"] = list(c.tool_calls)
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": c.finish_reason,
        "logprobs": _logprobs(c.logprobs) if want_logprobs else None,
    }
    return orjson.dumps(
        {
            "id": c.id or f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": c.created,
            "model": c.model,
            "choices": [choice],
            "usage": usage_json(c.usage),
        }
    )


def chunk_frame(ch: Chunk, *, request_id: str, want_logprobs: bool) -> bytes:
    delta: dict[str, Any] = {}
    if ch.role:
        delta["role"] = ch.role
    if ch.content is not None:
        delta["content"] = ch.content
    if ch.tool_calls:
        delta["tool_calls"] = list(ch.tool_calls)
    body = {
        "id": ch.id or f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": ch.created,
        "model": ch.model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": _logprobs(ch.logprobs) if want_logprobs else None,
                "finish_reason": ch.finish_reason,
            }
        ],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def usage_frame(
    usage: Usage, *, request_id: str, model: str, created: int, extra: dict[str, Any]
) -> bytes:
    body = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(usage),
        **extra,
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def error_frame(error: StepgateError) -> bytes:
    """An in-stream error event; the OpenAI SDK raises APIError when it sees one."""
    return b"data: " + orjson.dumps(error_body(error)) + b"\n\n"


class OpenAIDialect:
    name = "openai"
    end_frame = DONE

    def check_headers(self, headers: Mapping[str, str]) -> None:
        return None

    def parse(self, body: bytes) -> ChatRequest:
        return parse_chat(parse_json(body, what="chat completion request"))

    def completion(self, completion: Completion, request: ChatRequest, request_id: str) -> bytes:
        return completion_body(
            completion, request_id=request_id, want_logprobs=bool(request.logprobs)
        )

    async def frames(
        self, outcome: StreamOutcome, request: ChatRequest, request_id: str
    ) -> AsyncIterator[bytes]:
        want_logprobs = bool(request.logprobs)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        model, created = "", 0
        record = None
        try:
            async for chunk in outcome.chunks:
                if isinstance(chunk, StreamEnd):
                    record = chunk.record
                    continue
                if chunk.block_event is not None:
                    continue  # a block OpenAI's API has no place for (an Anthropic thinking block)
                model, created = chunk.model or model, chunk.created or created
                if chunk.usage is not None and not (
                    chunk.content or chunk.tool_calls or chunk.finish_reason or chunk.role
                ):
                    continue  # the upstream's usage-only chunk: we send our own below
                yield chunk_frame(chunk, request_id=request_id, want_logprobs=want_logprobs)
        except StepgateError as exc:
            # Bytes already reached the client: report the failure in-stream, never [DONE].
            yield error_frame(exc)
            return
        final = final_usage(record)
        if include_usage and final is not None:
            usage, extra = final
            yield usage_frame(
                usage, request_id=request_id, model=model, created=created, extra=extra
            )
        yield DONE

    def error(self, error: StepgateError) -> tuple[int, bytes, dict[str, str]]:
        return render_error(error)

    def error_frame(self, error: StepgateError) -> bytes:
        return error_frame(error)

    def headers(self, meta: ResponseMeta) -> dict[str, str]:
        return {**stepgate_headers(meta), **self.id_headers(meta.request_id)}

    def id_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id}


OPENAI = OpenAIDialect()
