"""Protocol-faithful fake dLLM engine servers: real HTTP on 127.0.0.1, one thread each.

Built on ``tests.support.fakes.upstream.FakeUpstream`` (its lifecycle, request recording, reply
script
and HTTP plumbing); each fake answers its engine's own endpoints in the shapes documented in
the engine research (docs/engines.md names the sources). Every request is recorded on arrival
(``fake.requests[-1].body`` is what the engine received).

* ``FakeSGLang`` -- ``POST /v1/chat/completions`` as an OpenAI server, and the native
  ``POST /generate``: ``{"text", "output_ids", "meta_info": {"id", "finish_reason": {"type":
  "stop", "matched": id} | {"type": "length", "length": n} | {"type": "abort", ...},
  "prompt_tokens", "completion_tokens", "cached_tokens", "output_token_logprobs":
  [[logprob, token_id, text | null], ...]}}`` (the text only with ``return_text_in_logprobs``;
  ``output_top_logprobs`` with ``top_logprobs_num``). ``logprob_mode``: ``"values"`` (the
  default, like Gemma4Renoise's README), ``"empty"`` (``[]``) or ``"missing"`` (no key), the
  two ways LLaDA2's algorithms may come back with none. Streams send the cumulative text of
  every ``block_size`` tokens (a dLLM block), finish_reason null until the last event, then
  ``data: [DONE]``. ``sampling_params`` keys outside SGLang's SamplingParams are a 400
  ``{"error": {"message"}}``, as is a scripted ``status(400)``; ``generate_stream_error(n)``
  sends ``data: {"error": {"message"}}`` after n events.
* ``FakeInception`` -- Inception's API: chat validates ``reasoning_effort`` (instant | low |
  medium | high, else 400 ``invalid_request_error``), resets a temperature outside 0.5-1.0 to
  0.75 and says so in a top-level ``warning``, never returns logprobs, needs a Bearer key
  (401 ``invalid_api_key``) and a known model (404 ``model_not_found``). ``POST
  /v1/decisions`` (System One): ``{"model", "state", "questions": {id: {"type": "noul" |
  "choice" | "score", "instructions", "criteria"}}}`` answered with ``answers.<id>``
  (``choice``, ``probabilities``, ``confidence``; ``noul``; ``score``, ``legend``) and
  ``usage: {input_tokens, output_tokens}``. ``set_decision({label: p})`` scripts the choice
  probabilities (others share what is left); ``script_decisions([status(...)])`` errors.
* ``FakeDlmserve`` -- dlmserve's strict request schema: an unknown field, a wrong type or a
  value out of range is FastAPI's 422 ``{"detail": [{"type", "loc", "msg", "input"}]}``; a
  model other than the served one is 404 ``{"detail": "..."}``; ``status(429)`` / ``status(503)``
  answer ``{"detail": ...}``. The diffusion fields are top level. Answers have no ``created``
  and no logprobs; a stream is one chunk with the whole text (``delta.denoising_step: 0``),
  then an empty delta with ``finish_reason: "stop"``, then ``[DONE]``, and no usage.
* ``FakeVllm`` -- a vLLM server whose diffusion settings were fixed at launch
  (``diffusion_config``, e.g. ``{"canvas_length": 32}``, kept for the test to read): it speaks
  ``FakeUpstream``'s OpenAI/vLLM dialect and rejects nothing new.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from tests.support.fakes.upstream import (
    FakeUpstream,
    RecordedRequest,
    Reply,
    Status,
    _Http,
    _Plan,
    split_tokens,
)

__all__ = [
    "DLMSERVE_FIELDS",
    "SGLANG_SAMPLING",
    "FakeDlmserve",
    "FakeInception",
    "FakeSGLang",
    "FakeVllm",
    "GenerateStreamError",
    "dlmserve_errors",
    "generate_stream_error",
]


class _EngineFake(FakeUpstream):
    """Records every request, then hands it to `route`; unknown routes are a 404."""

    async def _handle(self, req: _Http, writer: asyncio.StreamWriter) -> None:
        path, _, query = req.target.partition("?")
        try:
            body = orjson.loads(req.body) if req.body else None
        except orjson.JSONDecodeError:
            body = None
        recorded = RecordedRequest(req.method, path, query, dict(req.headers), body, req.body)
        with self._lock:
            self._requests.append(recorded)
        if not await self.route(req, path.rstrip("/"), body, recorded, writer):
            await self._send(writer, 404, self.not_found(path))

    async def route(
        self,
        req: _Http,
        path: str,
        body: Any,
        recorded: RecordedRequest,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer the request and return True, or return False for a 404."""
        raise NotImplementedError

    def not_found(self, path: str) -> Any:
        return {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}

    async def openai_chat(
        self, req: _Http, body: Any, recorded: RecordedRequest, writer: asyncio.StreamWriter
    ) -> None:
        """FakeUpstream's own OpenAI chat answer (script, reply, streaming behaviours)."""
        behaviour, default, seq = self._next()
        await self._answer(
            behaviour, default, seq, body, False, writer, headers=req.headers, sent=recorded.sent
        )

    async def sse(self, writer: asyncio.StreamWriter, events: Iterable[Any]) -> None:
        """Each event as `data: <json>` in a chunked SSE body, then `data: [DONE]`."""
        head = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
        ]
        writer.write(self._head(200, head))

        def frame(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        for sent, event in enumerate(events):
            if self.chunk_delay_s and sent:
                await writer.drain()
                await asyncio.sleep(self.chunk_delay_s)
            writer.write(frame(b"data: " + orjson.dumps(event) + b"\n\n"))
        writer.write(frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()


def _token_id(token: str) -> int:
    """A stable fake vocabulary id for a token's text."""
    return 1000 + zlib.crc32(token.encode()) % 150_000


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


# ---------------------------------------------------------------------------------------------
# SGLang


@dataclass(frozen=True)
class GenerateStreamError:
    """A /generate stream that sends `after_events` events, then `data: {"error": ...}`."""

    after_events: int
    message: str = "fake sglang stream error"


def generate_stream_error(after_events: int, message: str = "fake sglang stream error") -> Any:
    return GenerateStreamError(after_events, message)


# SGLang's SamplingParams keyword arguments (sampling_params.py); others raise a TypeError.
SGLANG_SAMPLING = frozenset(
    {
        "max_new_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "stop",
        "stop_token_ids",
        "ignore_eos",
        "json_schema",
        "regex",
        "ebnf",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "min_new_tokens",
        "n",
        "no_stop_trim",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "structural_tag",
        "custom_params",
        "sampling_seed",
        "logit_bias",
    }
)
_EOS_ID = 156892


class FakeSGLang(_EngineFake):
    """See the module docstring."""

    def __init__(self, *, model: str = "inclusionAI/LLaDA2.0-mini", block_size: int = 4) -> None:
        super().__init__(dialect="openai", models=[model])
        self.block_size = block_size
        self.logprob_mode = "values"

    def reset_all(self) -> None:
        super().reset_all()
        self.logprob_mode = "values"

    async def route(
        self,
        req: _Http,
        path: str,
        body: Any,
        recorded: RecordedRequest,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if req.method == "POST" and path == "/v1/chat/completions" and isinstance(body, dict):
            await self.openai_chat(req, body, recorded, writer)
            return True
        if req.method in ("POST", "PUT") and path == "/generate":
            await self._generate(body, writer)
            return True
        return False

    @staticmethod
    def _error(message: str) -> dict[str, Any]:
        return {"error": {"message": message}}

    async def _generate(self, body: Any, writer: asyncio.StreamWriter) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("text"), str | list):
            await self._send(writer, 400, self._error("Either text or input_ids should be given"))
            return
        sampling = body.get("sampling_params") or {}
        unknown = sorted(set(sampling) - SGLANG_SAMPLING) if isinstance(sampling, dict) else []
        if not isinstance(sampling, dict) or unknown:
            message = f"SamplingParams.__init__() got an unexpected keyword argument {unknown!r}"
            await self._send(writer, 400, self._error(message))
            return
        behaviour, default, seq = self._next()
        if isinstance(behaviour, Status):
            payload = behaviour.body if behaviour.body is not None else self._error("fake error")
            await self._send(writer, behaviour.code, payload, list(behaviour.headers))
            return
        reply = behaviour if isinstance(behaviour, Reply) else default
        answer = _GenerateAnswer(reply, body, seq, self.logprob_mode)
        if not body.get("stream"):
            await self._send(writer, 200, answer.event(len(answer.tokens), final=True))
            return
        await self.sse(writer, answer.events(self.block_size, behaviour))


class _GenerateAnswer:
    """One reply rendered as /generate JSON (or cumulative stream events)."""

    def __init__(self, reply: Reply, body: dict[str, Any], seq: int, mode: str) -> None:
        self.reply = reply
        self.body = body
        self.rid = f"fake-rid-{seq}"
        self.tokens = reply.token_list()
        self.logprobs = reply.logprob_list()
        self.mode = mode
        self.prompt_tokens = (
            reply.prompt_tokens if reply.prompt_tokens is not None else _words(body.get("text"))
        )
        self.completion_tokens = (
            reply.completion_tokens if reply.completion_tokens is not None else len(self.tokens)
        )

    def _finish(self) -> dict[str, Any]:
        reason = self.reply.finish_reason or "stop"
        if reason == "length":
            return {"type": "length", "length": self.completion_tokens}
        if reason == "abort":
            return {
                "type": "abort",
                "message": "fake abort",
                "status_code": 400,
                "err_type": "BadRequest",
            }
        return {"type": "stop", "matched": _EOS_ID}

    def _triple(self, i: int) -> list[Any]:
        token = self.tokens[i]
        text = token if self.body.get("return_text_in_logprobs") else None
        return [self.logprobs[i], _token_id(token), text]

    def event(self, upto: int, *, final: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": self.rid,
            "finish_reason": self._finish() if final else None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens if final else upto,
            "cached_tokens": 0,
            "weight_version": "default",
            "e2e_latency": 0.01,
        }
        if self.body.get("return_logprob") and self.mode != "missing":
            rows = [self._triple(i) for i in range(upto)] if self.mode == "values" else []
            meta["output_token_logprobs"] = rows
            k = int(self.body.get("top_logprobs_num") or 0)
            if k and self.mode == "values":
                meta["output_top_logprobs"] = [self._top(i, k) for i in range(upto)]
        return {
            "text": "".join(self.tokens[:upto]),
            "output_ids": [_token_id(t) for t in self.tokens[:upto]],
            "meta_info": meta,
        }

    def _top(self, i: int, k: int) -> list[list[Any]]:
        first = self._triple(i)
        rest = max(1e-12, 1.0 - math.exp(self.logprobs[i]))
        alts = [[math.log(rest / 2**j), 99 + j, f" alt{j}"] for j in range(1, k)]
        return sorted([first, *alts], key=lambda t: -t[0])[:k]

    def events(self, block: int, behaviour: Any) -> list[dict[str, Any]]:
        ends = [*range(block, len(self.tokens), block), len(self.tokens)]
        out = [self.event(end, final=i == len(ends) - 1) for i, end in enumerate(ends)]
        if isinstance(behaviour, GenerateStreamError):
            out = [*out[: behaviour.after_events], {"error": {"message": behaviour.message}}]
        return out


# ---------------------------------------------------------------------------------------------
# Inception (Mercury chat, Mercury Decide)

INCEPTION_EFFORTS = ("instant", "low", "medium", "high")


def _inception_error(message: str, kind: str, err_code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": err_code}}


class FakeInception(_EngineFake):
    """See the module docstring."""

    def __init__(
        self,
        *,
        chat_models: Iterable[str] = ("mercury-2",),
        decide_models: Iterable[str] = ("mercury-decide",),
    ) -> None:
        super().__init__(dialect="openai", models=list(chat_models))
        self.decide_models = list(decide_models)
        self._decision: dict[str, float] = {}
        self._decisions: deque[Status] = deque()

    def reset_all(self) -> None:
        super().reset_all()
        with self._lock:
            self._decision = {}
            self._decisions.clear()

    def set_decision(self, probabilities: dict[str, float]) -> None:
        """The choice probabilities of the next decisions (labels not named share the rest)."""
        with self._lock:
            self._decision = dict(probabilities)

    def script_decisions(self, behaviours: Iterable[Status]) -> None:
        with self._lock:
            self._decisions.extend(behaviours)

    async def route(
        self,
        req: _Http,
        path: str,
        body: Any,
        recorded: RecordedRequest,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if req.method != "POST" or path not in ("/v1/chat/completions", "/v1/decisions"):
            return False
        if not req.headers.get("authorization", "").startswith("Bearer "):
            error = _inception_error("Invalid API key", "authentication_error", "invalid_api_key")
            await self._send(writer, 401, error)
            return True
        if not isinstance(body, dict):
            error = _inception_error("body is not JSON", "invalid_request_error", None)
            await self._send(writer, 400, error)
            return True
        if path == "/v1/decisions":
            await self._decide(body, writer)
        else:
            await self._chat(req, body, recorded, writer)
        return True

    async def _chat(
        self,
        req: _Http,
        body: dict[str, Any],
        recorded: RecordedRequest,
        writer: asyncio.StreamWriter,
    ) -> None:
        if body.get("model") not in self.models:
            error = _inception_error("Model not found.", "invalid_request_error", "model_not_found")
            await self._send(writer, 404, error)
            return
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in INCEPTION_EFFORTS:
            message = f"reasoning_effort must be one of {list(INCEPTION_EFFORTS)}; got {effort!r}"
            error = _inception_error(message, "invalid_request_error", None)
            await self._send(writer, 400, error)
            return
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and not (
            isinstance(max_tokens, int) and 1 <= max_tokens <= 50000
        ):
            message = f"max_tokens must be within 1..50000; got {max_tokens!r}"
            error = _inception_error(message, "invalid_request_error", None)
            await self._send(writer, 400, error)
            return
        # The documented schema has no logprobs: the answer never carries them.
        answered = {k: v for k, v in body.items() if k not in ("logprobs", "top_logprobs")}
        warning = None
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not 0.5 <= temperature <= 1.0:
            answered["temperature"] = 0.75
            warning = f"temperature {temperature} is outside 0.5-1.0; 0.75 was used"
        behaviour, default, seq = self._next()
        if body.get("stream") or not isinstance(behaviour, Reply):
            await self._answer(
                behaviour,
                default,
                seq,
                answered,
                False,
                writer,
                headers=req.headers,
                sent=recorded.sent,
            )
            return
        plan = _Plan.build(behaviour, answered, seq)
        doc = plan.openai_json()
        doc["usage"].update(reasoning_tokens=0, cached_input_tokens=0)
        if warning is not None:
            doc["warning"] = warning
        await self._send(writer, 200, doc)

    async def _decide(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        with self._lock:
            scripted = self._decisions.popleft() if self._decisions else None
            wanted = dict(self._decision)
        if scripted is not None:
            payload = scripted.body
            if payload is None:
                payload = _inception_error("fake error", "server_error", None)
            await self._send(writer, scripted.code, payload, list(scripted.headers))
            return
        if body.get("model") not in self.decide_models:
            error = _inception_error(
                "Decision model not found.", "invalid_request_error", "model_not_found"
            )
            await self._send(writer, 404, error)
            return
        problem = _decision_problem(body)
        if problem is not None:
            await self._send(writer, 400, _inception_error(problem, "invalid_request_error", None))
            return
        answers = {qid: _answer_question(q, wanted) for qid, q in dict(body["questions"]).items()}
        words = _words(orjson.dumps(body["state"]).decode()) + sum(
            _words(q.get("instructions")) for q in body["questions"].values()
        )
        await self._send(
            writer,
            200,
            {
                "model": f"{body['model']}-20260930",
                "answers": answers,
                "usage": {"input_tokens": words, "output_tokens": 3},
            },
        )


def _decision_problem(body: dict[str, Any]) -> str | None:
    """Why a System One request is invalid, or None."""
    extra = set(body) - {"model", "state", "questions"}
    if extra:
        return f"unsupported fields for a decision: {sorted(extra)}"
    if "state" not in body:
        return "state is required"
    questions = body.get("questions")
    if not isinstance(questions, dict) or not questions:
        return "questions must be a non-empty object"
    for qid, q in questions.items():
        if not isinstance(q, dict) or q.get("type") not in ("noul", "choice", "score"):
            return f"questions.{qid}.type must be noul, choice or score"
        if not isinstance(q.get("instructions"), str) or not q["instructions"]:
            return f"questions.{qid}.instructions must be a non-empty string"
        criteria = q.get("criteria")
        if q["type"] == "choice":
            if not isinstance(criteria, dict) or not 2 <= len(criteria) <= 255:
                return f"questions.{qid}.criteria must name 2 to 255 options"
            if not all(v is None or isinstance(v, str) for v in criteria.values()):
                return f"questions.{qid}.criteria values must be strings or null"
        if q["type"] == "score" and (
            not isinstance(criteria, list) or not 2 <= len(criteria) <= 10
        ):
            return f"questions.{qid}.criteria must list 2 to 10 levels"
    return None


def _answer_question(q: dict[str, Any], wanted: dict[str, float]) -> dict[str, Any]:
    if q["type"] == "noul":
        return {"type": "noul", "noul": wanted.get("true", 0.5)}
    if q["type"] == "score":
        levels = list(q["criteria"])
        probs = _spread([str(i) for i in range(len(levels))], wanted)
        score = sum(int(k) * p for k, p in probs.items())
        legend = {str(i): level for i, level in enumerate(levels)}
        return {
            "type": "score",
            "score": round(score, 4),
            "legend": legend,
            "probabilities": probs,
            "confidence": max(probs.values()),
        }
    labels = list(q["criteria"])
    probs = _spread(labels, wanted or {labels[0]: 0.9})
    choice = max(labels, key=lambda label: probs[label])
    return {
        "type": "choice",
        "choice": choice,
        "probabilities": probs,
        "confidence": probs[choice],
    }


def _spread(options: list[str], wanted: dict[str, float]) -> dict[str, float]:
    """The scripted probabilities; options not named share what is left equally."""
    given = {o: float(wanted[o]) for o in options if o in wanted}
    rest = [o for o in options if o not in given]
    left = max(0.0, 1.0 - sum(given.values()))
    return {o: given.get(o, left / len(rest) if rest else 0.0) for o in options}


# ---------------------------------------------------------------------------------------------
# dlmserve

# The diffusion fields and their ranges (dlmserve/api/protocol.py).
_DLM_INT_RANGES = {
    "num_denoising_steps": (1, 512),
    "block_length": (1, None),
    "target_length": (1, None),
    "local_leap_radius": (1, 16),
    "max_tokens": (1, None),
    "seed": (None, None),
    "top_k": (None, 1),
}
_DLM_FLOAT_RANGES = {
    "temperature": (0.0, 2.0),
    "local_leap_anchor_threshold": (0.0, 1.0),
    "local_leap_neighbor_threshold": (0.0, 1.0),
}
_DLM_CHOICES = {
    "block_schedule": ("uniform", "front_loaded", "cosine"),
    "confidence_metric": ("top1_prob", "entropy_inverse"),
    "attention_backend": ("sdpa", "fa2"),
}
_DLM_BOOLS = ("stream", "logprobs", "force_single_batch", "use_local_leap")
DLMSERVE_FIELDS = frozenset(
    {"model", "messages", *_DLM_INT_RANGES, *_DLM_FLOAT_RANGES, *_DLM_CHOICES, *_DLM_BOOLS}
)


def _detail(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}


def dlmserve_errors(body: Any) -> list[dict[str, Any]]:
    """FastAPI/pydantic validation errors for a chat body against dlmserve's schema."""
    if not isinstance(body, dict):
        return [_detail("model_attributes_type", [], "Input should be an object", body)]
    errors = [
        _detail("extra_forbidden", [key], "Extra inputs are not permitted", body[key])
        for key in body
        if key not in DLMSERVE_FIELDS
    ]
    for key in ("model", "messages"):
        if key not in body:
            errors.append(_detail("missing", [key], "Field required", None))
    messages = body.get("messages")
    if "messages" in body and (not isinstance(messages, list) or not messages):
        errors.append(_detail("list_type", ["messages"], "Input should be a list", messages))
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            errors.append(_detail("model_type", ["messages", i], "Input should be an object", 0))
            continue
        for key in set(message) - {"role", "content"}:
            errors.append(
                _detail(
                    "extra_forbidden",
                    ["messages", i, key],
                    "Extra inputs are not permitted",
                    message[key],
                )
            )
        if message.get("role") not in ("system", "user", "assistant"):
            errors.append(
                _detail(
                    "literal_error",
                    ["messages", i, "role"],
                    "Input should be 'system', 'user' or 'assistant'",
                    message.get("role"),
                )
            )
        if not isinstance(message.get("content"), str):
            errors.append(
                _detail(
                    "string_type",
                    ["messages", i, "content"],
                    "Input should be a valid string",
                    message.get("content"),
                )
            )
    for key, (low, high) in _DLM_INT_RANGES.items():
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(_detail("int_type", [key], "Input should be a valid integer", value))
        elif (low is not None and value < low) or (high is not None and value > high):
            errors.append(_detail("value_error", [key], f"out of range {low}..{high}", value))
    for key, (flow, fhigh) in _DLM_FLOAT_RANGES.items():
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            errors.append(_detail("float_type", [key], "Input should be a valid number", value))
        elif not flow <= value <= fhigh:
            errors.append(_detail("value_error", [key], f"out of range {flow}..{fhigh}", value))
    for key, options in _DLM_CHOICES.items():
        if key in body and body[key] not in options:
            errors.append(_detail("literal_error", [key], f"Input should be one of {options}", 0))
    for key in _DLM_BOOLS:
        if key in body and not isinstance(body[key], bool):
            errors.append(_detail("bool_type", [key], "Input should be a valid boolean", 0))
    return errors


class FakeDlmserve(_EngineFake):
    """See the module docstring."""

    def __init__(self, *, model: str = "gsai-ml/LLaDA-8B-Instruct") -> None:
        super().__init__(dialect="openai", models=[model])

    def not_found(self, path: str) -> Any:
        return {"detail": "Not Found"}

    async def route(
        self,
        req: _Http,
        path: str,
        body: Any,
        recorded: RecordedRequest,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if req.method == "GET" and path in ("/health", "/ready"):
            await self._send(writer, 200, {"status": "ok"})
            return True
        if req.method != "POST" or path != "/v1/chat/completions":
            return False
        request_id = req.headers.get("x-request-id") or "dlm-fake"
        echo = [("x-request-id", request_id)]
        errors = dlmserve_errors(body)
        if errors:
            await self._send(writer, 422, {"detail": errors}, echo)
            return True
        if body["model"] not in self.models:
            await self._send(writer, 404, {"detail": f"Model '{body['model']}' not found"}, echo)
            return True
        behaviour, default, seq = self._next()
        if isinstance(behaviour, Status):
            messages = {429: "server busy", 503: "server is shutting down"}
            payload = behaviour.body
            if payload is None:
                payload = {"detail": messages.get(behaviour.code, "fake error")}
            await self._send(writer, behaviour.code, payload, echo + list(behaviour.headers))
            return True
        reply = behaviour if isinstance(behaviour, Reply) else default
        cid = f"chatcmpl-dlm{seq}"
        model = body["model"]
        if body.get("stream"):
            role = {"role": "assistant", "content": reply.content, "denoising_step": 0}
            first = {"index": 0, "delta": role, "finish_reason": None}
            last = {"index": 0, "delta": {}, "finish_reason": "stop"}
            events = [
                {"id": cid, "object": "chat.completion.chunk", "model": model, "choices": [c]}
                for c in (first, last)
            ]
            await self.sse(writer, events)
            return True
        prompt = sum(_words(m.get("content")) for m in body["messages"])
        completion = len(split_tokens(reply.content))
        message = {"role": "assistant", "content": reply.content}
        answer = {
            "id": cid,
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        await self._send(writer, 200, answer, echo)
        return True


# ---------------------------------------------------------------------------------------------
# vLLM


class FakeVllm(FakeUpstream):
    """A vLLM server launched with `--diffusion-config <diffusion_config>` serving `model`."""

    def __init__(self, *, model: str, diffusion_config: dict[str, Any] | None = None) -> None:
        super().__init__(dialect="vllm", models=[model])
        self.diffusion_config = dict(diffusion_config or {})
