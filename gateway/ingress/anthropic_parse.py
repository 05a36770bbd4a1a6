"""An Anthropic Messages body -> the internal (OpenAI-shaped) `ChatRequest`. Pure.

What maps is translated: `system`, text and image blocks, `tool_use` / `tool_result`, tools
and `tool_choice`, `max_tokens`, `stop_sequences`, sampling, `metadata`. What has no OpenAI
equivalent (`cache_control`, thinking blocks and the `thinking` setting, documents, server
tools, file sources, `service_tier`) is never dropped: it is named in the request's
`native_only`, and the caller's body travels beside the translation (`NativeBody`), so only a
native Anthropic backend gets such a step, unchanged; any other backend is refused with a 400.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from gateway.core import params
from gateway.core.errors import BadRequest
from gateway.core.types import ChatRequest, NativeBody

DIALECT = "anthropic"

# Top-level keys, by how they are handled.
_MAPPED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
    }
)
_NATIVE_ONLY = frozenset({"thinking", "service_tier", "context_management"})
# Would have the model reach servers or state the caller picks: the policy alone chooses that.
_FORBIDDEN = frozenset({"mcp_servers", "container"})

_USER_BLOCKS = frozenset({"text", "image", "tool_result", "document", "search_result"})
_ASSISTANT_BLOCKS = frozenset(
    {
        "text",
        "tool_use",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
    }
)
# Block types carried only natively (no OpenAI form).
_NATIVE_BLOCKS = frozenset(
    {
        "document",
        "search_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
    }
)


def parse_messages(data: Any) -> ChatRequest:
    """Validate a decoded Messages body and translate it; BadRequest names what is wrong."""
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    _check_keys(data)
    if params.json_depth_exceeds(data):
        raise BadRequest(
            f"request body nests deeper than {params.MAX_JSON_DEPTH} levels; flatten it",
            code="too_deep",
        )
    unmapped: list[str] = [f"{key}" for key in sorted(_NATIVE_ONLY & data.keys())]
    wire: dict[str, Any] = {"model": _model(data)}
    wire["max_tokens"] = _max_tokens(data)
    messages = _system(data.get("system"), unmapped)
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest(
            "messages: a non-empty list of {role, content} messages is required",
            param="messages",
        )
    for i, message in enumerate(raw):
        messages += _message(message, f"messages.{i}", unmapped)
    wire["messages"] = messages
    _sampling(data, wire)
    _tools(data, wire, unmapped)
    metadata, native_metadata = _metadata(data.get("metadata"), wire)
    if metadata:
        wire["metadata"] = metadata
    if "stream" in data:
        if not isinstance(data["stream"], bool):
            raise BadRequest("stream: must be true or false", param="stream")
        wire["stream"] = data["stream"]
    try:
        request = ChatRequest.from_wire(wire)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise BadRequest(f"{loc} (as translated from the Messages body): {msg}", param=loc) from exc
    body = {k: v for k, v in data.items() if k != "metadata"}
    if native_metadata:
        body["metadata"] = native_metadata
    native = NativeBody(DIALECT, body, tuple(unmapped))
    if raw[-1].get("role") == "assistant":
        request = request.as_prefill()  # Anthropic continues a final assistant turn
    return request.with_native(native)


def _check_keys(data: dict[str, Any]) -> None:
    for key in data:
        if key in _FORBIDDEN:
            raise BadRequest(
                f"`{key}` is not accepted: the servers and state a model reaches come only "
                "from the gateway's policy; remove it from the request",
                param=key,
                code="forbidden_parameter",
            )
        if key not in _MAPPED and key not in _NATIVE_ONLY:
            raise BadRequest(
                f"unknown parameter `{key}`: Stepgate takes the documented Messages "
                "parameters (see docs/anthropic.md); remove it or check its spelling",
                param=key,
                code="unknown_parameter",
            )


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(
            "model: required; send `auto` to let the router decide, or a route or alias name",
            param="model",
        )
    return model


def _max_tokens(data: dict[str, Any]) -> int:
    value = data.get("max_tokens")
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= params.MAX_OUTPUT_TOKENS
    ):
        raise BadRequest(
            f"max_tokens: required, a whole number from 1 to {params.MAX_OUTPUT_TOKENS}",
            param="max_tokens",
        )
    return value


def _system(system: Any, unmapped: list[str]) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise BadRequest("system: a string or a list of text blocks", param="system")
    texts: list[str] = []
    for j, block in enumerate(system):
        where = f"system.{j}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise BadRequest(f"{where}: system blocks must be text blocks", param=where)
        texts.append(_text(block, where))
        _marks(block, where, unmapped)
    return [{"role": "system", "content": "\n\n".join(texts)}]


def _message(message: Any, where: str, unmapped: list[str]) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        raise BadRequest(f"{where}: each message must be an object", param=where)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise BadRequest(
            f"{where}.role: must be `user` or `assistant` (the system prompt goes in the "
            "top-level `system`)",
            param=f"{where}.role",
        )
    extra = set(message) - {"role", "content"}
    if extra:
        key = sorted(extra)[0]
        raise BadRequest(f"{where}.{key}: unknown message field", param=f"{where}.{key}")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise BadRequest(
            f"{where}.content: a string or a list of content blocks", param=f"{where}.content"
        )
    if len(content) > params.MAX_CONTENT_PARTS:
        raise BadRequest(
            f"{where}.content: at most {params.MAX_CONTENT_PARTS} blocks; got {len(content)}",
            param=f"{where}.content",
        )
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in allowed:
            raise BadRequest(
                f"{where}.content.{j}: a {role} message takes blocks of type "
                f"{', '.join(sorted(allowed))}; got {kind!r}",
                param=f"{where}.content.{j}",
            )
    if role == "user":
        return _user(content, where, unmapped)
    return _assistant(content, where, unmapped)


def _user(content: list[dict[str, Any]], where: str, unmapped: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        _marks(block, at, unmapped)
        kind = block["type"]
        if kind == "tool_result":
            out.append(_tool_result(block, at, unmapped))
        elif kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            part = _image(block.get("source"), at, unmapped)
            if part is not None:
                parts.append(part)
        else:
            unmapped.append(f"{at}: {kind} block")
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    elif not out:
        out.append({"role": "user", "content": ""})  # only native blocks: the form stays valid
    return out


def _assistant(
    content: list[dict[str, Any]], where: str, unmapped: list[str]
) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        _marks(block, at, unmapped)
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            calls.append(_tool_use(block, at))
        else:
            unmapped.append(f"{at}: {kind} block")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
        if not texts:
            message["content"] = None
    return [message]


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise BadRequest(f"{where}.text: a text block needs a string `text`", param=where)
    return text


def _marks(block: dict[str, Any], where: str, unmapped: list[str]) -> None:
    """Note block keys only Anthropic takes (prompt-cache marks, citations settings)."""
    for key in ("cache_control", "citations"):
        if block.get(key) is not None:
            unmapped.append(f"{where}: {key}")


def _image(source: Any, where: str, unmapped: list[str]) -> dict[str, Any] | None:
    if not isinstance(source, dict):
        raise BadRequest(f"{where}.source: an image block needs a `source`", param=where)
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise BadRequest(
                f"{where}.source: a base64 image needs `media_type` and `data`", param=where
            )
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise BadRequest(f"{where}.source.url: must be an https:// URL", param=where)
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "file":
        unmapped.append(f"{where}: file image source")
        return None
    raise BadRequest(
        f"{where}.source.type: base64, url or file; got {kind!r}", param=f"{where}.source"
    )


def _tool_use(block: dict[str, Any], where: str) -> dict[str, Any]:
    tid, name, args = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(tid, str) or not isinstance(name, str) or not isinstance(args, dict):
        raise BadRequest(
            f"{where}: a tool_use block needs string `id` and `name` and an object `input`",
            param=where,
        )
    return {
        "id": tid,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(args).decode()},
    }


def _tool_result(block: dict[str, Any], where: str, unmapped: list[str]) -> dict[str, Any]:
    tid = block.get("tool_use_id")
    if not isinstance(tid, str) or not tid:
        raise BadRequest(f"{where}.tool_use_id: required", param=f"{where}.tool_use_id")
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for k, inner in enumerate(content):
            at = f"{where}.content.{k}"
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind == "text":
                texts.append(_text(inner, at))
                _marks(inner, at, unmapped)
            elif kind in ("image", "document", "search_result"):
                unmapped.append(f"{at}: {kind} in a tool result")
            else:
                raise BadRequest(
                    f"{at}: a tool result holds text, image, document or search_result "
                    f"blocks; got {kind!r}",
                    param=at,
                )
        text = "\n".join(texts)
    else:
        raise BadRequest(f"{where}.content: a string or a list of blocks", param=f"{where}.content")
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": tid, "content": text}


def _sampling(data: dict[str, Any], wire: dict[str, Any]) -> None:
    for name, top in (("temperature", 1.0), ("top_p", 1.0)):
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
            raise BadRequest(f"{name}: a number from 0 to {top:g}", param=name)
        wire[name] = value
    top_k = data.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise BadRequest("top_k: a whole number, 0 or more", param="top_k")
        wire["top_k"] = top_k
    stops = data.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise BadRequest("stop_sequences: a list of non-empty strings", param="stop_sequences")
        if len(stops) > params.MAX_STOP_SEQUENCES:
            raise BadRequest(
                f"stop_sequences: at most {params.MAX_STOP_SEQUENCES}; got {len(stops)}",
                param="stop_sequences",
            )
        if stops:
            wire["stop"] = stops


def _tools(data: dict[str, Any], wire: dict[str, Any], unmapped: list[str]) -> None:
    tools = data.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("tools: a list of tool definitions", param="tools")
        functions = []
        for i, tool in enumerate(tools):
            where = f"tools.{i}"
            if not isinstance(tool, dict):
                raise BadRequest(f"{where}: a tool must be an object", param=where)
            _marks(tool, where, unmapped)
            kind = tool.get("type", "custom")
            if kind != "custom":
                unmapped.append(f"{where}: server tool {kind!r}")
                continue
            name, schema = tool.get("name"), tool.get("input_schema")
            if not isinstance(name, str) or not name or not isinstance(schema, dict):
                raise BadRequest(
                    f"{where}: a tool needs a string `name` and an object `input_schema` "
                    "(a JSON Schema)",
                    param=where,
                )
            function: dict[str, Any] = {"name": name, "parameters": schema}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            functions.append({"type": "function", "function": function})
        if functions:
            wire["tools"] = functions
    choice = data.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        wire["tool_choice"] = "auto"
    elif kind == "any":
        wire["tool_choice"] = "required"
    elif kind == "none":
        wire["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        wire["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise BadRequest(
            "tool_choice: {type: auto | any | none} or {type: tool, name: ...}",
            param="tool_choice",
        )
    if choice.get("disable_parallel_tool_use") is True and "tools" in wire:
        wire["parallel_tool_calls"] = False


def _metadata(metadata: Any, wire: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Stepgate's hint keys (`step_kind`, `latency_budget_ms`, ...) and any routing keys as
    the request's metadata; `user_id` as the end user. Returns the routing metadata and the
    metadata Anthropic itself takes (`user_id` only)."""
    if metadata is None:
        return {}, None
    if not isinstance(metadata, dict):
        raise BadRequest("metadata: an object", param="metadata")
    out: dict[str, str] = {}
    native: dict[str, Any] | None = None
    for key, value in metadata.items():
        if key == "user_id":
            if value is not None:
                if not isinstance(value, str):
                    raise BadRequest("metadata.user_id: a string", param="metadata.user_id")
                wire["user"] = value
                native = {"user_id": value}
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadRequest(f"metadata.{key}: a string or a number", param=f"metadata.{key}")
        out[key] = str(value)
    return out, native
