"""The `type: litellm` backend's policy config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.core.config import Pricing, Strict, Timeouts, env_name


class LitellmBackend(Strict):
    type: Literal["litellm"]
    # litellm model string, provider-prefixed: "openai/gpt-4o-mini", "anthropic/claude-...".
    model: str = Field(min_length=1, pattern=r"^[^/\s]+/\S+$")
    api_key_env: str | None = None
    _api_key_env = field_validator("api_key_env")(env_name)
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
