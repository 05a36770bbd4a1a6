"""Pure translation of a classify step into a Mercury Decide call (`POST /v1/decisions`).

Inception's decision endpoint speaks TypeSafe's System One format: a `state` and named
`questions`; a `choice` question lists its options as `criteria` (label -> description or null)
and is answered with the `choice`, the options' `probabilities` and a `confidence`. A step
becomes one `choice` question when its label set can be read:

- from `response_format` json_schema: a string schema with an `enum` (the answer is the JSON
  string `"label"`) or an object schema with exactly one property, an `enum` of strings (the
  answer is `{"<property>": "label"}`);
- otherwise, with no response format (or `text`), from the prompt, by the same extraction the
  gateway's `labels` validator uses (`gateway.core.labels.request_labels`): the
  answer is the bare label.

The answer's token logprobs hold one entry for the label: logprob = ln P(label), `top` the other
labels' ln P, so the route's `token_confidence` check scores the decision by its probability
(JSON punctuation around it gets logprob 0 and is not scored). A step that is not expressible
(no label set, fewer than 2 or more than 255 labels, tools, images, a prefill) is
`question(...) is None`: the connector sends it to the chat endpoint instead, as it does every
stream (the endpoint does not stream; a checked route buffers its stream and calls `complete`,
so classify steps there are still decided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from connectors.openai_wire.parse import MalformedReply
from gateway.core.labels import normalize_label, request_labels
from gateway.core.types import ChatRequest, Completion, TokenLogprob, Usage, usage_count

QUESTION_ID = "label"
# System One allows at most 255 options in a choice question.
MAX_LABELS = 255
# ln P of a label the decision gave probability 0 (ln 0 is not a number JSON can carry).
MIN_LOGPROB = math.log(1e-12)
DEFAULT_INSTRUCTIONS = "Choose the label that answers the last user message."

Shape = Literal["text", "json_string", "json_field"]


@dataclass(frozen=True, slots=True)
class Question:
    """A step as one choice question: its labels and how the answer must be written."""

    labels: tuple[str, ...]
    shape: Shape
    field: str | None = None  # the property holding the label (json_field)


def question(request: ChatRequest) -> Question | None:
    """The step as a decision, or None when the chat endpoint must answer it."""
    if request.tools or request.prefill:
        return None
    if any(_has_media(m.content) for m in request.messages):
        return None
    fmt = request.response_format or {}
    kind = fmt.get("type")
    found: Question | None
    if kind == "json_schema":
        found = _schema_question(fmt["json_schema"]["schema"])
    elif kind in (None, "text"):
        labels = request_labels(request)
        found = Question(labels, "text") if labels else None
    else:
        found = None  # json_object: the answer's shape is not known
    if found is None or not 2 <= len(found.labels) <= MAX_LABELS:
        return None
    if len({normalize_label(label) for label in found.labels}) != len(found.labels):
        return None
    return found


def _has_media(content: Any) -> bool:
    return isinstance(content, list) and any(p.get("type") != "text" for p in content)


def _enum(schema: Any) -> tuple[str, ...] | None:
    if not isinstance(schema, dict):
        return None
    values = schema.get("enum")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return None
    if schema.get("type", "string") != "string":
        return None
    return tuple(values)


def _schema_question(schema: dict[str, Any]) -> Question | None:
    labels = _enum(schema)
    if labels is not None:
        return Question(labels, "json_string")
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict) or len(props) != 1:
        return None
    (name, sub), *_ = props.items()
    required = schema.get("required") or []
    if not isinstance(required, list) or any(r != name for r in required):
        return None
    labels = _enum(sub)
    return Question(labels, "json_field", name) if labels is not None else None


def request_body(model: str, request: ChatRequest, q: Question) -> dict[str, Any]:
    """One `choice` question: instructions from the system/developer messages, the rest of
    the conversation as the state."""
    instructions = "\n\n".join(
        m.text() for m in request.messages if m.role in ("system", "developer") and m.text()
    )
    state = [
        {"role": m.role, "content": m.text()}
        for m in request.messages
        if m.role not in ("system", "developer")
    ]
    return {
        "model": model,
        "state": state,
        "questions": {
            QUESTION_ID: {
                "type": "choice",
                "instructions": instructions or DEFAULT_INSTRUCTIONS,
                "criteria": dict.fromkeys(q.labels),
            }
        },
    }


def completion(data: Any, q: Question, *, model: str) -> Completion:
    """The decision as a Completion: content is the chosen label in the step's shape."""
    try:
        answer = data["answers"][QUESTION_ID]
        choice = answer["choice"]
        if not isinstance(choice, str):
            raise ValueError(f"choice is {type(choice).__name__}, not a string")
        probabilities = answer.get("probabilities") or {}
        if not isinstance(probabilities, dict):
            raise ValueError("probabilities is not an object")
        # The request's own spelling of the label the decision names.
        label = next((x for x in q.labels if normalize_label(x) == normalize_label(choice)), choice)
        p = _probability(probabilities, label, choice, answer.get("confidence"))
        raw_usage = data.get("usage") or {}
        usage = Usage(
            prompt_tokens=usage_count(raw_usage.get("input_tokens"), "input_tokens"),
            completion_tokens=usage_count(raw_usage.get("output_tokens"), "output_tokens"),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedReply(f"sent a malformed decision: {exc!r}") from exc
    top = tuple(
        (other, _ln(probabilities.get(other)))
        for other in q.labels
        if other != label and isinstance(probabilities.get(other), int | float)
    )
    head, inner, tail = _pieces(label, q)
    logprobs = None
    if p is not None:
        token = TokenLogprob(inner, _ln(p), top)
        logprobs = tuple(
            t for t in (TokenLogprob(head, 0.0), token, TokenLogprob(tail, 0.0)) if t.token
        )
    return Completion(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or model),
        content=head + inner + tail,
        finish_reason="stop",
        usage=usage,
        logprobs=logprobs,
    )


def _probability(
    probabilities: dict[str, Any], label: str, choice: str, confidence: Any
) -> float | None:
    """P(chosen label): its entry in `probabilities`, else the answer's `confidence`, else
    None (no logprobs: the verdict then says the backend returned none)."""
    for key in (label, choice):
        value = probabilities.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    if isinstance(confidence, int | float) and not isinstance(confidence, bool):
        return float(confidence)
    return None


def _ln(p: Any) -> float:
    value = float(p)
    if not math.isfinite(value) or value <= 0.0:
        return MIN_LOGPROB
    return max(MIN_LOGPROB, math.log(min(value, 1.0)))


def _pieces(label: str, q: Question) -> tuple[str, str, str]:
    """(before, label text, after) of the answer in the step's shape."""
    if q.shape == "text":
        return "", label, ""
    inner = orjson.dumps(label).decode()[1:-1]
    if q.shape == "json_string":
        return '"', inner, '"'
    return "{" + orjson.dumps(q.field).decode() + ': "', inner, '"}'
