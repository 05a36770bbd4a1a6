"""Provider-neutral values passed along the request path.

`ChatRequest` is the validated OpenAI chat body; `Completion` and `Chunk` are what every
connector returns. Connectors translate to and from these; nothing above them sees a vendor shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from gateway.core import params
from gateway.core.errors import BadRequest

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(BaseModel):
    """One chat message. Unknown keys (e.g. `refusal`, `audio`) are kept and passed through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Message:
        if self.content is None and self.role != "assistant" and self.role != "function":
            raise ValueError(
                f"a {self.role} message needs `content` (a string or a list of content parts)"
            )
        if (
            self.role == "assistant"
            and self.content is None
            and not self.tool_calls
            and "function_call" not in (self.model_extra or {})
        ):
            raise ValueError("an assistant message needs `content` or `tool_calls`")
        if isinstance(self.content, list):
            if len(self.content) > params.MAX_CONTENT_PARTS:
                raise ValueError(
                    f"at most {params.MAX_CONTENT_PARTS} content parts per message; "
                    f"got {len(self.content)}"
                )
            for i, part in enumerate(self.content):
                problem = _media_problem(part)
                if problem:
                    raise ValueError(f"content[{i}]: {problem}")
        return self

    def text(self) -> str:
        """The message's text parts joined; images and audio parts are skipped."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        parts = [p.get("text", "") for p in self.content if p.get("type") == "text"]
        return "\n".join(str(p) for p in parts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The OpenAI `/v1/chat/completions` body, validated at the edge.

    Known fields are typed; other OpenAI parameters (`top_p`, `presence_penalty`, ...) are kept
    as extras and passed through unchanged to OpenAI-compatible backends.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=params.MAX_MESSAGES)
    # The body exactly as the caller sent it (set by `from_wire`): forwarded without a re-dump.
    _wire: dict[str, Any] | None = PrivateAttr(default=None)
    # Set on a continuation built by the gateway: the last (assistant) message is to be
    # continued, not answered (engines that support it; see `continued`).
    _prefill: bool = PrivateAttr(default=False)
    # Set by an ingress dialect other than OpenAI's (see `native`): the caller's body in its
    # own API's shape, and what of it has no OpenAI equivalent.
    _native: NativeBody | None = PrivateAttr(default=None)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=params.MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=params.MAX_OUTPUT_TOKENS)
    n: int | None = None
    stop: str | list[str] | None = Field(default=None, max_length=params.MAX_STOP_SEQUENCES)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    user: str | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError("only n=1 is supported; send separate requests for more choices")
        return value

    @field_validator("tools")
    @classmethod
    def _tools_are_functions(
        cls, value: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        if value is not None and len(value) > params.MAX_TOOLS:
            raise ValueError(f"at most {params.MAX_TOOLS} tools; got {len(value)}")
        for i, tool in enumerate(value or []):
            fn = tool.get("function")
            if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
                raise ValueError(
                    f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}"
                )
            # Checked here, as OpenAI does: a provider SDK's translation would fail on another
            # shape with an error that reads as the backend being down (502).
            if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
                raise ValueError(f"tools[{i}].function.parameters must be a JSON Schema object")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice_names_a_function(
        cls, value: str | dict[str, Any] | None
    ) -> str | dict[str, Any] | None:
        if (
            isinstance(value, dict)
            and "function" in value
            and not isinstance(value["function"], dict)
        ):
            raise ValueError("tool_choice.function must be an object: {'name': ...}")
        return value

    @field_validator("response_format")
    @classmethod
    def _json_schema_has_a_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        if not isinstance(value.get("type"), str):
            raise ValueError("response_format needs a `type`: text, json_object or json_schema")
        if value["type"] != "json_schema" and "json_schema" not in value:
            return value
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ValueError(
                "a `json_schema` response format needs `json_schema: {'name': ..., 'schema': "
                "{...}}` with the schema as a JSON Schema object (or use `{'type': "
                "'json_object'}` for JSON of any shape)"
            )
        if not isinstance(spec.get("name", ""), str):
            raise ValueError("response_format.json_schema.name must be a string")
        return value

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChatRequest:
        """Validate a caller's JSON body and keep it for faithful, cheap forwarding.

        Raises BadRequest for a key outside the chat parameter allow-list (naming it) and for
        a body nested deeper than `params.MAX_JSON_DEPTH`; pydantic's ValidationError else.
        """
        control, unknown = params.unknown_params(data.keys())
        if control:
            raise BadRequest(
                f"`{control[0]}` is not accepted: upstream URLs, credentials, headers and SDK "
                "options come only from the gateway's policy; remove it from the request",
                param=control[0],
                code="forbidden_parameter",
            )
        if unknown:
            raise BadRequest(
                f"unknown parameter `{unknown[0]}`: Stepgate forwards only documented chat "
                "completion parameters (see docs/security.md); remove it or check its spelling",
                param=unknown[0],
                code="unknown_parameter",
            )
        if params.json_depth_exceeds(data):
            raise BadRequest(
                f"request body nests deeper than {params.MAX_JSON_DEPTH} levels; flatten it",
                code="too_deep",
            )
        request = cls.model_validate(data)
        for where, schema in request.schemas():
            refs = params.remote_refs(schema)
            if refs:
                raise BadRequest(
                    f"{where}: `$ref` {refs[0][:80]!r} points outside the schema; the gateway "
                    "never fetches schemas: inline it under `$defs` and refer to it as "
                    "'#/$defs/...'",
                    param=where,
                    code="remote_ref",
                )
            problem = params.schema_shape_problem(schema)
            if problem:
                raise BadRequest(f"{where}: {problem}", param=where, code="invalid_schema")
            if params.schema_expansion(schema) > params.MAX_SCHEMA_EXPANSION:
                raise BadRequest(
                    f"{where}: the schema expands to more than {params.MAX_SCHEMA_EXPANSION} "
                    "nodes once its `$ref`s are inlined; share fewer definitions or flatten it",
                    param=where,
                    code="schema_too_large",
                )
        request._wire = data
        return request

    def schemas(self) -> list[tuple[str, Any]]:
        """(where, schema) for the response format's JSON schema and each tool's parameters."""
        found: list[tuple[str, Any]] = []
        fmt = self.response_format
        if fmt and isinstance(fmt.get("json_schema"), dict) and "schema" in fmt["json_schema"]:
            found.append(("response_format.json_schema.schema", fmt["json_schema"]["schema"]))
        for i, tool in enumerate(self.tools or ()):
            if "parameters" in tool["function"]:
                found.append((f"tools[{i}].function.parameters", tool["function"]["parameters"]))
        return found

    def has_remote_images(self) -> bool:
        """Whether an image part names a URL rather than carrying its data (`data:`)."""
        for message in self.messages:
            if isinstance(message.content, list):
                for part in message.content:
                    if part.get("type") == "image_url":
                        url = _image_url(part)
                        if isinstance(url, str) and not url.startswith("data:"):
                            return True
        return False

    def output_limit(self) -> int | None:
        """The caller's cap on generated tokens, whichever spelling it used."""
        return self.max_completion_tokens or self.max_tokens

    def passthrough(self) -> dict[str, Any]:
        """Generation parameters to forward upstream, exactly as the caller sent them.

        Only allow-listed chat parameters (`params.CHAT_PARAMS`), whichever way the request
        was built; each connector narrows this further to what its provider takes.
        """
        if self._wire is None:
            dumped = self.model_dump(exclude_none=True)
            return {k: v for k, v in dumped.items() if k in _PASSED_THROUGH}
        body = {k: v for k, v in self._wire.items() if v is not None and k in _PASSED_THROUGH}
        for name in _COERCED & body.keys():
            body[name] = getattr(self, name)  # the validated value (e.g. 1 -> 1.0 is fine)
        return body

    @property
    def prefill(self) -> bool:
        return self._prefill

    def as_prefill(self) -> ChatRequest:
        """This request, its final assistant message to be continued rather than answered
        (an Anthropic prefill; set once, by the ingress)."""
        self._prefill = True
        return self

    def with_native(self, native: NativeBody) -> ChatRequest:
        """This request, carrying the body it was translated from (set once, by the ingress)."""
        self._native = native
        return self

    def native(self, dialect: str) -> NativeBody | None:
        """The caller's own body when it came in as `dialect` (e.g. "anthropic"), for a
        connector that speaks that API natively and can send it unchanged."""
        native = self._native
        return native if native is not None and native.dialect == dialect else None

    @property
    def native_dialect(self) -> str:
        """The API the caller spoke ("openai" unless an ingress set a native body)."""
        return self._native.dialect if self._native is not None else "openai"

    @property
    def native_only(self) -> tuple[str, ...]:
        """What in the caller's body only a backend of its own API can take (e.g. Anthropic
        `cache_control`), each with where it was: such a request goes to no other backend."""
        return self._native.unmapped if self._native is not None else ()

    def continued(self, text: str, *, prefill: bool, sent_tokens: int) -> ChatRequest:
        """This request, asking the model to go on from `text` (an answer cut mid-stream).

        With `prefill` the answer so far is the final assistant message, to be continued by
        the engine (vLLM/SGLang `continue_final_message`, Anthropic's prefill); without, it is
        followed by an instruction to continue. `max_tokens` shrinks by what was sent."""
        messages = [*self.wire_messages(), {"role": "assistant", "content": text}]
        if not prefill:
            messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
        data = {**(self._wire or self.model_dump(exclude_none=True)), "messages": messages}
        for name in ("max_tokens", "max_completion_tokens"):
            if isinstance(data.get(name), int):
                data[name] = max(1, data[name] - sent_tokens)
        request = type(self).model_validate(data)
        request._wire = data
        request._prefill = prefill
        if self._native is not None:
            request._native = self._native.continued(text, prefill=prefill)
        return request

    def wire_messages(self) -> list[dict[str, Any]]:
        if self._wire is not None:
            return self._wire["messages"]  # type: ignore[no-any-return]
        return [m.model_dump(exclude_none=True) for m in self.messages]


