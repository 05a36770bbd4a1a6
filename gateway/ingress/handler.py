"""The one chat handler, for any dialect: auth, body, idempotency, pipeline, reply.

The busiest endpoints by far, so they are plain ASGI apps that skip Starlette's request and
response objects (the app dispatches to them ahead of the router and middleware) and render
their own errors through their dialect. A non-streaming answer is written first; its record
is published after it.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.core.errors import GatewayError, StepgateError
from gateway.core.types import ChatRequest
from gateway.ingress.dialect import Dialect
from gateway.ingress.edge import client_request_id, new_request_id, read_body, send_json
from gateway.limits.idempotency import Claim, Stored
from gateway.pipeline import Pipeline
from gateway.trace import RequestContext

log = logging.getLogger("stepgate.app")


class ChatHandler:
    """POST of one chat step in `dialect`'s API, as an ASGI app."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = time.monotonic()
        headers = Headers(scope=scope)
        rid = new_request_id()
        try:
            await self._answer(scope, receive, send, headers, rid, received)
        except StepgateError as exc:
            await self.send_error(send, exc, rid, headers)
        except Exception as exc:
            log.exception("unhandled error", exc_info=exc)
            error = GatewayError("internal gateway error; the request id is in x-request-id")
            await self.send_error(send, error, rid, headers)

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
        self.dialect.check_headers(headers)
        body = await read_body(receive, headers, services.settings.max_body_bytes)
        chat = self.dialect.parse(body)
        held = await services.idempotency.begin(principal, headers, body)
        if isinstance(held, Stored):
            await send_json(send, held.status, held.body, held.headers, held.media_type)
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
        if chat.stream:
            outcome = await pipeline.chat_stream(chat, ctx)
            frames = self.dialect.frames(outcome, chat, rid)
            stream_headers = {**self.dialect.headers(outcome.meta), "cache-control": "no-cache"}
            if claim is not None:
                frames = claim.recorded(frames, headers=stream_headers, done=self.dialect.end_frame)
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
        headers = self.dialect.headers(result.meta)
        try:
            payload = self.dialect.completion(result.completion, chat, rid)
            await send_json(send, 200, payload, headers)
        finally:
            result.publish()
        if claim is not None:
            claim.keep(Stored(200, headers, payload, "application/json"))

    async def send_error(
        self, send: Send, error: StepgateError, rid: str, request: Headers
    ) -> None:
        status, body, headers = self.dialect.error(error)
        headers = {**headers, **self.dialect.id_headers(rid)}
        client_id = client_request_id(request)
        if client_id is not None:
            headers["x-client-request-id"] = client_id
        await send_json(send, status, body, headers)
