"""OpenAI-compatible endpoints: POST /v1/chat/completions, GET /v1/models. Thin handlers."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.api import render
from gateway.core.errors import (
    BadRequest,
    ClientDisconnected,
    GatewayError,
    PayloadTooLarge,
    StepgateError,
)
from gateway.core.errors import render as render_error
from gateway.core.money import format_usd
from gateway.core.types import ChatRequest, Usage
from gateway.limits.idempotency import Claim, Stored
from gateway.pipeline import Pipeline, RequestContext, StreamOutcome
from gateway.routing import model_names

log = logging.getLogger("stepgate.app")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    """The gateway's own id for a request: the ledger key, so never taken from the caller."""
    # 128 random bits, like uuid4().hex, without a getrandom() system call per request: the
    # module's generator is seeded from os.urandom and reseeded in every forked worker.
    return f"{random.getrandbits(128):032x}"


def client_request_id(headers: Headers) -> str | None:
    """The caller's own id (`x-client-request-id`, as OpenAI names it, or the `x-request-id`
    it sent) when it is a sane token: stored beside ours and echoed, never a ledger key."""
    given = headers.get("x-client-request-id") or headers.get("x-request-id")
    return given if given and _SAFE_ID.match(given) else None


async def read_body(receive: Receive, headers: Headers, max_bytes: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {max_bytes}")
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("the client disconnected while sending its request")
        part: bytes = message.get("body", b"")
        body += part
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        if not message.get("more_body", False):
            return body


def parse_json(body: bytes) -> Any:
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


class ChatCompletions:
    """POST /v1/chat/completions as a plain ASGI app.

    The busiest endpoint by far, so it skips Starlette's request/response objects (the app also
    dispatches to it ahead of the router and middleware) and renders its own errors with the
    one renderer. A non-streaming answer is written first; the record is published after it.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = time.monotonic()
        headers = Headers(scope=scope)
        rid = new_request_id()
        try:
            await self._answer(scope, receive, send, headers, rid, received)
        except StepgateError as exc:
            await _send_error(send, exc, rid, headers)
        except Exception as exc:
            log.exception("unhandled error", exc_info=exc)
            error = GatewayError("internal gateway error; the request id is in x-request-id")
            await _send_error(send, error, rid, headers)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers,
        rid: str,
        received: float,
    ) -> None:
        services = scope["app"].state.services
        principal = await services.gate.authenticate(headers)
        body = await read_body(receive, headers, services.settings.max_body_bytes)
        chat = parse_chat(parse_json(body))
        held = await services.idempotency.begin(principal, headers, body)
        if isinstance(held, Stored):
            await _send_stored(send, held)
            return
        ctx = RequestContext(
            request_id=rid,
            headers=headers,  # case-insensitive mapping
            received=received,
            received_at=time.time(),
            api_key_id=principal.key_id if principal else None,
            team=principal.team if principal else None,
            principal=principal,
            client_request_id=client_request_id(headers),
        )
        try:
            await self._run(scope, receive, send, services.pipeline, ctx, chat, held)
        except BaseException:
            if held is not None:
                held.release()
            raise

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        pipeline: Pipeline,
        ctx: RequestContext,
        chat: ChatRequest,
        claim: Claim | None,
    ) -> None:
        """Route and answer a parsed request; `claim` holds its Idempotency-Key, if any."""
        rid = ctx.request_id
        want_logprobs = bool(chat.logprobs)
        if chat.stream:
            outcome = await pipeline.chat_stream(chat, ctx)
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            frames = _sse(outcome, rid, want_logprobs=want_logprobs, include_usage=include_usage)
            stream_headers = {**outcome.headers, "cache-control": "no-cache"}
            if claim is not None:
                frames = claim.recorded(frames, headers=stream_headers, done=render.DONE)
            # Starlette's StreamingResponse also watches for the client going away, which
            # cancels the relay (and so settles and records what the stream cost).
            response = StreamingResponse(
                frames, media_type="text/event-stream", headers=stream_headers
            )
            try:
                await response(scope, receive, send)
            except Exception as exc:  # after the first byte: no error response can follow
                log.exception("stream failed after it started", exc_info=exc)
            if claim is not None:
                claim.release()  # unless the relay kept a complete stream (then a no-op)
            return
        result = await pipeline.chat(chat, ctx)
        try:
            payload = render.completion_body(
                result.completion, request_id=rid, want_logprobs=want_logprobs
            )
            await _send_json(send, 200, payload, result.headers)
        finally:
            result.publish()
        if claim is not None:
            claim.keep(Stored(200, result.headers, payload, "application/json"))


async def _send_stored(send: Send, stored: Stored) -> None:
    await _send_json(send, stored.status, stored.body, stored.headers, stored.media_type)


async def _send_json(
    send: Send,
    status: int,
    body: bytes,
    headers: dict[str, str],
    media_type: str = "application/json",
) -> None:
    raw = [
        (b"content-type", media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: StepgateError, rid: str, request: Headers) -> None:
    status, body, headers = render_error(error)
    headers = {**headers, "x-request-id": rid}
    client_id = client_request_id(request)
    if client_id is not None:
        headers["x-client-request-id"] = client_id
    await _send_json(send, status, body, headers)


chat_completions = ChatCompletions()


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
