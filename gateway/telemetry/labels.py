"""Bounded metric label values: every label value passes through here before it reaches Prometheus.

Route, backend and kind come from the policy, so they are bounded by construction; this module
still guards them (a configured set, a per-label cap, a strict character set) so that a bug
upstream can never turn a request id, an API key or customer text into a time series.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from gateway.core.profile import STEP_KINDS
from gateway.core.redact import looks_secret

OTHER = "other"
NONE = "none"

# Policy names (routes, backends) may carry dots, dashes, slashes and colons (model-ish names).
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}")
# Reason codes and limit names are short snake_case identifiers; anything else is "other".
_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ERROR_FAMILIES = ("caller", "policy", "provider", "gateway")
_ERROR_RE = re.compile(r"(caller|policy|provider|gateway)_[a-z0-9_]{1,40}")
_KINDS = frozenset(STEP_KINDS)


class BoundedLabel:
    """Maps raw values of one label to at most `cap` distinct values plus `other` and `none`.

    With `allowed` set, only those values pass (the policy's route or backend names). Without
    it, the first `cap` well-formed values seen by this process pass. Not thread-safe by design
    beyond the GIL: a race can at worst let one extra value through.
    """

    __slots__ = ("_allowed", "_cap", "_overflow", "_pattern", "_seen")

    def __init__(
        self,
        *,
        cap: int,
        allowed: Collection[str] | None = None,
        pattern: re.Pattern[str] = _NAME_RE,
        overflow: str = OTHER,
    ) -> None:
        self._cap = cap
        self._overflow = overflow
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._pattern = pattern
        self._seen: set[str] = set()

    def set_allowed(self, allowed: Collection[str] | None) -> None:
        self._allowed = frozenset(allowed) if allowed is not None else None

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return NONE
        if self._allowed is not None:
            return value if value in self._allowed else self._overflow
        if value in self._seen:
            return value
        if not self._pattern.fullmatch(value) or looks_secret(value):
            return self._overflow
        if len(self._seen) >= self._cap:
            return self._overflow
        self._seen.add(value)
        return value


def name_label(*, cap: int = 200, allowed: Collection[str] | None = None) -> BoundedLabel:
    """For policy names: routes, backends, teams."""
    return BoundedLabel(cap=cap, allowed=allowed, pattern=_NAME_RE)


def code_label(*, cap: int = 32) -> BoundedLabel:
    """For short snake_case codes: escalation reasons, limit names, store modes."""
    return BoundedLabel(cap=cap, pattern=_CODE_RE)


def error_label(*, cap: int = 64) -> BoundedLabel:
    """For error classes already normalised by `error_class_label`; overflow stays in vocabulary."""
    return BoundedLabel(cap=cap, pattern=_ERROR_RE, overflow="gateway_unclassified")


def kind_label(kind: str | None) -> str:
    if kind is None:
        return NONE
    return kind if kind in _KINDS else OTHER


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else OTHER


def error_class_label(error_class: str | None) -> str:
    """Normalise to the closed `caller_*|policy_*|provider_*|gateway_*` vocabulary.

    Well-formed values pass as they are (the error tree defines a few dozen). A value with a
    known family but odd characters becomes `<family>_other`; anything else `gateway_unclassified`.
    """
    if error_class is None or error_class == "":
        return NONE
    if _ERROR_RE.fullmatch(error_class):
        return error_class
    family = error_class.split("_", 1)[0]
    if family in _ERROR_FAMILIES:
        return f"{family}_other"
    return "gateway_unclassified"
