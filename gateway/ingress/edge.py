"""What every ingress does at the HTTP edge, whatever its API: ids, the body, the reply."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import Receive, Send

from gateway.core.errors import BadRequest, ClientDisconnected, PayloadTooLarge
from gateway.core.money import format_usd
from gateway.core.records import RequestRecord
from gateway.core.types import Usage
from gateway.trace import ResponseMeta

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    """The gateway's own id for a request: the ledger key, so never taken from the caller."""
    # 128 random bits, like uuid4().hex, without a getrandom() system call per request: the
    # module's generator is seeded from os.urandom and reseeded in every forked worker.
    return f"{random.getrandbits(128):032x}"


def client_request_id(headers: Mapping[str, str]) -> str | None:
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


def parse_json(body: bytes, *, what: str) -> Any:
    """The body as JSON; `what` names the request expected, for the error message."""
    if not body:
        raise BadRequest(f"request body is empty; send a JSON {what}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    media_type: str = "application/json",
) -> None:
    raw = [
        (b"content-type", media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def final_usage(record: RequestRecord | None) -> tuple[Usage, dict[str, Any]] | None:
    """A finished stream's usage (of the answer returned) and Stepgate's cost figures, for the
    last frame a dialect sends; None when the stream ended with no answer."""
    answer = record.answer if record is not None else None
    if record is None or answer is None:
        return None
    usage = Usage(answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)
    extra = {
        "x_stepgate": {
            "cost_usd": format_usd(record.cost_nanos),
            "baseline_cost_usd": format_usd(record.baseline_cost_nanos),
            "route": record.route,
            "backend": record.final_backend,
        }
    }
    return usage, extra


def stepgate_headers(meta: ResponseMeta) -> dict[str, str]:
    """Stepgate's own response headers (`x-request-id`, `x-stepgate-*`), the same in every
    dialect."""
    headers = {
        "x-request-id": meta.request_id,
        "x-stepgate-route": meta.route,
        "x-stepgate-backend": meta.backend,
        "x-stepgate-step-kind": meta.step_kind,
        "x-stepgate-escalated": "true" if meta.escalated else "false",
        # A stream's cost is known only at its end: it is sent in the final frame instead.
        "x-stepgate-cost-usd": format_usd(meta.cost_nanos) if meta.cost_known else "deferred",
        "x-stepgate-overhead-ms": f"{meta.overhead_ms:.3f}",
    }
    if meta.client_request_id is not None:
        headers["x-client-request-id"] = meta.client_request_id
    if meta.cache_hit:
        headers["x-stepgate-cache"] = "hit"
    if meta.confidence is not None:
        headers["x-stepgate-confidence"] = f"{meta.confidence:.3f}"
        headers["x-stepgate-disposition"] = meta.disposition or "final"
    return headers
