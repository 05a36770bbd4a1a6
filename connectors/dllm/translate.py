"""Pure translation between our types and an OpenAI-compatible dLLM server's wire format.

Engine dialects differ only in where the generic diffusion knobs go and whether the server
returns token logprobs:
- vllm:    `vllm_xargs` {max_denoising_steps, canvas_length, block_length, threshold}; logprobs yes
- sglang:  knobs are server launch config (rejected at policy load); LLaDA2 path returns none
- ollada:  top-level `steps`, `block_length`, `gen_length`, `threshold`; no logprobs
- mercury: OpenAI-compatible, no logprobs, no knobs
- openai:  plain OpenAI-compatible server; logprobs as asked
"""

from __future__ import annotations

from typing import Any

from gateway.core import params
from gateway.core.types import ChatRequest
from gateway.policy.models import DllmBackend

LOGPROB_ENGINES = frozenset({"vllm", "openai"})
# Engines that continue a final assistant message when asked (`continue_final_message`).
PREFILL_ENGINES = frozenset({"vllm", "sglang"})
# What an OpenAI-compatible dLLM server takes from the caller: OpenAI's chat parameters and the
# samplers vLLM and SGLang document; the diffusion knobs come from the policy only.
DLLM_PARAMS = (params.OPENAI_CHAT_PARAMS | {"top_k", "min_p", "repetition_penalty"}) - {
    "model",
    "messages",
    "stream",
    "stream_options",
}


def returns_logprobs(backend: DllmBackend) -> bool:
    return backend.logprobs and backend.engine in LOGPROB_ENGINES


def request_body(backend: DllmBackend, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {k: v for k, v in request.passthrough().items() if k in DLLM_PARAMS}
    body["model"] = backend.model
    body["messages"] = request.wire_messages()
    if request.prefill and backend.engine in PREFILL_ENGINES:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        if backend.engine == "vllm":
            # Usage on every chunk: a stream the client abandons is billed exactly.
            body["stream_options"]["continuous_usage_stats"] = True
    if returns_logprobs(backend):
        body["logprobs"] = True
        if backend.top_logprobs:
            body.setdefault("top_logprobs", backend.top_logprobs)
    knobs = backend.diffusion
    if knobs is not None:
        if backend.engine == "vllm":
            xargs = {
                "max_denoising_steps": knobs.steps,
                "canvas_length": knobs.canvas_length,
                "block_length": knobs.block_length,
                "threshold": knobs.threshold,
            }
            body["vllm_xargs"] = {k: v for k, v in xargs.items() if v is not None}
        elif backend.engine == "ollada":
            fields = {
                "steps": knobs.steps,
                "block_length": knobs.block_length,
                "gen_length": knobs.canvas_length,
                "threshold": knobs.threshold,
            }
            body.update({k: v for k, v in fields.items() if v is not None})
    return body
