"""The `type: dllm` backend's policy config: engine, server, diffusion knobs, engine-only fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.core.config import Pricing, Problem, Strict, Timeouts, env_name


class DiffusionKnobs(Strict):
    """Generic diffusion decoding knobs, valid on every engine.

    Engines that take them per request get them under their own names (dlmserve:
    `num_denoising_steps`, `block_length`, `target_length`; ollada: `steps`, `block_length`,
    `gen_length`, `threshold`). For engines whose knobs are launch settings (vllm, sglang,
    mistralrs, mercury, openai) nothing is sent: the block records how that pool was launched,
    so one policy can describe several pools of one engine (a canvas-32 and a canvas-256 vLLM,
    say) and route between them. The table is in `connectors.dllm.translate`."""

    steps: int | None = Field(default=None, ge=1, le=4096)
    block_length: int | None = Field(default=None, ge=1, le=8192)
    canvas_length: int | None = Field(default=None, ge=1, le=32768)
    threshold: float | None = Field(default=None, gt=0, le=1)


Engine = Literal["vllm", "sglang", "mercury", "dlmserve", "mistralrs", "ollada", "openai"]
# Inception's documented `reasoning_effort` values (Mercury 2 chat).
ReasoningEffort = Literal["instant", "low", "medium", "high"]
_CONTENT = "{content}"


class GenerateTemplate(Strict):
    """How a chat becomes the text SGLang's native `/generate` takes: each message rendered by
    its role's format (`{content}` is replaced by the message's text, nothing else is
    interpreted), then `generation`, the prefix the answer follows. A request with a message
    whose role has no format here (e.g. an assistant turn without `assistant`) is sent to the
    OpenAI endpoint instead, so a partial template is never guessed at. `default_system` is
    rendered with `system` when the request has no system message."""

    system: str | None = None
    user: str = Field(min_length=1)
    assistant: str | None = None
    generation: str = Field(min_length=1)
    default_system: str | None = None

    @model_validator(mode="after")
    def _placeholders(self) -> GenerateTemplate:
        for role in ("system", "user", "assistant"):
            value = getattr(self, role)
            if value is not None and value.count(_CONTENT) != 1:
                raise ValueError(
                    f"generate_template.{role} must contain `{_CONTENT}` exactly once (where "
                    f"the message's text goes); got {value!r}"
                )
        if _CONTENT in self.generation:
            raise ValueError(
                "generate_template.generation is the prefix the answer follows (e.g. "
                "`<role>ASSISTANT</role>`): it takes no `{content}`"
            )
        if self.default_system is not None and self.system is None:
            raise ValueError("generate_template.default_system needs a `system` format")
        return self


class Decide(Strict):
    """Inception Mercury Decide: classify steps answered by `POST {base_url}/decisions` (a
    System One `choice` question over the step's labels), the chosen label's calibrated
    probability returned as its token confidence. Other steps use the chat endpoint."""

    model: str = Field(default="mercury-decide", min_length=1)


class DllmBackend(Strict):
    type: Literal["dllm"]
    engine: Engine
    base_url: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    _api_key_env = field_validator("api_key_env")(env_name)
    # Tokens the model takes (prompt and answer); when the step's estimate exceeds it, the
    # backend is passed over for the route's `context_fallbacks` before any call.
    context_window: int | None = Field(default=None, ge=1)
    timeouts: Timeouts = Timeouts()
    diffusion: DiffusionKnobs | None = None
    # Ask the engine for per-token logprobs (ignored by engines that return none).
    logprobs: bool = True
    top_logprobs: int = Field(default=0, ge=0, le=20)
    # mercury only: sent as `reasoning_effort` on every chat call.
    reasoning_effort: ReasoningEffort | None = None
    # mercury only: answer classify steps through Mercury Decide.
    decide: Decide | None = None
    # sglang only: with it, calls that want logprobs go to the native /generate.
    generate_template: GenerateTemplate | None = None
    pricing: Pricing | None = None
    max_connections: int = Field(default=256, ge=1)


# Backend fields that only one engine takes: field -> (engine, what it is for).
_ENGINE_FIELDS = {
    "reasoning_effort": ("mercury", "Inception's Mercury chat parameter"),
    "decide": ("mercury", "Inception's Mercury Decide endpoint"),
    "generate_template": ("sglang", "the prompt template for SGLang's native /generate"),
}


def problems(name: str, backend: DllmBackend) -> list[Problem]:
    """Engine-specific fields on the wrong engine, and a /generate template nothing uses."""
    problems: list[Problem] = []
    for key, (engine, what) in _ENGINE_FIELDS.items():
        if getattr(backend, key) is not None and backend.engine != engine:
            problems.append(
                (
                    ("backends", name, key),
                    f"`{key}` is {what}: it is taken only with `engine: {engine}` (this "
                    f"backend's engine is {backend.engine!r}); remove it, or point the backend "
                    f"at a {engine} server",
                )
            )
    if backend.generate_template is not None and not backend.logprobs:
        problems.append(
            (
                ("backends", name, "generate_template"),
                "generate_template is used only to ask /generate for token confidence, and "
                "this backend has `logprobs: false`: every call goes to the OpenAI endpoint; "
                "remove the template or set `logprobs: true`",
            )
        )
    return problems
