"""Provider-neutral values passed along the request path.

`ChatRequest` is the validated OpenAI chat body; `Completion` and `Chunk` are what every
connector returns. Connectors translate to and from these; nothing above them sees a vendor shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(BaseModel):
    """One chat message. Unknown keys (e.g. `refusal`, `audio`) are kept and passed through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

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

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    # The body exactly as the caller sent it (set by `from_wire`): forwarded without a re-dump.
    _wire: dict[str, Any] | None = PrivateAttr(default=None)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
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
        for i, tool in enumerate(value or []):
            fn = tool.get("function")
            if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
                raise ValueError(
                    f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}"
                )
        return value

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChatRequest:
        """Validate a caller's JSON body and keep it for faithful, cheap forwarding."""
        request = cls.model_validate(data)
        request._wire = data
        return request

    def output_limit(self) -> int | None:
        """The caller's cap on generated tokens, whichever spelling it used."""
        return self.max_completion_tokens or self.max_tokens

    def passthrough(self) -> dict[str, Any]:
        """Generation parameters to forward upstream, exactly as the caller sent them."""
        if self._wire is None:
            body = self.model_dump(exclude_none=True, exclude={"model", "messages", "stream"})
            body.pop("stream_options", None)
            return body
        body = {
            k: v for k, v in self._wire.items() if v is not None and k not in _NOT_PASSED_THROUGH
        }
        for name in _COERCED & body.keys():
            body[name] = getattr(self, name)  # the validated value (e.g. 1 -> 1.0 is fine)
        return body

    def wire_messages(self) -> list[dict[str, Any]]:
        if self._wire is not None:
            return self._wire["messages"]  # type: ignore[no-any-return]
        return [m.model_dump(exclude_none=True) for m in self.messages]


_NOT_PASSED_THROUGH = frozenset({"model", "messages", "stream", "stream_options"})
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
