"""Policy language v1: what operators write in `policies/*.yaml`.

Every model forbids unknown keys and is frozen. Shape is checked by pydantic; references between
parts (route -> backend, baseline, aliases, escalation target) by `cross_check`, so that each
problem can be reported at its own file position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, model_validator

from connectors.families import FAMILIES, family
from gateway.core.config import BackendConfig, Problem, Strict
from gateway.core.profile import StepKind
from gateway.policy.limits_models import CachePolicy, LimitsPolicy

# A backend's config: one model per family, told apart by `type` (connectors.families).
if TYPE_CHECKING:
    Backend = BackendConfig
else:
    Backend = Annotated[Union[tuple(f.config for f in FAMILIES)], Field(discriminator="type")]  # noqa: UP007


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
            target in policy.backends
            and family(policy.backends[target].type).tier == "fast"
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
        problems.extend(family(backend.type).problems(name, backend))
    return problems


def _did_you_mean(name: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def json_schema() -> dict[str, Any]:
    """The JSON Schema for editors (shipped as policies/policy.schema.json)."""
    return Policy.model_json_schema()
