"""Scriptable fake upstream model servers: real HTTP on 127.0.0.1, one background thread each.

One ``FakeUpstream`` speaks three dialects on the same port:

* OpenAI-compatible: ``POST /v1/chat/completions`` (JSON, or SSE when ``stream: true``; a final
  usage chunk when ``stream_options.include_usage``) and ``GET /v1/models``;
* vLLM-style dLLM: the same endpoint; when the request has ``logprobs: true`` the answer carries
  OpenAI-format ``choices[0].logprobs.content`` (per chunk when streaming), with
  ``top_logprobs`` alternatives when the request asks for them;
* Anthropic Messages: ``POST /v1/messages`` (JSON, or the real SSE event sequence
  message_start, content_block_start, ping, content_block_delta, content_block_stop,
  message_delta, message_stop), good enough for litellm's ``anthropic/...`` provider.

Usage::

    with FakeUpstream() as fake:          # or the fixtures in tests/fakes/fixtures.py
        fake.url                          # "http://127.0.0.1:PORT"  (anthropic api_base)
        fake.openai_base                  # "http://127.0.0.1:PORT/v1" (openai base_url)
        fake.set_reply(content="refund", logprobs=[-0.01])   # default answer
        fake.script([status(429, retry_after=2), ok(content="hi")])  # FIFO, one per request
        fake.script([persistent(status(503))])  # every request, until fake.reset_script()
        fake.requests[-1].body["tools"]   # what the upstream received
        fake.usage_totals()               # {"prompt_tokens", "completion_tokens", "total_tokens"}

Replies (``set_reply`` and ``ok`` take the same keyword arguments):
``content`` is split into word tokens (``re.findall(r"\\s*\\S+")``) unless ``tokens`` gives them;
``logprobs`` is one float per token or one float for all (default -0.01: confident);
``tool_calls`` is a list of ``{"name", "arguments": dict|str, "id"?}`` (OpenAI-shaped
``{"id", "type", "function": {...}}`` is accepted too) and makes ``finish_reason`` default to
``"tool_calls"`` (Anthropic: ``"tool_use"``); ``prompt_tokens`` defaults to the number of
whitespace-separated words in the request's message texts (plus ``system`` for Anthropic),
``completion_tokens`` to the number of content tokens plus tool-argument fragments.
The fake does not truncate at ``max_tokens``: script ``finish_reason="length"`` instead.
Anthropic only: ``thinking`` (text) puts a thinking block, with a signature, before the answer
(streamed as thinking_delta fragments, then a signature_delta; its events count no tokens);
``cache_read_tokens`` / ``cache_creation_tokens`` are reported as ``cache_read_input_tokens`` /
``cache_creation_input_tokens`` beside ``input_tokens`` (= ``prompt_tokens``).

Behaviours for ``script`` (each is consumed by one completion request, ``GET /v1/models`` consumes
none; when the FIFO is empty the default reply answers):

* ``ok(**reply)`` -- answer with this reply;
* ``status(code, retry_after=None, body=None, headers=None)`` -- an error response; the default
  body is OpenAI-shaped (Anthropic-shaped on ``/v1/messages``); a dict body is sent as JSON, a
  str/bytes body verbatim as text/plain;
* ``reset()`` -- read the request, then close the TCP connection with an RST, no response;
* ``hang(seconds)`` -- read the request, send nothing for ``seconds``, then close the connection;
* ``slow_first_token(seconds, reply=None)`` -- stream: headers at once, first event after
  ``seconds``; non-stream: the whole response after ``seconds``;
* ``cut_stream(after_chunks=N, reply=None)`` -- stream: send the first N SSE events (OpenAI: the
  role chunk is event 1, then one event per content token / tool-call fragment; Anthropic:
  message_start is event 1; N past the last event still drops [DONE] / message_stop), then
  close the connection without the chunked terminator;
  non-stream: send headers and half of the body, then close;
* ``malformed_chunk(after_chunks=N, reply=None)`` -- after N events send ``data: {not json``
  and then the rest of the stream as usual; non-stream: a 200 whose body is not JSON;
* ``stall(after_chunks=N, seconds, reply=None)`` -- stream: the first N events, then silence
  for ``seconds`` with the connection open, then the rest of the stream; non-stream: a normal
  reply;
* ``no_done(reply=None)`` -- the full stream, finish_reason and usage included, but no
  ``data: [DONE]`` (Anthropic: no message_stop); non-stream: a normal reply;
* ``persistent(behaviour)`` -- stays at the head of the FIFO and answers every request until
  ``reset_script()`` (behaviours queued after it are never reached);
* ``echo_auth(code)`` -- an error response (stream or not) whose message quotes the credentials
  the request came with, as a careless provider does: ``Incorrect API key provided: <key>``
  and the whole ``Authorization`` (or ``x-api-key``) value; OpenAI- or Anthropic-shaped;
* ``stream_error_echo(after_chunks=N, reply=None, code=500)`` -- stream: the first N events,
  then an in-stream error event quoting the credentials the same way, then the end of the
  stream (no ``[DONE]``, no finish); non-stream: a ``code`` response quoting them. The error
  body is the one of a ``code`` response (Anthropic: 529 gives ``overloaded_error``).

``usage_totals()`` sums what the fake reported in 2xx completion answers: full answers count
their usage; a cut stream counts its prompt tokens plus the completion tokens of the events
actually sent. ``latency_s`` (default 0) delays every successful answer before its first byte
(benchmarks' model time); ``chunk_delay_s`` (default 0) spaces stream events. Errors, resets and
hangs are not delayed by ``latency_s``.

Also: ``FakeUpstream(dialect="openai"|"vllm"|"anthropic", models=None)`` (the dialect only picks
the default ``GET /v1/models`` list; every server answers all endpoints), ``start()``/``stop()``
or ``with``; ``fake.port``; ``fake.models`` (list, editable); ``fake.last_request``;
``fake.clear()`` (forget requests and usage totals); ``fake.reset_script()``; ``fake.reset_all()``
(default reply, script, requests, usage, latencies: what the fixtures do before each test).
``RecordedRequest`` has ``method, path, query, headers`` (lower-case names), ``body`` (parsed JSON
or None), ``raw`` (bytes) and ``sent`` (the content tokens its stream actually wrote, in
order). For litellm's ``anthropic/`` provider pass ``api_base=fake.url``:
litellm appends ``/v1/messages``, so ``fake.openai_base`` would become ``/v1/v1/messages`` (404).

All scripting methods are thread-safe: tests call them from the test thread while the server
runs its own asyncio loop in a daemon thread. Requests are recorded on arrival, before the
behaviour runs, so a reset or hung request is still in ``requests``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "Behaviour",
    "CutStream",
    "EchoAuth",
    "FakeUpstream",
    "Hang",
    "MalformedChunk",
    "NoDone",
    "Persistent",
    "RecordedRequest",
    "Reply",
    "Reset",
    "SlowFirstToken",
    "Stall",
    "Status",
    "StreamErrorEcho",
    "cut_stream",
    "echo_auth",
    "hang",
    "malformed_chunk",
    "no_done",
    "ok",
    "persistent",
    "reset",
    "slow_first_token",
    "stall",
    "status",
    "stream_error_echo",
]

DEFAULT_LOGPROB = -0.01
_TOKEN_RE = re.compile(r"\s*\S+")
_MAX_HEADER_BYTES = 1 << 20


def split_tokens(text: str) -> list[str]:
    """Word tokens with their leading whitespace; joined they give ``text`` back."""
    tokens = _TOKEN_RE.findall(text)
    tail = text[sum(len(t) for t in tokens) :]
    if tail:
        if tokens:
            tokens[-1] += tail
        else:
            tokens = [tail]
    return tokens


# ---------------------------------------------------------------------------------------------
# Behaviours


@dataclass(frozen=True)
class ToolCall:
    id: str | None
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True)
class Reply:
    """A successful answer. Build with ``ok(...)`` or ``FakeUpstream.set_reply(...)``."""

    content: str = "ok"
    tokens: tuple[str, ...] | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: tuple[float, ...] | float | None = None
    thinking: str | None = None
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    def token_list(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_tokens(self.content)

    def logprob_list(self) -> list[float]:
        n = len(self.token_list())
        if self.logprobs is None:
            return [DEFAULT_LOGPROB] * n
        if isinstance(self.logprobs, int | float):
            return [float(self.logprobs)] * n
        return list(self.logprobs)

    def openai_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return _ANTHROPIC_TO_OPENAI_STOP.get(self.finish_reason, self.finish_reason)
        return "tool_calls" if self.tool_calls else "stop"

    def anthropic_stop_reason(self) -> str:
        if self.finish_reason is not None:
            return _OPENAI_TO_ANTHROPIC_STOP.get(self.finish_reason, self.finish_reason)
        return "tool_use" if self.tool_calls else "end_turn"


_OPENAI_TO_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_ANTHROPIC_TO_OPENAI_STOP = {v: k for k, v in _OPENAI_TO_ANTHROPIC_STOP.items()}


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: float | str | None = None
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Hang:
    seconds: float


@dataclass(frozen=True)
class SlowFirstToken:
    seconds: float
    reply: Reply | None = None


@dataclass(frozen=True)
class CutStream:
    after_chunks: int
    reply: Reply | None = None


@dataclass(frozen=True)
class MalformedChunk:
    after_chunks: int
    reply: Reply | None = None


@dataclass(frozen=True)
class Stall:
    after_chunks: int
    seconds: float
    reply: Reply | None = None


@dataclass(frozen=True)
class NoDone:
    reply: Reply | None = None


@dataclass(frozen=True)
class Persistent:
    behaviour: Behaviour


@dataclass(frozen=True)
class EchoAuth:
    code: int


@dataclass(frozen=True)
class StreamErrorEcho:
    after_chunks: int
    reply: Reply | None = None
    code: int = 500


Behaviour = (
    Reply
    | Status
    | Reset
    | Hang
    | SlowFirstToken
    | CutStream
    | MalformedChunk
    | Stall
    | NoDone
    | Persistent
    | EchoAuth
    | StreamErrorEcho
)


def _tool_call(raw: Any) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    fn = raw.get("function", raw)
    args = fn.get("arguments", {})
    # json.dumps's default ", " / ": " separators give several whitespace-split fragments
    text = args if isinstance(args, str) else json.dumps(args)
    return ToolCall(id=raw.get("id"), name=fn["name"], arguments=text)


def ok(
    content: str = "ok",
    *,
    tool_calls: Iterable[Any] | None = None,
    finish_reason: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    logprobs: Iterable[float] | float | None = None,
    tokens: Iterable[str] | None = None,
    thinking: str | None = None,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
) -> Reply:
    """A successful reply; see the module docstring for the defaults."""
    token_tuple = tuple(tokens) if tokens is not None else None
    if token_tuple is not None:
        content = "".join(token_tuple)
    lp: tuple[float, ...] | float | None
    lp = float(logprobs) if isinstance(logprobs, int | float) else logprobs  # type: ignore[assignment]
    if lp is not None and not isinstance(lp, float):
        lp = tuple(float(x) for x in lp)
        n = len(token_tuple) if token_tuple is not None else len(split_tokens(content))
        if len(lp) != n:
            raise ValueError(f"logprobs has {len(lp)} values for {n} tokens")
    return Reply(
        content=content,
        tokens=token_tuple,
        tool_calls=tuple(_tool_call(t) for t in tool_calls or ()),
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        logprobs=lp,
        thinking=thinking,
        cache_read_tokens=cache_read_tokens,
        cache_creation_tokens=cache_creation_tokens,
    )


def status(
    code: int,
    *,
    retry_after: float | str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Status:
    """An error (or any non-streaming) response with this status code."""
    return Status(code, retry_after, body, tuple((headers or {}).items()))


def reset() -> Reset:
    """Close the TCP connection (RST) after reading the request; no response."""
    return Reset()


def hang(seconds: float) -> Hang:
    """Accept the request and answer nothing for ``seconds``; then close the connection."""
    return Hang(seconds)


def slow_first_token(seconds: float, reply: Reply | None = None) -> SlowFirstToken:
    return SlowFirstToken(seconds, reply)


def cut_stream(after_chunks: int, reply: Reply | None = None) -> CutStream:
    return CutStream(after_chunks, reply)


def malformed_chunk(after_chunks: int, reply: Reply | None = None) -> MalformedChunk:
    return MalformedChunk(after_chunks, reply)


def stall(after_chunks: int, seconds: float, reply: Reply | None = None) -> Stall:
    """A stream that sends N events, goes silent for ``seconds`` (connection open), then
    sends the rest."""
    return Stall(after_chunks, seconds, reply)


def no_done(reply: Reply | None = None) -> NoDone:
    return NoDone(reply)


def persistent(behaviour: Behaviour) -> Persistent:
    return Persistent(behaviour)


def echo_auth(code: int) -> EchoAuth:
    """An error response with this status whose message quotes the request's credentials."""
    return EchoAuth(code)


