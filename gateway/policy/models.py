"""Policy language v1: what operators write in `policies/*.yaml`.

Every model forbids unknown keys and is frozen. Shape is checked by pydantic; references between
parts (route -> backend, baseline, aliases, escalation target) by `cross_check`, so that each
problem can be reported at its own file position.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gateway.classify.profile import StepKind
from gateway.policy.limits_models import CachePolicy, LimitsPolicy


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(value: str | None) -> str | None:
    """`api_key_env` names a variable; its value (a key pasted in, or `${VAR}` expanded) is
    refused without being echoed."""
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(
            "api_key_env must name an environment variable (letters, digits, `_`), e.g. "
            "`api_key_env: OPENAI_API_KEY`; this value looks like a key or an expanded "
            "`${VAR}`: write the variable's name, not `${...}`"
        )
    return value


class Timeouts(Strict):
    """How long to wait for a backend, per phase (every wait also ends at the request deadline).

    `request_s` bounds the wait for the answer's headers and, without streaming, for the whole
    answer. For a stream, `first_token_s` bounds the wait from sending to the first chunk, and
    `stall_s` the silence allowed between two chunks after it; either falls back to `request_s`
    when not given."""

    connect_s: float = Field(default=5.0, gt=0)
    request_s: float = Field(default=60.0, gt=0)
    first_token_s: float | None = Field(default=None, gt=0)
    stall_s: float | None = Field(default=None, gt=0)

    @property
    def first_token(self) -> float:
        return self.first_token_s if self.first_token_s is not None else self.request_s

    @property
    def stall(self) -> float:
        return self.stall_s if self.stall_s is not None else self.request_s


class Pricing(Strict):
    """Either token prices ($ per million tokens) or a GPU-hour price converted by measured time."""

    input_per_mtok_usd: Decimal | None = Field(default=None, ge=0)
    output_per_mtok_usd: Decimal | None = Field(default=None, ge=0)
    cached_input_per_mtok_usd: Decimal | None = Field(default=None, ge=0)
    gpu_hour_usd: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_scheme(self) -> Pricing:
        tokens = self.input_per_mtok_usd is not None or self.output_per_mtok_usd is not None
        if tokens and self.gpu_hour_usd is not None:
            raise ValueError(
                "give either input_per_mtok_usd/output_per_mtok_usd or gpu_hour_usd, not both"
            )
        if not tokens and self.gpu_hour_usd is None:
            raise ValueError("give input_per_mtok_usd and output_per_mtok_usd, or gpu_hour_usd")
        if tokens and (self.input_per_mtok_usd is None or self.output_per_mtok_usd is None):
            raise ValueError("token pricing needs both input_per_mtok_usd and output_per_mtok_usd")
        return self


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
    _api_key_env = field_validator("api_key_env")(_env_name)
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


class LitellmBackend(Strict):
    type: Literal["litellm"]
    # litellm model string, provider-prefixed: "openai/gpt-4o-mini", "anthropic/claude-...".
    model: str = Field(min_length=1, pattern=r"^[^/\s]+/\S+$")
    api_key_env: str | None = None
    _api_key_env = field_validator("api_key_env")(_env_name)
    base_url: str | None = None
    # Tokens the model takes (prompt and answer); when the step's estimate exceeds it, the
    # backend is passed over for the route's `context_fallbacks` before any call.
    context_window: int | None = Field(default=None, ge=1)
    timeouts: Timeouts = Timeouts()
    # Overrides litellm's cost map for this backend.
    pricing: Pricing | None = None
    # `auto`: a provider that speaks OpenAI's chat-completions wire natively (litellm's `openai`,
    # i.e. also any OpenAI-compatible `base_url`, and `hosted_vllm`) is called over Stepgate's
    # own HTTP client, litellm still resolving the provider and mapping the parameters;
    # every other provider goes through `litellm.acompletion`. `litellm`: always acompletion.
    transport: Literal["auto", "litellm"] = "auto"

    @model_validator(mode="after")
    def _url(self) -> LitellmBackend:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self


class AnthropicBackend(Strict):
    """Anthropic's Messages API (`POST {base_url}/v1/messages`) over Stepgate's own HTTP client."""

    type: Literal["anthropic"]
    # The bare Anthropic model id: "claude-3-5-haiku-20241022", "claude-sonnet-4-5".
    model: str = Field(min_length=1)
    api_key_env: str = "ANTHROPIC_API_KEY"
    _api_key_env = field_validator("api_key_env")(_env_name)
    base_url: str = Field(default="https://api.anthropic.com", pattern=r"^https?://")
    anthropic_version: str = Field(default="2023-06-01", pattern=r"^\d{4}-\d{2}-\d{2}$")
    # Tokens the model takes (prompt and answer); when the step's estimate exceeds it, the
    # backend is passed over for the route's `context_fallbacks` before any call.
    context_window: int | None = Field(default=None, ge=1)
    timeouts: Timeouts = Timeouts()
    # Overrides the list price from litellm's offline cost map (`anthropic/<model>`).
    pricing: Pricing | None = None
    max_connections: int = Field(default=256, ge=1)

    @field_validator("model")
    @classmethod
    def _bare_model(cls, value: str) -> str:
        if "/" in value or any(c.isspace() for c in value):
            raise ValueError(
                f"model is the bare Anthropic model id, e.g. `claude-3-5-haiku-20241022`; got "
                f"{value!r} (`anthropic/...` is litellm's spelling: use it with `type: litellm`)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        if value.rstrip("/").endswith(("/v1", "/v1/messages")):
            raise ValueError(
                f"base_url is the API's root, e.g. `https://api.anthropic.com`; the connector "
                f"appends /v1/messages itself (got {value!r})"
            )
        return value

    @property
    def cost_map_model(self) -> str:
        """This model's key in litellm's cost map (read without litellm: CostMap)."""
        return f"anthropic/{self.model}"


Backend = Annotated[DllmBackend | LitellmBackend | AnthropicBackend, Field(discriminator="type")]


class FloatRange(Strict):
    min: float = 0.0
    max: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


class IntRange(Strict):
    min: int = Field(default=0, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def contains(self, value: int) -> bool:
        return value >= self.min and (self.max is None or value <= self.max)


class Match(Strict):
    """All given conditions must hold (AND); a list means any of its values (OR)."""

    kind: list[StepKind] | None = Field(default=None, min_length=1)
    difficulty: FloatRange | None = None
    # The tier operating point: the route takes a step only when the classifier's calibrated
    # P(deep) is at most this (lower = fewer deep steps reach a cheap target, fewer steps too).
    max_p_deep: float | None = Field(default=None, ge=0.0, le=1.0)
    latency_budget_ms: IntRange | None = None
    prompt_tokens: IntRange | None = None
    has_tools: bool | None = None
    expects_json: bool | None = None
    language: list[str] | None = Field(default=None, min_length=1)
    team: list[str] | None = Field(default=None, min_length=1)
    # metadata key -> required value, or "*" for "present with any value".
    metadata: dict[str, str] | None = None

    def is_catch_all(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)


Check = Literal["json_schema", "labels", "grounded", "complete", "token_confidence", "agreement"]
ALL_CHECKS: tuple[Check, ...] = (
    "json_schema",
    "labels",
    "grounded",
    "complete",
    "token_confidence",
)


class Escalation(Strict):
    """What to do with a cheap answer whose confidence is below the threshold."""

    min_confidence: float = Field(default=0.7, ge=0, le=1)
    checks: list[Check] = Field(default_factory=lambda: list(ALL_CHECKS))
    on_low: Literal["escalate", "flag"] = "escalate"
    to: str | None = None
    per_kind: dict[StepKind, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _target(self) -> Escalation:
        if self.on_low == "escalate" and self.to is None:
            raise ValueError("on_low: escalate needs `to: <backend>` (the stronger backend)")
        for kind, value in self.per_kind.items():
            if not 0 <= value <= 1:
                raise ValueError(f"per_kind.{kind} must be within 0..1, got {value}")
        return self

    def threshold(self, kind: str) -> float:
        return self.per_kind.get(kind, self.min_confidence)  # type: ignore[call-overload, no-any-return]


class Route(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str | None = None
    # No `match` (or an empty one) matches every step: a catch-all.
    match: Match | None = None
    target: str
    fallbacks: list[str] = Field(default_factory=list)
    # Larger-context backends, in order, for a step the candidates above report too long
    # (`context_length_exceeded`) or whose token estimate exceeds their `context_window`.
    context_fallbacks: list[str] = Field(default_factory=list)
    escalation: Escalation | None = None
    # After the first byte of a stream: `none` ends a failed stream with an in-band error;
    # `restart` holds back the first `stream_buffer_tokens` tokens, so a failure inside them
    # is retried on the next candidate unseen; `continue` asks the next candidate to go on
    # from the text already sent and splices its answer into the same stream.
    stream_recovery: Literal["none", "restart", "continue"] = "none"
    stream_buffer_tokens: int = Field(default=32, ge=1, le=4096)

    def is_catch_all(self) -> bool:
        return self.match is None or self.match.is_catch_all()


class Alias(Strict):
    """A model name that pins one backend. `checks: route` (the default) checks its answers
    like the first route that targets the backend and has an `escalation` block; `checks: none`
    serves them unchecked, which the policy must say explicitly for a fast (dLLM) backend."""

    backend: str
    checks: Literal["route", "none"] = "route"


class Retry(Strict):
    max_attempts: int = Field(default=2, ge=1, le=10)  # per backend, first try included
    backoff_base_ms: int = Field(default=100, ge=0)
    backoff_max_ms: int = Field(default=2000, ge=0)
    max_retry_after_s: float = Field(default=10.0, ge=0)
    # A timed-out backend is likely still slow: by default the next candidate is tried at once
    # ("next"); "retry" retries the same backend like any other retryable error first.
    on_timeout: Literal["next", "retry"] = "next"
    # Seconds of the request deadline kept for each later candidate (at most half the time
    # left per candidate), so a hanging primary cannot use up the fallbacks' time.
    min_fallback_s: float = Field(default=5.0, ge=0)


class CircuitBreaker(Strict):
    """Per-backend circuit breaker: skip a backend that keeps failing, probe it to come back.

    It opens after `failures` failed calls in a row, or when at least `min_calls` calls in the
    last `window_s` seconds failed at `error_rate` or more; after `cooldown_s` it is half-open and
    lets `probes` calls through at a time; one success closes it, a failure opens it again."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    window_s: float = Field(default=30.0, gt=0)
    min_calls: int = Field(default=20, ge=1)
    cooldown_s: float = Field(default=10.0, gt=0)
    probes: int = Field(default=1, ge=1)


