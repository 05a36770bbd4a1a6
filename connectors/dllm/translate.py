"""Pure translation of a `ChatRequest` into the chat body each dLLM engine takes.

Per request versus at launch (the full table, with endpoints, streaming and sources, is in
docs/engines.md). The policy's `diffusion` block is valid on every engine: it is sent where the
engine takes knobs per request; elsewhere it records how that pool was launched, never sent.

    engine     per request (what is sent)               at launch (what `diffusion` records)
    ---------  ---------------------------------------  ------------------------------------
    vllm       OpenAI params, logprobs, top_logprobs,   --diffusion-config canvas_length,
               continue_final_message                   max_denoising_steps; sampler and
                                                        thresholds in generation_config.json
    sglang     OpenAI params, logprobs; /generate       --dllm-algorithm and its YAML
               (with `generate_template`): templated    (--dllm-algorithm-config: threshold,
               text, sampling_params, return_logprob    block_size, denoising steps)
    mercury    documented params, reasoning_effort,     hosted: nothing to launch
               temperature clamped to 0.5-1.0;
               /decisions (with `decide`)
    dlmserve   model, text messages, temperature,       DLMSERVE_MODEL / _DTYPE / _DEVICE
               seed, stream, max_tokens; knobs as
               num_denoising_steps, block_length,
               target_length (= canvas_length)
    mistralrs  OpenAI params (the diffusion path        generation_config.json (steps,
               ignores temperature and top_p)           sampler); canvas from config.json
    ollada     OpenAI params; knobs as steps,           -
               block_length, gen_length, threshold
    openai     OpenAI params, logprobs                  -

Token confidence comes back from vllm and openai (OpenAI logprobs), sglang (chat logprobs or
/generate `output_token_logprobs`; LLaDA2 is expected to fill none) and Mercury Decide (the
label's probability); mercury chat, dlmserve, mistralrs and ollada return none. dlmserve has no
plain threshold knob, so `threshold` is not sent to it. `/generate` is `sglang_generate`,
`/decisions` is `decide`; this module is the chat body only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.dllm.config import DllmBackend, Engine
from gateway.core import params
from gateway.core.types import ChatRequest

# What an OpenAI-compatible dLLM server takes from the caller: OpenAI's chat parameters and the
# samplers vLLM and SGLang document; the diffusion knobs come from the policy only.
DLLM_PARAMS = (params.OPENAI_CHAT_PARAMS | {"top_k", "min_p", "repetition_penalty"}) - {
    "model",
    "messages",
    "stream",
    "stream_options",
}
# Inception's documented chat parameters besides model/messages/stream (no logprobs, no top_p,
# no seed in its schema); `max_completion_tokens` is sent as `max_tokens`.
MERCURY_PARAMS = frozenset(
    {"temperature", "max_tokens", "stop", "tools", "tool_choice", "response_format"}
)
MERCURY_MAX_TOKENS = 50_000
# Inception documents temperature 0.5-1.0 and resets anything outside to 0.75 (with a
# `warning` in the answer); clamping keeps the caller's intent nearest instead.
MERCURY_TEMPERATURE = (0.5, 1.0)
MERCURY_EFFORTS = frozenset({"instant", "low", "medium", "high"})
# dlmserve's request schema forbids unknown fields: these are the generation ones it keeps.
DLMSERVE_PARAMS = frozenset({"temperature", "seed", "max_tokens"})


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineProfile:
    """What one engine's chat endpoint takes and returns (see the module table)."""

    params: frozenset[str] = field(kw_only=False)  # caller parameters forwarded
    logprobs: bool  # answers `logprobs: true` with OpenAI-format token logprobs
    prefill: bool  # continues a final assistant message (`continue_final_message`)
    tools: bool
    json_schema: bool  # enforces `response_format: json_schema` itself
    stream_usage: bool  # takes `stream_options.include_usage`


# json_schema is False where the engine is not known to enforce it: vLLM's diffusion path
# refuses structured outputs with a 400 (vllm #45572), SGLang's Gemma4Renoise rejects grammars,
# dlmserve's schema has no response_format, mistral.rs's diffusion path and ollada are
# unverified. The
# route's validators still check every JSON answer.
_NO_LOGPROBS = DLLM_PARAMS - {"logprobs", "top_logprobs"}
ENGINES: dict[Engine, EngineProfile] = {
    "vllm": EngineProfile(
        DLLM_PARAMS, logprobs=True, prefill=True, tools=True, json_schema=False, stream_usage=True
    ),
    "sglang": EngineProfile(
        DLLM_PARAMS, logprobs=True, prefill=True, tools=True, json_schema=False, stream_usage=True
    ),
    "mercury": EngineProfile(
        MERCURY_PARAMS,
        logprobs=False,
        prefill=False,
        tools=True,
        json_schema=True,
        stream_usage=True,
    ),
    # dlmserve streams one chunk and no usage; `stream_options` would fail its schema.
    "dlmserve": EngineProfile(
        DLMSERVE_PARAMS,
        logprobs=False,
        prefill=False,
        tools=False,
        json_schema=False,
        stream_usage=False,
    ),
    "mistralrs": EngineProfile(
        _NO_LOGPROBS,
        logprobs=False,
        prefill=False,
        tools=True,
        json_schema=False,
        stream_usage=True,
    ),
    "ollada": EngineProfile(
        _NO_LOGPROBS,
        logprobs=False,
        prefill=False,
        tools=True,
        json_schema=False,
        stream_usage=True,
    ),
    "openai": EngineProfile(
        DLLM_PARAMS, logprobs=True, prefill=False, tools=True, json_schema=True, stream_usage=True
    ),
}