def stream_error_echo(
    after_chunks: int, reply: Reply | None = None, *, code: int = 500
) -> StreamErrorEcho:
    """A stream that sends N events, then an error event quoting the request's credentials."""
    return StreamErrorEcho(after_chunks, reply, code)


def credential_echo(headers: dict[str, str]) -> str:
    """What a careless provider says about the credentials it was sent (`echo_auth`)."""
    sent = headers.get("authorization") or headers.get("x-api-key") or "(none)"
    key = sent.split(" ", 1)[-1]  # without its scheme ("Bearer ")
    return f"Incorrect API key provided: {key}. The request had credentials {sent!r}."


# ---------------------------------------------------------------------------------------------
# Recorded traffic


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body is empty or not JSON
    raw: bytes = field(repr=False)
    # The content tokens this request's stream actually wrote, in order (appended as sent).
    sent: list[str] = field(default_factory=list, compare=False)


@dataclass
class _Http:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"


class _Closed(Exception):
    """The connection must be closed after this response."""


# ---------------------------------------------------------------------------------------------
# Answer plans: a Reply rendered for one request, as JSON or as SSE events


def _prompt_words(body: dict[str, Any]) -> int:
    def words(content: Any) -> int:
        if isinstance(content, str):
            return len(content.split())
        if isinstance(content, list):
            return sum(words(p.get("text", "")) for p in content if isinstance(p, dict))
        return 0

    n = sum(words(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict))
    return n + words(body.get("system"))


