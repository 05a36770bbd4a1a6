"""OpenAI-compatible endpoints: POST /v1/chat/completions, GET /v1/models. Thin handlers."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from gateway.api import render
from gateway.core.errors import BadRequest, ClientDisconnected, PayloadTooLarge, StepgateError
from gateway.core.money import format_usd
from gateway.core.types import ChatRequest, Usage
from gateway.pipeline import Pipeline, RequestContext, StreamOutcome
from gateway.routing import model_names

_SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")


def request_id_for(request: Request) -> str:
    """The caller's x-request-id when it is a sane token, else a fresh one."""
    given = request.headers.get("x-request-id")
    rid = given if given and _SAFE_ID.match(given) else uuid.uuid4().hex
    request.state.request_id = rid
    return rid


async def read_json(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {max_bytes}")
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > max_bytes:
                raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    except ClientDisconnect as exc:
        raise ClientDisconnected("the client disconnected while sending its request") from exc
    if not body:
        raise BadRequest("request body is empty; send a JSON chat completion request")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


def parse_chat(data: Any) -> ChatRequest:
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


async def chat_completions(request: Request) -> Response:
    received = time.monotonic()
    rid = request_id_for(request)
    services = request.app.state.services
    principal = await services.gate.authenticate(request.headers)
    data = await read_json(request, services.settings.max_body_bytes)
    chat = parse_chat(data)
    ctx = RequestContext(
        request_id=rid,
        headers=request.headers,  # case-insensitive mapping
        received=received,
        received_at=time.time(),
        api_key_id=principal.key_id if principal else None,
        team=principal.team if principal else None,
        principal=principal,
    )
    pipeline: Pipeline = services.pipeline
    want_logprobs = bool(chat.logprobs)
    if chat.stream:
        outcome = await pipeline.chat_stream(chat, ctx)
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        return StreamingResponse(
            _sse(outcome, rid, want_logprobs=want_logprobs, include_usage=include_usage),
            media_type="text/event-stream",
            headers={**outcome.headers, "cache-control": "no-cache"},
        )
    result = await pipeline.chat(chat, ctx)
    return Response(
        render.completion_body(result.completion, request_id=rid, want_logprobs=want_logprobs),
        media_type="application/json",
        headers=result.headers,
    )


async def _sse(
    outcome: StreamOutcome, rid: str, *, want_logprobs: bool, include_usage: bool
) -> AsyncIterator[bytes]:
    model, created = "", 0
    try:
        async for chunk in outcome.chunks:
            model, created = chunk.model or model, chunk.created or created
            if chunk.usage is not None and not (
                chunk.content or chunk.tool_calls or chunk.finish_reason or chunk.role
            ):
                continue  # the upstream's usage-only chunk: we send our own below
            yield render.chunk_frame(chunk, request_id=rid, want_logprobs=want_logprobs)
    except StepgateError as exc:
        # Bytes already reached the client: report the failure in-stream, never [DONE].
        yield render.error_frame(exc)
        return
    record = outcome.record
    answer = record.answer if record is not None else None
    if include_usage and record is not None and answer is not None:
        usage = Usage(answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)
        extra = {
            "x_stepgate": {
                "cost_usd": format_usd(record.cost_nanos),
                "baseline_cost_usd": format_usd(record.baseline_cost_nanos),
                "route": record.route,
                "backend": record.final_backend,
            }
        }
        yield render.usage_frame(usage, request_id=rid, model=model, created=created, extra=extra)
    yield render.DONE


async def list_models(request: Request) -> Response:
    services = request.app.state.services
    await services.gate.authenticate(request.headers)
    policy = services.holder.current.policy
    now = int(time.time())
    data = [
        {"id": name, "object": "model", "created": now, "owned_by": "stepgate"}
        for name in model_names(policy)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
