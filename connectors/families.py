"""The backend families this gateway knows: the one list everything that depends on the kind
of backend reads (see `connectors.family.Family`). A new family is one line here."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.anthropic.family import FAMILY as ANTHROPIC
from connectors.dllm.family import FAMILY as DLLM
from connectors.family import Family
from connectors.litellm_ar.family import FAMILY as LITELLM

FAMILIES: tuple[Family, ...] = (DLLM, LITELLM, ANTHROPIC)

BY_TYPE: Mapping[str, Family] = {family.tag: family for family in FAMILIES}


def family(backend_type: str) -> Family:
    """The family of a backend (`type:` tag, or a connector's `backend_type`)."""
    return BY_TYPE[backend_type]