def _arg_fragments(arguments: str) -> list[str]:
    return split_tokens(arguments) or [arguments]


@dataclass
class _Plan:
    """One reply rendered for one request; events carry their completion-token count."""

    reply: Reply
    body: dict[str, Any]
    seq: int
    model: str
    created: int
    tokens: list[str]
    logprobs: list[float]
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def build(cls, reply: Reply, body: dict[str, Any], seq: int) -> _Plan:
        tokens = reply.token_list()
        logprobs = reply.logprob_list()
        if len(logprobs) != len(tokens):
            raise ValueError(f"logprobs has {len(logprobs)} values for {len(tokens)} tokens")
        completion = len(tokens) + sum(len(_arg_fragments(t.arguments)) for t in reply.tool_calls)
        return cls(
            reply=reply,
            body=body,
            seq=seq,
            model=str(body.get("model") or "fake-model"),
            created=int(time.time()),
            tokens=tokens,
            logprobs=logprobs,
            prompt_tokens=(
                reply.prompt_tokens if reply.prompt_tokens is not None else _prompt_words(body)
            ),
            completion_tokens=(
                reply.completion_tokens if reply.completion_tokens is not None else completion
            ),
        )

    # -- OpenAI / vLLM -------------------------------------------------------------------------

    def _want_logprobs(self) -> bool:
        return bool(self.body.get("logprobs"))

    def _logprob_entry(self, token: str, lp: float) -> dict[str, Any]:
        k = int(self.body.get("top_logprobs") or 0)
        top: list[dict[str, Any]] = [{"token": token, "logprob": lp, "bytes": list(token.encode())}]
        rest = max(1e-12, 1.0 - math.exp(lp))
        for i in range(1, k):
            alt = f" alt{i}"
            top.append(
                {"token": alt, "logprob": math.log(rest / 2**i), "bytes": list(alt.encode())}
            )
        top.sort(key=lambda e: -e["logprob"])
        return {
            "token": token,
            "logprob": lp,
            "bytes": list(token.encode()),
            "top_logprobs": top[:k],
        }

    def _usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def _call_id(self, i: int, call: ToolCall) -> str:
        return call.id or f"call_fake{self.seq}_{i}"

    def openai_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.reply.content if (self.tokens or not self.reply.tool_calls) else None,
        }
        if self.reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._call_id(i, c),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for i, c in enumerate(self.reply.tool_calls)
            ]
        logprobs = None
        if self._want_logprobs():
            logprobs = {
                "content": [
                    self._logprob_entry(t, lp)
                    for t, lp in zip(self.tokens, self.logprobs, strict=True)
                ],
                "refusal": None,
            }
        return {
            "id": f"chatcmpl-fake{self.seq}",
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": self.reply.openai_finish_reason(),
                }
            ],
            "usage": self._usage(),
        }

    def openai_events(self) -> Iterator[tuple[bytes, int]]:
        include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        want_lp = self._want_logprobs()

        def chunk(delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> bytes:
            obj: dict[str, Any] = {
                "id": f"chatcmpl-fake{self.seq}",
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}],
            }
            if include_usage:
                obj["usage"] = None
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        yield chunk({"role": "assistant", "content": ""}), 0
        for token, lp in zip(self.tokens, self.logprobs, strict=True):
            lp_obj = (
                {"content": [self._logprob_entry(token, lp)], "refusal": None} if want_lp else None
            )
            yield chunk({"content": token}, lp=lp_obj), 1
        for i, call in enumerate(self.reply.tool_calls):
            head = {
                "index": i,
                "id": self._call_id(i, call),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [head]}), 0
            for frag in _arg_fragments(call.arguments):
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}), 1
        yield chunk({}, finish=self.reply.openai_finish_reason()), 0
        if include_usage:
            obj = {
                "id": f"chatcmpl-fake{self.seq}",
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": self._usage(),
            }
            yield b"data: " + orjson.dumps(obj) + b"\n\n", 0

    # -- Anthropic -----------------------------------------------------------------------------

    def _tool_input(self, call: ToolCall) -> Any:
        try:
            return orjson.loads(call.arguments)
        except orjson.JSONDecodeError:
            return {}

    def _tool_id(self, i: int, call: ToolCall) -> str:
        return call.id or f"toolu_fake{self.seq}_{i}"

    def _signature(self) -> str:
        return f"sig-fake{self.seq}"

    def anthropic_json(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self.reply.thinking is not None:
            content.append(
                {
                    "type": "thinking",
                    "thinking": self.reply.thinking,
                    "signature": self._signature(),
                }
            )
        if self.tokens:
            content.append({"type": "text", "text": self.reply.content})
        for i, call in enumerate(self.reply.tool_calls):
            content.append(
                {
                    "type": "tool_use",
                    "id": self._tool_id(i, call),
                    "name": call.name,
                    "input": self._tool_input(call),
                }
            )
        return {
            "id": f"msg_fake{self.seq}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.reply.anthropic_stop_reason(),
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.prompt_tokens,
                "output_tokens": self.completion_tokens,
                "cache_creation_input_tokens": self.reply.cache_creation_tokens,
                "cache_read_input_tokens": self.reply.cache_read_tokens,
            },
        }

    def anthropic_events(self) -> Iterator[tuple[bytes, int]]:
        def event(name: str, data: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

        message = self.anthropic_json()
        message.update(content=[], stop_reason=None)
        message["usage"] = dict(message["usage"], output_tokens=1)
        yield event("message_start", {"type": "message_start", "message": message}), 0
        index = 0
        if self.reply.thinking is not None:
            start = {"type": "thinking", "thinking": ""}
            yield (
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                ),
                0,
            )
            deltas = [
                {"type": "thinking_delta", "thinking": t} for t in split_tokens(self.reply.thinking)
            ]
            deltas.append({"type": "signature_delta", "signature": self._signature()})
            for delta in deltas:
                yield (
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    ),
                    0,
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": index}), 0
            index += 1
        if self.tokens:
            start = {"type": "text", "text": ""}
            yield (
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                ),
                0,
            )
            yield event("ping", {"type": "ping"}), 0
            for token in self.tokens:
                delta = {"type": "text_delta", "text": token}
                yield (
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    ),
                    1,
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": index}), 0
            index += 1
        for i, call in enumerate(self.reply.tool_calls):
            block = {
                "type": "tool_use",
                "id": self._tool_id(i, call),
                "name": call.name,
                "input": {},
            }
            yield (
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                ),
                0,
            )
            for frag in _arg_fragments(call.arguments):
                delta = {"type": "input_json_delta", "partial_json": frag}
                yield (
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    ),
                    1,
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": index}), 0
            index += 1
        yield (
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": self.reply.anthropic_stop_reason(),
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": self.completion_tokens},
                },
            ),
            0,
        )


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("not_found_error", "model_not_found"),
    408: ("timeout", None),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", None),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


