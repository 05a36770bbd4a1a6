"""Pure translation for SGLang's native `POST /generate`, used for token confidence.

`/generate` takes text, not messages: the policy's `generate_template` renders the chat (see
`gateway.policy.models.GenerateTemplate`). A request the template cannot express (a role it has
no format for, tools, images, a prefill, `json_object`) is left to the OpenAI endpoint
(`prompt` returns None). The answer's `meta_info` carries `output_token_logprobs` as
`[logprob, token_id, text]` triples (text only with `return_text_in_logprobs`), usage as
`prompt_tokens` / `completion_tokens` / `cached_tokens`, and `finish_reason` as an object:
`{"type": "stop", "matched": ...}`, `{"type": "length", "length": N}`, `{"type": "abort",
"message", "status_code"}`, or null while running. A stream sends the cumulative text in every
event (SGLang's default; `--incremental-streaming-output` is not supported) and `StreamState`
turns it into deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.dllm.config import DllmBackend, GenerateTemplate
from connectors.openai_wire.parse import MalformedReply
from gateway.core.types import ChatRequest, Chunk, Completion, TokenLogprob, Usage, usage_count

# Sampling parameters a caller may send that `/generate`'s `sampling_params` takes by the same
# name. `seed` is not among them (SGLang's `sampling_seed` is refused by some dLLM algorithms).
SAMPLING_PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
)
_FINISH = {"stop": "stop", "length": "length"}


class GenerateAborted(Exception):
    """SGLang finished the request with `{"type": "abort"}`: its message and status code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def prompt(template: GenerateTemplate, request: ChatRequest) -> str | None:
    """The request rendered as `/generate` text, or None when only the OpenAI endpoint can
    take it (see the module docstring)."""
    if request.tools or request.prefill or _json_object(request):
        return None
    parts: list[str] = []
    has_system = any(m.role in ("system", "developer") for m in request.messages)
    if template.default_system is not None and template.system is not None and not has_system:
        parts.append(template.system.replace("{content}", template.default_system))
    formats = {"system": template.system, "user": template.user, "assistant": template.assistant}
    for message in request.messages:
        role = "system" if message.role == "developer" else message.role
        form = formats.get(role)
        if form is None or message.tool_calls or not _text_only(message.content):
            return None
        parts.append(form.replace("{content}", message.text()))
    parts.append(template.generation)
    return "".join(parts)


def _json_object(request: ChatRequest) -> bool:
    fmt = request.response_format or {}
    return fmt.get("type") not in (None, "text", "json_schema")


