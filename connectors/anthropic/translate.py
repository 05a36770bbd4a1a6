"""Pure translation between our types and Anthropic's Messages API (`POST /v1/messages`).

`request_body` sends the caller's own Anthropic body when the request came in as one
(`ChatRequest.native("anthropic")`), else translates the OpenAI-shaped request: system and
developer messages to `system`, tool calls and results to `tool_use` / `tool_result` blocks,
consecutive same-role turns merged. `completion_from` reads a reply, `StreamParser` the SSE
events of a stream, both into provider-neutral values with usage (cache reads and writes count
as prompt tokens; reads are also `cached_tokens`). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from connectors.anthropic.config import AnthropicBackend
from gateway.core.errors import ProviderRejected
from gateway.core.types import ChatRequest, Chunk, Completion, Message, Usage, usage_count

# Anthropic requires `max_tokens`; this is sent when the caller gave no limit.
DEFAULT_MAX_TOKENS: Final = 4096
# The most any Claude model generates in one answer without a beta header (Sonnet 4.x, Haiku
# 4.5, Opus 4.5): a larger limit could only be refused.
MAX_TOKENS: Final = 64_000

FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The HTTP status Anthropic gives each error type: a stream's `error` event carries only the
# type, and is mapped as if the request had failed with that status.
ERROR_STATUS: Final = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# Caller parameters with the same name and meaning in the Messages API.
_SAME_PARAMS: Final = ("top_p", "top_k", "thinking", "output_config")
_EMPTY_SCHEMA: Final = {"type": "object", "properties": {}}
_NO_CHUNKS: tuple[Chunk, ...] = ()


class StreamErrorEvent(Exception):
    """An `error` event in a stream: `status` is what Anthropic answers that error type with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def request_body(
    backend: AnthropicBackend, request: ChatRequest, *, stream: bool
) -> dict[str, Any]:
    """The Messages body for `request`. Raises ProviderRejected (a 400 for the caller,
    recorded as this backend's refused attempt) for tool-call arguments that are not a JSON
    object and for content the Messages API cannot take."""
    native = request.native("anthropic")
    if native is not None:
        body = {**native.body, "model": backend.model, "stream": stream}
        if request.prefill:
            # A continuation: the body ends with the text so far as the assistant's turn.
            body["messages"] = _trim_final_assistant(list(body.get("messages") or ()))
            limit = request.output_limit()
            if limit:
                body["max_tokens"] = limit  # shrunk by what was already sent
        return body
    given = request.passthrough()
    system, messages = _messages(request.messages)
    limit = request.output_limit()
    max_tokens = min(limit or DEFAULT_MAX_TOKENS, MAX_TOKENS)
    body = {"model": backend.model, "max_tokens": max_tokens, "messages": messages}
    if system:
        body["system"] = system
    temperature = given.get("temperature")
    if temperature is not None:
        body["temperature"] = min(float(temperature), 1.0)  # OpenAI's 0..2, Anthropic's 0..1
    for name in _SAME_PARAMS:
        value = given.get(name)
        if value is not None:
            body[name] = value
    if "temperature" in body:
        # Newer Claude models refuse both; OpenAI callers often send top_p=1 beside a temperature.
        body.pop("top_p", None)
    budget = _thinking_budget(body.get("thinking"))
    if budget is not None and limit is None and budget >= max_tokens:
        body["max_tokens"] = min(budget + DEFAULT_MAX_TOKENS, MAX_TOKENS)  # room for the answer
    stop = given.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    user = given.get("user") or given.get("safety_identifier")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    tools = request.tools
    if tools:
        body["tools"] = [_tool(t["function"]) for t in tools]
        choice = _tool_choice(request.tool_choice, parallel=request.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    body["stream"] = stream
    return body


def continues_after_whitespace(request: ChatRequest) -> bool:
    """Whether this continuation's text so far ends in whitespace, which the Messages API
    refuses at the end of a prefill and `request_body` strips: the answer's own leading
    whitespace then repeats what the caller already has, and is dropped."""
    if not request.prefill:
        return False
    native = request.native("anthropic")
    if native is not None:
        messages = native.body.get("messages") or ()
        last: Any = messages[-1] if messages else None
        content = last.get("content") if isinstance(last, dict) else None
    else:
        content = request.messages[-1].content
    if isinstance(content, list):
        tail = content[-1] if content else None
        content = tail.get("text") if isinstance(tail, dict) else None
    return isinstance(content, str) and content != content.rstrip()


# -- the request ------------------------------------------------------------------------------


def _messages(source: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(source):
        role = message.role
        if role == "user":
            _append(out, "user", _content(message.content, f"messages[{i}].content"))
        elif role == "assistant":
            _append(out, "assistant", _assistant(message, i))
        elif role == "tool":
            if not message.tool_call_id:
                raise ProviderRejected(
                    f"messages[{i}]: a tool message needs `tool_call_id`",
                    code="missing_tool_call_id",
                )
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            content = _content(message.content, f"messages[{i}].content")
            if content:
                result["content"] = content
            _append(out, "user", [result])
        elif role in ("system", "developer"):
            text = message.text()
            if text:
                system.append(text)
        else:
            raise ProviderRejected(
                f"messages[{i}]: legacy `function` messages cannot be sent to Anthropic's "
                "Messages API; use `tools` and `tool` messages",
                code="unsupported_content",
            )
    if out and out[-1]["role"] == "assistant":
        out = _trim_final_assistant(out)
    return "\n\n".join(system), out


def _append(out: list[dict[str, Any]], role: str, content: str | list[dict[str, Any]]) -> None:
    """Add a turn; one with the same role as the last merges into it (Anthropic alternates)."""
    if not content:
        return  # Anthropic refuses empty turns and empty text blocks
    if out and out[-1]["role"] == role:
        last = out[-1]
        out[-1] = {"role": role, "content": [*_blocks(last["content"]), *_blocks(content)]}
        return
    out.append({"role": role, "content": content})


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A user or tool message's content: a string as is, parts as Anthropic blocks."""
    if content is None or isinstance(content, str):
        return content or ""
    blocks = []
    for j, part in enumerate(content):
        block = _part(part, f"{where}[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _part(part: dict[str, Any], where: str) -> dict[str, Any] | None:
    kind = part.get("type")
    block: dict[str, Any]
    if kind == "text":
        text = part.get("text")
        if not text:
            return None
        block = {"type": "text", "text": text}
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        block = {"type": "image", "source": _source(url, where)}
    elif kind == "file":
        file = part.get("file") or {}
        data = file.get("file_data")
        if not isinstance(data, str):
            raise ProviderRejected(
                f"{where}: Anthropic's Messages API cannot take an uploaded file id; send the "
                "file inline as `file_data` (a data: URL)",
                code="unsupported_content",
            )
        block = {"type": "document", "source": _source(data, where)}
    else:
        raise ProviderRejected(
            f"{where}: Anthropic's Messages API takes text, image and document parts, not {kind!r}",
            code="unsupported_content",
        )
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _source(url: Any, where: str) -> dict[str, Any]:
    if isinstance(url, str) and url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if sep and encoding == "base64" and media_type:
            return {"type": "base64", "media_type": media_type, "data": data}
        raise ProviderRejected(
            f"{where}: a data: URL must be base64 with a media type (data:image/png;base64,...)",
            code="unsupported_content",
        )
    if isinstance(url, str) and url.startswith("https://"):
        return {"type": "url", "url": url}  # fetched by Anthropic, never by the gateway
    raise ProviderRejected(
        f"{where}: the URL must be https:// or a data: URL", code="unsupported_content"
    )


def _assistant(message: Message, i: int) -> str | list[dict[str, Any]]:
    content = message.content
    if isinstance(content, str) and not message.tool_calls:
        return content
    blocks: list[dict[str, Any]]
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}] if content else []
    else:
        blocks = [
            {"type": "text", "text": part["text"]}
            for part in content or ()
            if part.get("type") == "text" and part.get("text")
        ]
    for j, call in enumerate(message.tool_calls or ()):
        where = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function")
        if not isinstance(fn, dict) or not fn.get("name") or not call.get("id"):
            raise ProviderRejected(
                f"{where}: a tool call needs `id` and `function: {{name, arguments}}`",
                code="unsupported_content",
            )
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": fn["name"],
                "input": _arguments(fn.get("arguments"), f"{where}.function.arguments"),
            }
        )
    return blocks


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    """A tool call's `arguments` (JSON text, as OpenAI sends them) as the object they encode."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw) if isinstance(raw, str | bytes) else None
    except orjson.JSONDecodeError as exc:
        raise ProviderRejected(
            f"{where} is not valid JSON: {exc}", code="invalid_tool_arguments"
        ) from exc
    if not isinstance(value, dict):
        raise ProviderRejected(f"{where} must be a JSON object", code="invalid_tool_arguments")
    return value


def _trim_final_assistant(messages: list[Any]) -> list[Any]:
    """`messages` with the final assistant turn's trailing whitespace removed (the Messages API
    refuses a prefill that ends in whitespace), and the turn dropped if nothing is left. The
    input's dicts are not changed (they may be the caller's)."""
    if not messages or not isinstance(messages[-1], dict):
        return messages
    last = messages[-1]
    if last.get("role") != "assistant":
        return messages
    content = last.get("content")
    if isinstance(content, str):
        text = content.rstrip()
        messages[-1] = {**last, "content": text}
        if not text:
            messages.pop()
    elif isinstance(content, list) and content:
        tail = content[-1]
        if isinstance(tail, dict) and tail.get("type") == "text":
            text = str(tail.get("text") or "").rstrip()
            blocks = content[:-1] + ([{**tail, "text": text}] if text else [])
            messages[-1] = {**last, "content": blocks}
            if not blocks:
                messages.pop()
    return messages


def _tool(fn: dict[str, Any]) -> dict[str, Any]:
    schema = fn.get("parameters") or _EMPTY_SCHEMA
    if "type" not in schema:
        schema = {"type": "object", **schema}  # Anthropic requires an object schema
    tool: dict[str, Any] = {"name": fn["name"], "input_schema": schema}
    if fn.get("description"):
        tool["description"] = fn["description"]
    return tool


def _tool_choice(choice: Any, *, parallel: bool | None) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if name:
            out = {"type": "tool", "name": name}
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def _thinking_budget(thinking: Any) -> int | None:
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


# -- the answer -------------------------------------------------------------------------------


def usage_from(raw: Any) -> Usage:
    """Anthropic usage: input, cache-read and cache-write tokens are all prompt tokens."""
    if not isinstance(raw, dict):
        return Usage()
    read = usage_count(raw.get("cache_read_input_tokens"), "cache_read_input_tokens")
    written = usage_count(raw.get("cache_creation_input_tokens"), "cache_creation_input_tokens")
    return Usage(
        prompt_tokens=usage_count(raw.get("input_tokens"), "input_tokens") + read + written,
        completion_tokens=usage_count(raw.get("output_tokens"), "output_tokens"),
        cached_tokens=read,
    )


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    if not isinstance(stop_reason, str):
        raise ValueError(f"stop_reason is {type(stop_reason).__name__}, not a string")
    return FINISH_REASONS.get(stop_reason, "stop")


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A `tool_use` block as an OpenAI tool call (arguments as JSON text)."""
    return {
        "id": _string(block["id"], "tool_use.id"),
        "type": "function",
        "function": {
            "name": _string(block["name"], "tool_use.name"),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def completion_from(body: Any, *, created: int = 0, trim_leading: bool = False) -> Completion:
    """A Messages reply as a Completion; ValueError when it does not have that shape.

    `trim_leading`: drop the answer's leading whitespace (see `continues_after_whitespace`).
    """
    try:
        blocks = body["content"]
        if not isinstance(blocks, list):
            raise ValueError("content is not a list")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in blocks:
            kind = block["type"]
            if kind == "text":
                texts.append(_string(block["text"], "text"))
            elif kind == "tool_use":
                calls.append(tool_call(block))
        content = "".join(texts) if texts or not calls else None
        if trim_leading and content:
            content = content.lstrip()
        return Completion(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or ""),
            content=content,
            finish_reason=finish_reason(body.get("stop_reason")),
            usage=usage_from(body.get("usage")),
            tool_calls=tuple(calls),
            created=created,
            blocks=tuple(blocks),
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} is {type(value).__name__}, not a string")
    return value


@dataclass(slots=True)
class _ToolBlock:
    ordinal: int  # among the answer's tool calls: the OpenAI stream's `index`
    start_input: Any  # the input on content_block_start (Anthropic sends `{}`, then fragments)
    streamed: bool = False  # whether a non-empty argument fragment was sent


class StreamParser:
    """A Messages stream's events (decoded `data:` payloads), in order, as Chunks.

    message_start gives the role chunk; text deltas content chunks; a `tool_use` block its
    OpenAI-shaped tool call (index: its ordinal among the answer's tool calls) and argument
    fragments; every other block (thinking, redacted_thinking, server tools) is relayed as raw
    events in `Chunk.block_event`. message_delta gives the finish chunk, then the usage chunk.
    `finished` tells whether a stop reason arrived, `stopped` whether message_stop did. An
    `error` event raises StreamErrorEvent; an event without the documented shape raises
    KeyError, TypeError or ValueError.
    """

    __slots__ = (
        "_blocks",
        "_cache_read",
        "_cache_written",
        "_input",
        "_output",
        "_tools",
        "_trim",
        "created",
        "finished",
        "id",
        "model",
        "stopped",
    )

    def __init__(self, *, created: int = 0, trim_leading: bool = False) -> None:
        self.id = ""
        self.model = ""
        self.created = created
        self.finished = False
        self.stopped = False
        self._trim = trim_leading
        self._input = self._cache_read = self._cache_written = self._output = 0
        self._tools: dict[int, _ToolBlock] = {}  # by the upstream's block index
        self._blocks: set[int] = set()  # indexes of blocks relayed as raw events

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self._input + self._cache_read + self._cache_written,
            completion_tokens=self._output,
            cached_tokens=self._cache_read,
        )

    def feed(self, event: Any) -> tuple[Chunk, ...]:
        kind = event["type"]
        if kind == "content_block_delta":
            index = event["index"]
            delta = event["delta"]
            dtype = delta["type"]
            if index in self._blocks:
                return (self._relay(event),)
            if dtype == "text_delta":
                return self._text(_string(delta["text"], "delta.text"))
            if dtype == "input_json_delta":
                fragment = _string(delta["partial_json"], "delta.partial_json")
                tool = self._tools[index]
                if not fragment:
                    return _NO_CHUNKS
                tool.streamed = True
                call = {"index": tool.ordinal, "function": {"arguments": fragment}}
                return (self._tool_chunk(call),)
            return (self._relay(event),)  # e.g. citations_delta: no OpenAI equivalent
        if kind == "ping":
            return _NO_CHUNKS
        if kind == "content_block_start":
            return self._start(event)
        if kind == "content_block_stop":
            return self._stop(event["index"], event)
        if kind == "message_start":
            message = event["message"]
            self.id = str(message.get("id") or "")
            self.model = str(message.get("model") or "")
            self._count(message.get("usage"))
            return (Chunk(self.id, self.model, role="assistant", content="", created=self.created),)
        if kind == "message_delta":
            self._count(event.get("usage"))
            reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
            usage = Chunk(self.id, self.model, usage=self.usage, created=self.created)
            if reason is None:
                return (usage,)
            self.finished = True
            return (Chunk(self.id, self.model, finish_reason=reason, created=self.created), usage)
        if kind == "message_stop":
            self.stopped = True
            return _NO_CHUNKS
        if kind == "error":
            error = event.get("error")
            if isinstance(error, dict):
                kind, message = error.get("type"), error.get("message")
            else:
                kind, message = None, error
            raise StreamErrorEvent(ERROR_STATUS.get(str(kind), 500), str(message or "stream error"))
        return _NO_CHUNKS  # event types added later are to be ignored (Anthropic's versioning)

    def _text(self, text: str) -> tuple[Chunk, ...]:
        if self._trim:
            text = text.lstrip()
            if not text:
                return _NO_CHUNKS
            self._trim = False
        if not text:
            return _NO_CHUNKS
        return (Chunk(self.id, self.model, content=text, created=self.created),)

    def _start(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        index = event["index"]
        block = event["content_block"]
        kind = block["type"]
        if kind == "text":
            return self._text(_string(block.get("text") or "", "text"))
        if kind == "tool_use":
            ordinal = len(self._tools)
            self._tools[index] = _ToolBlock(ordinal, block.get("input"))
            head = {
                "index": ordinal,
                "id": _string(block["id"], "tool_use.id"),
                "type": "function",
                "function": {"name": _string(block["name"], "tool_use.name"), "arguments": ""},
            }
            return (self._tool_chunk(head),)
        self._blocks.add(index)
        return (self._relay(event),)

    def _stop(self, index: Any, event: dict[str, Any]) -> tuple[Chunk, ...]:
        if index in self._blocks:
            return (self._relay(event),)
        tool = self._tools.get(index)
        if tool is None or tool.streamed:
            return _NO_CHUNKS
        # A tool called without arguments streams no JSON: its arguments are still an object.
        arguments = orjson.dumps(tool.start_input or {}).decode()
        return (self._tool_chunk({"index": tool.ordinal, "function": {"arguments": arguments}}),)

    def _count(self, raw: Any) -> None:
        """Usage so far: message_start's, then message_delta's (cumulative) where given."""
        if not isinstance(raw, dict):
            return
        if raw.get("input_tokens") is not None:
            self._input = usage_count(raw["input_tokens"], "input_tokens")
        if raw.get("cache_read_input_tokens") is not None:
            self._cache_read = usage_count(raw["cache_read_input_tokens"], "cache_read")
        if raw.get("cache_creation_input_tokens") is not None:
            self._cache_written = usage_count(raw["cache_creation_input_tokens"], "cache_write")
        if raw.get("output_tokens") is not None:
            self._output = usage_count(raw["output_tokens"], "output_tokens")

    def _tool_chunk(self, call: dict[str, Any]) -> Chunk:
        return Chunk(self.id, self.model, tool_calls=(call,), created=self.created)

    def _relay(self, event: dict[str, Any]) -> Chunk:
        return Chunk(self.id, self.model, created=self.created, block_event=event)
