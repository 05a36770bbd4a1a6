"""The `type: anthropic` backend's policy config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.core.config import Pricing, Strict, Timeouts, env_name


class AnthropicBackend(Strict):
    """Anthropic's Messages API (`POST {base_url}/v1/messages`) over Stepgate's own HTTP client."""

    type: Literal["anthropic"]
    # The bare Anthropic model id: "claude-3-5-haiku-20241022", "claude-sonnet-4-5".
    model: str = Field(min_length=1)
    api_key_env: str = "ANTHROPIC_API_KEY"
    _api_key_env = field_validator("api_key_env")(env_name)
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