def _error_body(code: int, anthropic: bool, message: str | None = None) -> dict[str, Any]:
    message = message or f"fake upstream error {code}"
    if anthropic:
        kind = _ANTHROPIC_ERRORS.get(code, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, err_code = _OPENAI_ERRORS.get(code, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": err_code}}


# ---------------------------------------------------------------------------------------------
# The server


class FakeUpstream:
    """A fake model server on 127.0.0.1:<free port>; see the module docstring."""

    def __init__(self, *, dialect: str = "openai", models: Iterable[str] | None = None) -> None:
        if dialect not in ("openai", "vllm", "anthropic"):
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect = dialect
        default_models = {
            "openai": ["gpt-4o-mini", "gpt-4o"],
            "vllm": ["fake-dllm"],
            "anthropic": ["claude-3-5-haiku-20241022"],
        }[dialect]
        self.models: list[str] = list(models) if models is not None else default_models
        self.latency_s = 0.0
        self.chunk_delay_s = 0.0
        self._lock = threading.Lock()
        self._default = ok()
        self._script: deque[Behaviour] = deque()
        self._requests: list[RecordedRequest] = []
        self._prompt_total = 0
        self._completion_total = 0
        self._seq = 0
        self._counted_after = 0  # answers to requests up to this seq no longer count
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeUpstream:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._on_connection,
                        "127.0.0.1",
                        0,
                        backlog=4096,
                        limit=_MAX_HEADER_BYTES,
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.dialect}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError("fake upstream failed to start") from failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting (test thread) ----------------------------------------------------------------

    def set_reply(self, content: str = "ok", **kwargs: Any) -> None:
        """Set the default reply; same keyword arguments as ``ok``."""
        reply = ok(content, **kwargs)
        with self._lock:
            self._default = reply

    def script(self, behaviours: Iterable[Behaviour]) -> None:
        """Append behaviours to the FIFO; each completion request consumes one."""
        with self._lock:
            self._script.extend(behaviours)

    def reset_script(self) -> None:
        with self._lock:
            self._script.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self._requests[-1]

    def usage_totals(self) -> dict[str, int]:
        with self._lock:
            p, c = self._prompt_total, self._completion_total
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def clear(self) -> None:
        """Forget recorded requests and usage totals (answers still in flight no longer count)."""
        with self._lock:
            self._requests.clear()
            self._prompt_total = self._completion_total = 0
            self._counted_after = self._seq

    def reset_all(self) -> None:
        """Back to a fresh server: default reply, empty script, no requests, no latency."""
        with self._lock:
            self._default = ok()
            self._script.clear()
            self._requests.clear()
            self._prompt_total = self._completion_total = 0
            # A request from before the reset that is still streaming (e.g. held by a slow
            # first token) must not add to the next test's totals.
            self._counted_after = self._seq
        self.latency_s = 0.0
        self.chunk_delay_s = 0.0

    def _next(self) -> tuple[Behaviour, Reply, int]:
        with self._lock:
            self._seq += 1
            if not self._script:
                return self._default, self._default, self._seq
            head = self._script[0]
            if isinstance(head, Persistent):
                return head.behaviour, self._default, self._seq
            return self._script.popleft(), self._default, self._seq

    def _count(self, plan: _Plan, completion: int | None = None) -> None:
        with self._lock:
            if plan.seq <= self._counted_after:
                return
            self._prompt_total += plan.prompt_tokens
            self._completion_total += plan.completion_tokens if completion is None else completion

    # -- HTTP/1.1 (server thread) ---------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                req = await self._read(reader)
                if req is None:
                    break
                await self._handle(req, writer)
                if not req.keep_alive:
                    break
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            if not writer.is_closing():
                writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> _Http | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            body = b"".join(parts)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return _Http(method, target, version, headers, body)

    @staticmethod
    def _head(code: int, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        code: int,
        body: Any,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        if isinstance(body, bytes | str):
            data = body.encode() if isinstance(body, str) else body
            ctype = "text/plain; charset=utf-8"
        else:
            data = orjson.dumps(body)
            ctype = "application/json"
        all_headers = [("content-type", ctype), ("content-length", str(len(data)))]
        writer.write(self._head(code, all_headers + list(headers or [])) + data)
        await writer.drain()

    async def _handle(self, req: _Http, writer: asyncio.StreamWriter) -> None:
        path, _, query = req.target.partition("?")
        try:
            body = orjson.loads(req.body) if req.body else None
        except orjson.JSONDecodeError:
            body = None
        recorded = RecordedRequest(req.method, path, query, dict(req.headers), body, req.body)
        with self._lock:
            self._requests.append(recorded)
        path = path.rstrip("/")
        if req.method == "GET" and path in ("/v1/models", "/models"):
            owner = "vllm" if self.dialect == "vllm" else "fake"
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": owner} for m in self.models
            ]
            await self._send(writer, 200, {"object": "list", "data": data})
            return
        anthropic = path == "/v1/messages"
        chat = path in ("/v1/chat/completions", "/chat/completions")
        if req.method != "POST" or not (chat or anthropic):
            await self._send(writer, 404, _error_body(404, anthropic))
            return
        if not isinstance(body, dict):
            await self._send(writer, 400, _error_body(400, anthropic))
            return
        behaviour, default, seq = self._next()
        await self._answer(
            behaviour,
            default,
            seq,
            body,
            anthropic,
            writer,
            headers=req.headers,
            sent=recorded.sent,
        )

    async def _answer(
        self,
        behaviour: Behaviour,
        default: Reply,
        seq: int,
        body: dict[str, Any],
        anthropic: bool,
        writer: asyncio.StreamWriter,
        *,
        headers: dict[str, str] | None = None,
        sent: list[str] | None = None,
    ) -> None:
        if isinstance(behaviour, EchoAuth | StreamErrorEcho) and not (
            isinstance(behaviour, StreamErrorEcho) and body.get("stream")
        ):
            code = behaviour.code
            echo = credential_echo(headers or {})
            await self._send(writer, code, _error_body(code, anthropic, echo))
            return
        if isinstance(behaviour, Status):
            headers = list(behaviour.headers)
            if behaviour.retry_after is not None:
                ra = behaviour.retry_after
                ra_text = str(int(ra)) if isinstance(ra, float) and ra.is_integer() else str(ra)
                headers.append(("retry-after", ra_text))
            payload = behaviour.body
            if payload is None:
                payload = _error_body(behaviour.code, anthropic)
            await self._send(writer, behaviour.code, payload, headers)
            return
        if isinstance(behaviour, Reset):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            raise _Closed
        if isinstance(behaviour, Hang):
            await asyncio.sleep(behaviour.seconds)
            raise _Closed

        reply = getattr(behaviour, "reply", None) or default
        if isinstance(behaviour, Reply):
            reply = behaviour
        plan = _Plan.build(reply, body, seq)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if isinstance(behaviour, SlowFirstToken) and not body.get("stream"):
            await asyncio.sleep(behaviour.seconds)
        if body.get("stream"):
            await self._stream(
                plan, behaviour, anthropic, writer, request_headers=headers, written=sent
            )
            return
        doc = plan.anthropic_json() if anthropic else plan.openai_json()
        data = orjson.dumps(doc)
        if isinstance(behaviour, MalformedChunk):
            data = b'{"id": "broken", "choices": [' + data[:20]
        headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
        if isinstance(behaviour, CutStream):
            writer.write(self._head(200, headers) + data[: len(data) // 2])
            await writer.drain()
            raise _Closed
        if not isinstance(behaviour, MalformedChunk):
            # Counted before the bytes leave, so a client that has the answer sees the total.
            self._count(plan)
        writer.write(self._head(200, headers) + data)
        await writer.drain()

    async def _stream(
        self,
        plan: _Plan,
        behaviour: Behaviour,
        anthropic: bool,
        writer: asyncio.StreamWriter,
        *,
        request_headers: dict[str, str] | None = None,
        written: list[str] | None = None,
    ) -> None:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
        ]
        writer.write(self._head(200, headers))
        await writer.drain()
        if isinstance(behaviour, SlowFirstToken):
            await asyncio.sleep(behaviour.seconds)

        def frame(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        async def error_event(completion: int) -> None:
            self._count(plan, completion)
            code = behaviour.code if isinstance(behaviour, StreamErrorEcho) else 500
            echo = _error_body(code, anthropic, credential_echo(request_headers or {}))
            event = b"event: error\n" if anthropic else b""
            writer.write(frame(event + b"data: " + orjson.dumps(echo) + b"\n\n"))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        events = plan.anthropic_events() if anthropic else plan.openai_events()
        completion = 0
        content_sent = 0  # content tokens come first among the counted events, in order
        try:
            for sent, (data, tokens) in enumerate(events):
                if isinstance(behaviour, CutStream) and sent >= behaviour.after_chunks:
                    self._count(plan, completion)
                    writer.close()  # flushes what was written, then FIN: incomplete chunked body
                    raise _Closed
                if isinstance(behaviour, MalformedChunk) and sent == behaviour.after_chunks:
                    writer.write(frame(b"data: {not json\n\n"))
                if isinstance(behaviour, StreamErrorEcho) and sent >= behaviour.after_chunks:
                    await error_event(completion)
                    return
                if isinstance(behaviour, Stall) and sent == behaviour.after_chunks:
                    await asyncio.sleep(behaviour.seconds)
                if self.chunk_delay_s and sent:
                    await asyncio.sleep(self.chunk_delay_s)
                writer.write(frame(data))
                await writer.drain()
                completion += tokens
                if tokens and written is not None and content_sent < len(plan.tokens):
                    written.append(plan.tokens[content_sent])
                    content_sent += 1
        except (ConnectionError, OSError):
            # The client went away mid-stream: it was sent what was generated so far.
            self._count(plan, completion)
            raise
        if isinstance(behaviour, StreamErrorEcho):  # N >= all events: the error comes last
            await error_event(completion)
            return
        if isinstance(behaviour, CutStream):  # N >= all events: still no [DONE], no terminator
            self._count(plan, completion)
            writer.close()
            raise _Closed
        # Counted before the end of the stream, so a client that saw the end sees the total.
        self._count(plan)
        if not isinstance(behaviour, NoDone):
            if anthropic:
                stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
                writer.write(frame(stop))
            else:
                writer.write(frame(b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