@dataclass(frozen=True, slots=True)
class NativeBody:
    """A request body in a non-OpenAI API's own shape (`dialect`), kept beside its OpenAI
    translation. `unmapped` names what the translation could not carry (as `where: feature`);
    a connector for that API sends `body` instead of translating, so nothing is lost."""

    dialect: str
    body: dict[str, Any]
    unmapped: tuple[str, ...] = ()

    def continued(self, text: str, *, prefill: bool) -> NativeBody:
        """The body asking the model to go on from `text` (see `ChatRequest.continued`)."""
        messages = [*self.body.get("messages", ()), {"role": "assistant", "content": text}]
        if not prefill:
            messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
        return NativeBody(self.dialect, {**self.body, "messages": messages}, self.unmapped)


CONTINUE_INSTRUCTION = (
    "Your previous message was cut off. Continue it from exactly where it stopped, "
    "without repeating any of it and without any preamble."
)


def _image_url(part: dict[str, Any]) -> Any:
    """An `image_url` part's URL, whether sent as `{"url": ...}` or as a bare string."""
    image = part.get("image_url")
    return image.get("url") if isinstance(image, dict) else image


def _media_problem(part: Any) -> str | None:
    """Why a content part is refused, or None. The gateway never fetches a caller's URL: some
    SDK paths download `http://` images and URL-like file ids on the gateway itself."""
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        return "each content part must be an object with a string `type`"
    kind = part["type"]
    if kind == "image_url":
        url = _image_url(part)
        if not isinstance(url, str) or not url.startswith(("https://", "data:")):
            return "image_url.url must be an https:// URL or a data: URL"
    elif kind == "file":
        file = part.get("file")
        if not isinstance(file, dict):
            return "file must be an object with `file_id` or `file_data`"
        file_id = file.get("file_id")
        if isinstance(file_id, str) and file_id.lower().startswith(("http:", "https:", "www.")):
            return "file.file_id must be an uploaded file's id, not a URL; send file_data instead"
        data = file.get("file_data")
        if data is not None and not (isinstance(data, str) and data.startswith("data:")):
            return "file.file_data must be a data: URL"
    return None