def _alias_form(value: Any) -> Any:
    return {"backend": value} if isinstance(value, str) else value


AliasEntry = Annotated[Alias, BeforeValidator(_alias_form, json_schema_input_type=str | Alias)]


class Policy(Strict):
    version: Literal[1] = 1
    backends: dict[str, Backend] = Field(min_length=1)
    baseline: str
    routes: list[Route] = Field(min_length=1)
    default_route: str
    # Model names a caller may send that pin a backend directly (no routing).
    # The short form `name: backend` is `{backend: name, checks: route}`.
    aliases: dict[str, AliasEntry] = Field(default_factory=dict)
    retry: Retry = Retry()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    request_timeout_s: float = Field(default=60.0, gt=0)
    limits: LimitsPolicy = LimitsPolicy()
    cache: CachePolicy = CachePolicy()

    def route(self, name: str) -> Route | None:
        for route in self.routes:
            if route.name == name:
                return route
        return None

    def alias_escalation(self, alias: Alias) -> Escalation | None:
        """The checks an alias's answers get: the first checked route on its backend's."""
        if alias.checks == "none":
            return None
        for route in self.routes:
            if route.target == alias.backend and route.escalation is not None:
                return route.escalation
        return None


# (loc, message) pairs; loc addresses the offending node in the YAML document.
Problem = tuple[tuple[str | int, ...], str]


