"""The strict config vocabulary every part of a policy is written in: the frozen, closed
`Strict` base, how long to wait for a backend (`Timeouts`), what a call costs (`Pricing`), the
fields every backend family's config shares (`BackendConfig`), and the shape of a problem found
in a policy (`Problem`, addressed to its node so it can be reported at its file position).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_name(value: str | None) -> str | None:
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
    """Token prices ($ per million tokens), or a GPU-hour price.

    A GPU-hour price with the GPU's throughput (`gpu_prompt_tokens_per_s`,
    `gpu_completion_tokens_per_s`: what the whole GPU processes per second at the concurrency it
    serves) bills each attempt its share of the GPU: its prompt and answer tokens at the
    per-token rates that throughput implies. Without a throughput, each attempt is billed its
    wall time, as if it had the GPU to itself (which overcharges a GPU serving several
    requests at once)."""

    input_per_mtok_usd: Decimal | None = Field(default=None, ge=0)
    output_per_mtok_usd: Decimal | None = Field(default=None, ge=0)
    cached_input_per_mtok_usd: Decimal | None = Field(default=None, ge=0)
    gpu_hour_usd: Decimal | None = Field(default=None, ge=0)
    gpu_prompt_tokens_per_s: Decimal | None = Field(default=None, gt=0)
    gpu_completion_tokens_per_s: Decimal | None = Field(default=None, gt=0)

    @property
    def basis(self) -> str:
        """How attempts are priced: `tokens`, `gpu-share` or `gpu-time` (wall time)."""
        if self.gpu_hour_usd is None:
            return "tokens"
        return "gpu-share" if self.gpu_completion_tokens_per_s is not None else "gpu-time"

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
        throughput = (self.gpu_prompt_tokens_per_s, self.gpu_completion_tokens_per_s)
        if any(t is not None for t in throughput):
            if self.gpu_hour_usd is None:
                raise ValueError(
                    "gpu_prompt_tokens_per_s / gpu_completion_tokens_per_s turn a gpu_hour_usd "
                    "price into per-token rates: give gpu_hour_usd too"
                )
            if any(t is None for t in throughput):
                raise ValueError(
                    "give both gpu_prompt_tokens_per_s and gpu_completion_tokens_per_s (the "
                    "GPU's prefill and generation throughput at its served concurrency)"
                )
        return self


class BackendConfig(Protocol):
    """What the gateway reads of any backend's config, whatever its family: each family's
    model (`connectors/<family>/config.py`) has these fields, `type` narrowed to its tag."""

    @property
    def type(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def context_window(self) -> int | None: ...
    @property
    def timeouts(self) -> Timeouts: ...
    @property
    def pricing(self) -> Pricing | None: ...
    @property
    def api_key_env(self) -> str | None: ...


# (loc, message) pairs; loc addresses the offending node in the YAML document.
Problem = tuple[tuple[str | int, ...], str]