def _text_only(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and all(p.get("type") == "text" for p in content)


def request_body(
    backend: DllmBackend, request: ChatRequest, text: str, *, stream: bool
) -> dict[str, Any]:
    passed = request.passthrough()
    sampling: dict[str, Any] = {k: passed[k] for k in SAMPLING_PARAMS if k in passed}
    limit = request.output_limit()
    if limit is not None:
        sampling["max_new_tokens"] = limit
    fmt = request.response_format or {}
    if fmt.get("type") == "json_schema":
        # SGLang takes the schema as a JSON string.
        sampling["json_schema"] = orjson.dumps(fmt["json_schema"]["schema"]).decode()
    body: dict[str, Any] = {
        "text": text,
        "sampling_params": sampling,
        "return_logprob": True,
        # Without it each triple's text is null and no token could be read as content.
        "return_text_in_logprobs": True,
    }
    if backend.top_logprobs:
        body["top_logprobs_num"] = backend.top_logprobs
    if stream:
        body["stream"] = True
    return body


def completion(data: Any, *, model: str) -> Completion:
    """A non-streamed `/generate` answer; raises MalformedReply or GenerateAborted."""
    meta, text = _meta_and_text(data, "answer")
    try:
        return Completion(
            id=str(meta.get("id") or ""),
            model=model,
            content=text,
            finish_reason=finish_reason(meta.get("finish_reason")) or "stop",
            usage=usage(meta),
            logprobs=logprobs(meta, 0),
        )
    except (TypeError, ValueError) as exc:
        raise MalformedReply(f"sent a malformed /generate answer: {exc!r}") from exc


def _meta_and_text(data: Any, what: str) -> tuple[dict[str, Any], str]:
    """The `meta_info` and `text` of an answer or stream event (`what`); raises MalformedReply."""
    if not isinstance(data, dict) or not isinstance(data.get("meta_info"), dict):
        raise MalformedReply(f"sent a /generate {what} without meta_info")
    text = data.get("text")
    if not isinstance(text, str):
        raise MalformedReply(f"sent a /generate {what} whose text is not a string")
    return data["meta_info"], text


def finish_reason(raw: Any) -> str | None:
    """Our finish reason for SGLang's object; None while running; an abort is raised."""
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else raw
    if kind == "abort":
        status = raw.get("status_code") if isinstance(raw, dict) else None
        message = raw.get("message") if isinstance(raw, dict) else None
        code = status if isinstance(status, int) and 400 <= status <= 599 else 500
        raise GenerateAborted(str(message or "the request was aborted"), code)
    if not isinstance(kind, str):
        raise MalformedReply(f"sent a finish_reason without a type: {raw!r}")
    return _FINISH.get(kind, kind)


def usage(meta: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=usage_count(meta.get("prompt_tokens"), "prompt_tokens"),
        completion_tokens=usage_count(meta.get("completion_tokens"), "completion_tokens"),
        cached_tokens=usage_count(meta.get("cached_tokens"), "cached_tokens"),
    )


def logprobs(meta: dict[str, Any], start: int) -> tuple[TokenLogprob, ...] | None:
    """Token logprobs from position `start` on; None when the engine filled none (LLaDA2's
    algorithms compute no logprob values), so the verdict says so instead of scoring zeros."""
    rows = meta.get("output_token_logprobs")
    if not isinstance(rows, list) or not rows:
        return None
    tops = meta.get("output_top_logprobs")
    out: list[TokenLogprob] = []
    for i, row in enumerate(rows[start:], start):
        lp = _triple(row)
        if lp is None:
            return None
        top_row = tops[i] if isinstance(tops, list) and i < len(tops) else None
        top = tuple(t for t in (_triple(item) for item in top_row or ()) if t is not None)
        out.append(TokenLogprob(lp[1], lp[0], tuple((text, value) for value, text in top)))
    return tuple(out)


def _triple(row: Any) -> tuple[float, str] | None:
    """(logprob, text) of a `[logprob, token_id, text]` triple; None when it has no value."""
    if not isinstance(row, list | tuple) or len(row) < 2:
        raise MalformedReply(f"sent a logprob entry that is not a triple: {row!r}")
    value = row[0]
    if value is None:
        return None
    number = float(value)
    if math.isnan(number):
        return None
    text = row[2] if len(row) > 2 and isinstance(row[2], str) else ""
    return number, text


@dataclass
class StreamState:
    """Turns cumulative `/generate` stream events into `Chunk` deltas."""

    model: str
    text: str = ""
    tokens: int = 0
    started: bool = False
    finished: bool = False
    id: str = field(default="")

    def feed(self, data: Any) -> list[Chunk]:
        """The chunks one event adds; raises MalformedReply or GenerateAborted."""
        meta, text = _meta_and_text(data, "stream event")
        if not text.startswith(self.text):
            raise MalformedReply(
                "sent stream text that does not continue the text before it; run SGLang "
                "without --incremental-streaming-output (cumulative text is the default)"
            )
        self.id = self.id or str(meta.get("id") or "")
        out: list[Chunk] = []
        if not self.started:
            self.started = True
            out.append(Chunk(id=self.id, model=self.model, role="assistant", content=""))
        delta = text[len(self.text) :]
        try:
            lps = logprobs(meta, self.tokens)
            reason = finish_reason(meta.get("finish_reason"))
        except (TypeError, ValueError) as exc:
            raise MalformedReply(f"sent a malformed /generate stream event: {exc!r}") from exc
        rows = meta.get("output_token_logprobs")
        if isinstance(rows, list):
            self.tokens = len(rows)
        self.text = text
        if delta or lps:
            out.append(Chunk(id=self.id, model=self.model, content=delta, logprobs=lps))
        if reason is not None:
            self.finished = True
            out.append(Chunk(id=self.id, model=self.model, finish_reason=reason))
            out.append(Chunk(id=self.id, model=self.model, usage=usage(meta)))
        return out