def returns_logprobs(backend: DllmBackend) -> bool:
    return backend.logprobs and ENGINES[backend.engine].logprobs


def dlmserve_refusal(request: ChatRequest) -> str | None:
    """Why dlmserve cannot take this request (its schema has no tools and text content only),
    or None. Refused before any call: its 422 would say less."""
    if request.tools or request.tool_choice is not None:
        return "dlmserve takes no tools (its request schema rejects `tools` and `tool_choice`)"
    for i, message in enumerate(request.messages):
        if message.role not in ("system", "developer", "user", "assistant"):
            return f"messages[{i}]: dlmserve takes system, user and assistant messages only"
        if message.content is None:
            return f"messages[{i}]: dlmserve takes text content only (this one has none)"
        if isinstance(message.content, list) and any(
            part.get("type") != "text" for part in message.content
        ):
            return f"messages[{i}]: dlmserve takes text only, not images or audio"
    return None


def request_body(backend: DllmBackend, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The chat-completions body for `backend`'s engine; the diffusion knobs only where the
    engine takes them per request."""
    engine = backend.engine
    profile = ENGINES[engine]
    body: dict[str, Any] = {k: v for k, v in request.passthrough().items() if k in profile.params}
    body["model"] = backend.model
    if engine == "dlmserve":
        body["messages"] = _text_messages(request)
    else:
        body["messages"] = request.wire_messages()
    if request.prefill and profile.prefill:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    if stream:
        body["stream"] = True
        if profile.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if engine == "vllm":
            # Usage on every chunk: a stream the client abandons is billed exactly.
            body["stream_options"]["continuous_usage_stats"] = True
    if returns_logprobs(backend):
        body["logprobs"] = True
        if backend.top_logprobs:
            body.setdefault("top_logprobs", backend.top_logprobs)
    if engine == "mercury":
        _mercury(backend, request, body)
    elif engine == "dlmserve":
        _limit(request, body, cap=None)
    _knobs(backend, body)
    return body


def _mercury(backend: DllmBackend, request: ChatRequest, body: dict[str, Any]) -> None:
    _limit(request, body, cap=MERCURY_MAX_TOKENS)
    if isinstance(body.get("temperature"), int | float):
        low, high = MERCURY_TEMPERATURE
        body["temperature"] = min(high, max(low, float(body["temperature"])))
    effort = backend.reasoning_effort
    if effort is None:
        # A caller's own value goes only if Inception takes it (OpenAI's `minimal` it does not).
        asked = request.passthrough().get("reasoning_effort")
        effort = asked if asked in MERCURY_EFFORTS else None
    if effort is not None:
        body["reasoning_effort"] = effort


def _limit(request: ChatRequest, body: dict[str, Any], *, cap: int | None) -> None:
    """The caller's output cap, whichever spelling it used, as `max_tokens`."""
    body.pop("max_completion_tokens", None)
    limit = request.output_limit()
    if limit is not None:
        body["max_tokens"] = limit if cap is None else min(limit, cap)


def _knobs(backend: DllmBackend, body: dict[str, Any]) -> None:
    knobs = backend.diffusion
    if knobs is None:
        return
    if backend.engine == "dlmserve":
        fields: dict[str, Any] = {
            "num_denoising_steps": knobs.steps,
            "block_length": knobs.block_length,
            "target_length": knobs.canvas_length,
        }
    elif backend.engine == "ollada":
        fields = {
            "steps": knobs.steps,
            "block_length": knobs.block_length,
            "gen_length": knobs.canvas_length,
            "threshold": knobs.threshold,
        }
    else:
        return  # launch settings: the block describes the pool, nothing is sent
    body.update({k: v for k, v in fields.items() if v is not None})


def _text_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Role and string content only (dlmserve's message schema); developer reads as system."""
    out = []
    for message in request.messages:
        role = "system" if message.role == "developer" else message.role
        out.append({"role": role, "content": message.text()})
    return out
