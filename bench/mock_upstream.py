"""A fast OpenAI-compatible mock upstream with a fixed model time, for load benchmarks.

A raw asyncio protocol on uvloop with httptools' parser: HTTP/1.1 keep-alive, no framework, so
it costs tens of microseconds per request and is never the bottleneck. Speaks:

* ``POST /v1/chat/completions`` (and ``/chat/completions``): JSON, or SSE (chunked) when the
  body has ``"stream": true``; per-token ``logprobs`` when the body asks for them (confident
  values, so a confidence check accepts the answer); a usage chunk when
  ``stream_options.include_usage`` is set;
* ``GET /v1/models``, ``GET /health``.

The model time (``--model-ms``, default 20) is spent before the JSON answer is written; a stream
sends its first chunk after half of it and the rest at the end. Run::

    python bench/mock_upstream.py --port 8199 [--model-ms 20] [--tokens 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from typing import Any

import httptools
import orjson

# The answer: a support-ticket label that is one of the prompt's options (so the confidence
# check accepts it), split into `tokens` pieces so a stream has that many content chunks.
ANSWER = "billing"


def _answer(n_tokens: int) -> tuple[str, ...]:
    n = max(1, min(n_tokens, len(ANSWER)))
    cuts = [round(i * len(ANSWER) / n) for i in range(n + 1)]
    return tuple(ANSWER[cuts[i] : cuts[i + 1]] for i in range(n))


class Mock:
    def __init__(self, *, model_ms: float, tokens: int) -> None:
        self.delay = model_ms / 1000.0
        self.tokens = _answer(tokens)
        self.requests = 0


def _lp(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.001, "bytes": list(token.encode()), "top_logprobs": []}


def _json_body(mock: Mock, req: dict[str, Any]) -> bytes:
    text = "".join(mock.tokens)
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
    }
    if req.get("logprobs"):
        choice["logprobs"] = {"content": [_lp(t) for t in mock.tokens]}
    prompt_tokens = _prompt_tokens(req)
    return orjson.dumps(
        {
            "id": f"chatcmpl-mock{mock.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model") or "mock",
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(mock.tokens),
                "total_tokens": prompt_tokens + len(mock.tokens),
            },
        }
    )


def _prompt_tokens(req: dict[str, Any]) -> int:
    n = 0
    for m in req.get("messages") or ():
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str):
            n += len(c) // 4 + 1
    return n


def _sse_frames(mock: Mock, req: dict[str, Any]) -> tuple[bytes, bytes]:
    """(first part, rest) of the event stream, each already as HTTP chunked frames."""
    base = {
        "id": f"chatcmpl-mock{mock.requests}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": req.get("model") or "mock",
    }
    want_lp = bool(req.get("logprobs"))
    frames: list[bytes] = []
    for i, tok in enumerate(mock.tokens):
        delta: dict[str, Any] = {"content": tok}
        if i == 0:
            delta["role"] = "assistant"
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
        if want_lp:
            choice["logprobs"] = {"content": [_lp(tok)]}
        frames.append(orjson.dumps({**base, "choices": [choice]}))
    frames.append(
        orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    opts = req.get("stream_options")
    if isinstance(opts, dict) and opts.get("include_usage"):
        pt = _prompt_tokens(req)
        usage = {
            "prompt_tokens": pt,
            "completion_tokens": len(mock.tokens),
            "total_tokens": pt + len(mock.tokens),
        }
        frames.append(orjson.dumps({**base, "choices": [], "usage": usage}))
    events = [b"data: " + f + b"\n\n" for f in frames] + [b"data: [DONE]\n\n"]

    def chunked(parts: list[bytes]) -> bytes:
        payload = b"".join(parts)
        return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"

    return chunked(events[:1]), chunked(events[1:]) + b"0\r\n\r\n"


_JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: keep-alive\r\n\r\n"
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)
_MODELS = orjson.dumps({"object": "list", "data": [{"id": "mock", "object": "model"}]})


class HttpProtocol(asyncio.Protocol):
    def __init__(self, mock: Mock) -> None:
        self.mock = mock
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.loop = asyncio.get_running_loop()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            if self.transport:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        if method == b"POST" and path in (b"/v1/chat/completions", b"/chat/completions"):
            self._chat(b"".join(self.body))
        elif method == b"GET" and path in (b"/v1/models", b"/models"):
            self._write(_JSON_HEAD % len(_MODELS) + _MODELS)
        elif method == b"GET" and path == b"/health":
            self._write(_JSON_HEAD % 2 + b"{}")
        else:
            msg = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
            self._write(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(msg) + msg
            )

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _chat(self, raw: bytes) -> None:
        try:
            req = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = b'{"error":{"message":"body is not JSON","type":"invalid_request_error"}}'
            self._write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(msg) + msg
            )
            return
        mock = self.mock
        mock.requests += 1
        if req.get("stream"):
            first, rest = _sse_frames(mock, req)
            self.loop.call_later(mock.delay / 2, self._write, _SSE_HEAD + first)
            self.loop.call_later(mock.delay, self._write, rest)
        else:
            body = _json_body(mock, req)
            self.loop.call_later(mock.delay, self._write, _JSON_HEAD % len(body) + body)


async def serve(host: str, port: int, mock: Mock) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(mock), host, port, backlog=2048)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream on http://{host}:{port} (pid {os.getpid()})", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8199)
    ap.add_argument("--model-ms", type=float, default=20.0, help="fixed model time per request")
    ap.add_argument("--tokens", type=int, default=4, help="answer tokens (stream chunks)")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, Mock(model_ms=args.model_ms, tokens=args.tokens)))


if __name__ == "__main__":
    main()
