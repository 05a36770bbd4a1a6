"""Router.decide: (policy, profile, requested model, team, metadata) -> RouteDecision. Pure.

`model: "auto"` routes by first match over the policy's routes (then `default_route`);
a route name pins that route; a pinned alias goes straight to its backend with no fallbacks,
its answers checked like those of the first route on that backend with an escalation block
(unless the alias says `checks: none`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from gateway.core.errors import BadRequest, UnknownModel
from gateway.core.profile import StepProfile
from gateway.policy.models import Escalation, Match, Policy, Route

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    route: str
    target: str
    fallbacks: tuple[str, ...]
    escalation: Escalation | None
    # How the route was chosen: "match", "default", "route-name" or "alias".
    via: str
    # For every route considered before the chosen one: why it did not match.
    skipped: tuple[tuple[str, str], ...] = ()
    # Taken over from the candidates when the step is too long for them.
    context_fallbacks: tuple[str, ...] = ()
    # Candidates passed over before any call: the step's estimate exceeds their context window.
    too_small: tuple[str, ...] = ()
    stream_recovery: str = "none"
    stream_buffer_tokens: int = 0

    @property
    def candidates(self) -> tuple[str, ...]:
        """Target and fallbacks that can take the step, else the context fallbacks that can."""
        route = (self.target, *self.fallbacks)
        if not self.too_small:
            return route
        fit = tuple(c for c in route if c not in self.too_small)
        larger = tuple(c for c in self.context_fallbacks if c not in self.too_small)
        return fit or larger or route  # nothing fits by the estimate: let the backends say


def decide(
    policy: Policy,
    profile: StepProfile,
    *,
    model: str,
    team: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> RouteDecision:
    if model != AUTO:
        route = policy.route(model)
        if route is not None:
            return _decision(policy, profile, route, "route-name")
        alias = policy.aliases.get(model)
        if alias is not None:
            escalation = policy.alias_escalation(alias)
            return RouteDecision(f"alias:{model}", alias.backend, (), escalation, "alias")
        raise UnknownModel(
            f"model {model!r} is not a route or alias of this gateway; use 'auto' to let the "
            f"router decide, or one of: {', '.join(model_names(policy))}",
            param="model",
        )
    skipped: list[tuple[str, str]] = []
    for route in policy.routes:
        why_not = mismatch(route.match, profile, team=team, metadata=metadata or {})
        if why_not is None:
            return _decision(policy, profile, route, "match", tuple(skipped))
        skipped.append((route.name, why_not))
    default = policy.route(policy.default_route)
    assert default is not None  # cross_check guarantees it
    return _decision(policy, profile, default, "default", tuple(skipped))


def native_only(
    decision: RouteDecision, needs: tuple[str, ...], dialect: str, takes: Callable[[str], bool]
) -> RouteDecision:
    """The decision for a request that carries what only a backend speaking `dialect` takes
    (`needs`, e.g. `cache_control`): the candidates that do not are dropped, an escalation to
    one becomes `flag`; BadRequest (400) when neither target nor fallbacks take it."""
    route = tuple(n for n in (decision.target, *decision.fallbacks) if takes(n))
    if not route:
        shown = ", ".join(needs[:3]) + (f" and {len(needs) - 3} more" if len(needs) > 3 else "")
        raise BadRequest(
            f"this request uses what only a native {dialect} backend takes ({shown}), and "
            f"{decision.route!r} sends it to {decision.target!r}, which is not one; remove "
            f"those parts, or send the step to a route or alias whose backend has "
            f"`type: {dialect}`",
            code="needs_native_backend",
        )
    escalation = decision.escalation
    if escalation is not None and escalation.to is not None and not takes(escalation.to):
        escalation = escalation.model_copy(update={"on_low": "flag"})
    return replace(
        decision,
        target=route[0],
        fallbacks=route[1:],
        escalation=escalation,
        context_fallbacks=tuple(n for n in decision.context_fallbacks if takes(n)),
    )


def model_names(policy: Policy) -> list[str]:
    """What a caller may send as `model`: auto, every route name, every pinned alias."""
    return [AUTO, *(r.name for r in policy.routes), *policy.aliases]


def _decision(
    policy: Policy,
    profile: StepProfile,
    route: Route,
    via: str,
    skipped: tuple[tuple[str, str], ...] = (),
) -> RouteDecision:
    too_small: tuple[str, ...] = ()
    if route.context_fallbacks:
        need = profile.prompt_tokens  # the estimate; room for the answer is not guessed
        names = (route.target, *route.fallbacks, *route.context_fallbacks)
        too_small = tuple(n for n in names if need > (_window(policy, n) or need))
    return RouteDecision(
        route.name,
        route.target,
        tuple(route.fallbacks),
        route.escalation,
        via,
        skipped,
        tuple(route.context_fallbacks),
        too_small,
        route.stream_recovery,
        route.stream_buffer_tokens,
    )


def _window(policy: Policy, backend: str) -> int | None:
    config = policy.backends.get(backend)
    return config.context_window if config is not None else None


def mismatch(
    match: Match | None,
    profile: StepProfile,
    *,
    team: str | None,
    metadata: Mapping[str, str],
) -> str | None:
    """None when `match` accepts the step, else the first reason it does not."""
    if match is None:
        return None
    if match.kind is not None and profile.kind not in match.kind:
        return f"kind {profile.kind} not in {match.kind}"
    if match.max_p_deep is not None and profile.difficulty > match.max_p_deep:
        return f"P(deep) {profile.difficulty:.3f} above max_p_deep {match.max_p_deep}"
    if match.difficulty is not None and not match.difficulty.contains(profile.difficulty):
        d = match.difficulty
        return f"difficulty {profile.difficulty:.2f} outside {d.min}..{d.max}"
    if match.latency_budget_ms is not None:
        budget = profile.latency_budget_ms
        if budget is None:
            return "no latency budget given"
        if not match.latency_budget_ms.contains(budget):
            r = match.latency_budget_ms
            return (
                f"latency budget {budget} ms outside {r.min}..{r.max if r.max is not None else ''}"
            )
    if match.prompt_tokens is not None and not match.prompt_tokens.contains(profile.prompt_tokens):
        r = match.prompt_tokens
        top = r.max if r.max is not None else ""
        return f"prompt tokens {profile.prompt_tokens} outside {r.min}..{top}"
    if match.has_tools is not None and profile.has_tools != match.has_tools:
        return f"has_tools is {str(profile.has_tools).lower()}"
    if match.expects_json is not None and profile.expects_json != match.expects_json:
        return f"expects_json is {str(profile.expects_json).lower()}"
    if match.language is not None and profile.language not in match.language:
        return f"language {profile.language} not in {match.language}"
    if match.team is not None and team not in match.team:
        return f"team {team or '(none)'} not in {match.team}"
    for key, want in (match.metadata or {}).items():
        got = metadata.get(key)
        if got is None:
            return f"metadata {key} missing"
        if want != "*" and got != want:
            return f"metadata {key}={got!r}, wants {want!r}"
    return None