def cross_check(policy: Policy) -> list[Problem]:
    """References between parts of a shape-valid policy; each problem with its location."""
    problems: list[Problem] = []
    known = sorted(policy.backends)
    known_text = ", ".join(known)

    def backend_ref(loc: tuple[str | int, ...], name: str, what: str) -> None:
        if name not in policy.backends:
            hint = _did_you_mean(name, known)
            problems.append((loc, f"{what}: unknown backend {name!r};{hint} known: {known_text}"))

    backend_ref(("baseline",), policy.baseline, "baseline")
    seen: dict[str, int] = {}
    catch_all: str | None = None
    for i, route in enumerate(policy.routes):
        base: tuple[str | int, ...] = ("routes", i)
        if route.name in seen:
            problems.append(
                (
                    (*base, "name"),
                    f"duplicate route name {route.name!r} (also routes[{seen[route.name]}]); "
                    "give each route a unique name",
                )
            )
        seen.setdefault(route.name, i)
        if catch_all is not None:
            problems.append(
                (
                    base,
                    f"route {route.name!r} is unreachable: route {catch_all!r} above it matches "
                    "every step; move the catch-all last or give it a `match`",
                )
            )
        if route.is_catch_all() and catch_all is None:
            catch_all = route.name
        backend_ref((*base, "target"), route.target, f"routes[{i}].target")
        for j, fb in enumerate(route.fallbacks):
            backend_ref((*base, "fallbacks", j), fb, f"routes[{i}].fallbacks[{j}]")
            if fb == route.target:
                problems.append(
                    ((*base, "fallbacks", j), f"fallback {fb!r} is the route's own target")
                )
        for j, fb in enumerate(route.context_fallbacks):
            backend_ref((*base, "context_fallbacks", j), fb, f"routes[{i}].context_fallbacks[{j}]")
        if route.escalation is not None and route.escalation.to is not None:
            backend_ref((*base, "escalation", "to"), route.escalation.to, "escalation.to")
    if policy.route(policy.default_route) is None:
        names = ", ".join(r.name for r in policy.routes)
        hint = _did_you_mean(policy.default_route, [r.name for r in policy.routes])
        problems.append(
            (("default_route",), f"unknown route {policy.default_route!r};{hint} routes: {names}")
        )
    for alias, pinned in policy.aliases.items():
        target = pinned.backend
        backend_ref(("aliases", alias), target, f"aliases.{alias}")
        if (
            isinstance(policy.backends.get(target), DllmBackend)
            and policy.alias_escalation(pinned) is None
            and pinned.checks != "none"
        ):
            problems.append(
                (
                    ("aliases", alias),
                    f"alias {alias!r} pins the dLLM backend {target!r}, but no route targeting "
                    "it has an `escalation` block whose checks its answers could get: add one, "
                    f"or serve them unchecked explicitly with `{alias}: "
                    f"{{backend: {target}, checks: none}}`",
                )
            )
        if policy.route(alias) is not None or alias == "auto":
            problems.append(
                (("aliases", alias), f"alias {alias!r} shadows a route name or 'auto'; rename it")
            )
    for name, backend in policy.backends.items():
        if isinstance(backend, DllmBackend):
            problems.extend(_dllm_problems(name, backend))
    return problems


# Backend fields that only one engine takes: field -> (engine, what it is for).
_ENGINE_FIELDS = {
    "reasoning_effort": ("mercury", "Inception's Mercury chat parameter"),
    "decide": ("mercury", "Inception's Mercury Decide endpoint"),
    "generate_template": ("sglang", "the prompt template for SGLang's native /generate"),
}


def _dllm_problems(name: str, backend: DllmBackend) -> list[Problem]:
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


def _did_you_mean(name: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def json_schema() -> dict[str, Any]:
    """The JSON Schema for editors (shipped as policies/policy.schema.json)."""
    return Policy.model_json_schema()