_PASSED_THROUGH = params.CHAT_PARAMS - {"model", "messages", "stream", "stream_options"}
# Typed scalars whose validated value is forwarded (pydantic may have coerced the raw one).
_COERCED = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "seed",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
    }
)


# Far beyond any context window: an upstream reporting more tokens than this sent junk (a
# count that would overflow the ledger's 64-bit columns or the JSON renderer).
MAX_USAGE_TOKENS = 1 << 31


def usage_count(value: Any, name: str) -> int:
    """A token count from an upstream's usage block: a whole number in 0..MAX_USAGE_TOKENS.
    Raises ValueError for anything else (the connector reports a malformed reply)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"usage.{name} is {type(value).__name__}, not a number")
    if isinstance(value, float) and not (value.is_integer() and value <= MAX_USAGE_TOKENS):
        raise ValueError(f"usage.{name} {value!r} is not a whole token count")
    count = int(value)
    if not 0 <= count <= MAX_USAGE_TOKENS:
        raise ValueError(f"usage.{name} {count} is out of range 0..{MAX_USAGE_TOKENS}")
    return count


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token with its log-probability and, when returned, the alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished (non-streamed, or fully buffered) answer from one backend call."""

    id: str
    model: str
    content: str | None
    finish_reason: str | None
    usage: Usage
    tool_calls: tuple[dict[str, Any], ...] = ()
    logprobs: tuple[TokenLogprob, ...] | None = None
    created: int = 0
    # Extra message keys the upstream returned (e.g. `refusal`), passed back unchanged.
    message_extras: dict[str, Any] = field(default_factory=dict)
    # The answer's content blocks exactly as a native Anthropic backend returned them
    # (thinking, redacted_thinking, text, tool_use, ...): relayed unchanged by the Anthropic
    # ingress; other ingresses render `content` and `tool_calls`.
    blocks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed delta. `usage` is set on the final usage chunk only."""

    id: str
    model: str
    role: str | None = None
    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    created: int = 0
    # A native Anthropic backend's stream event for a block with no OpenAI equivalent
    # (`content_block_start` / `_delta` / `_stop` of a thinking block), with the upstream's
    # block index: relayed by the Anthropic ingress, skipped by the others.
    block_event: dict[str, Any] | None = None
