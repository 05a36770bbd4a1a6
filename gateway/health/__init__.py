"""Backend health: per-backend circuit breakers (`breaker`) and their sharing across
replicas through Redis (`shared`)."""

from gateway.health.breaker import Breakers, LocalListener, State, Transition, TransitionHook
from gateway.health.shared import SharedBreakers

__all__ = ["Breakers", "LocalListener", "SharedBreakers", "State", "Transition", "TransitionHook"]
