"""The native transport: litellm's OpenAI-wire providers, sent over `connectors.openai_wire`.

For a provider that speaks OpenAI's chat-completions wire itself (litellm's `openai`, which
covers any OpenAI-compatible `base_url`, and `hosted_vllm`), `litellm.acompletion` spends
milliseconds of CPU on what is one POST (bench/ar_transport_bench.py). litellm stays the
authority on what is sent: once per backend, after the lazy import, it resolves the provider,
the model name the upstream sees, the API base, the default key and whether it would bridge the
model to the Responses API; per request its provider config maps the parameters
(`drop_params=True`, cached), translates `developer` messages, and runs its request transform
wherever that could change anything (tools, content parts, model-specific message rules). A
request whose treatment litellm decides elsewhere (reasoning controls; tools on GPT-5, which it
may bridge to the Responses API) still goes through `litellm.acompletion` (`body` -> None).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import orjson

from connectors.litellm_ar.config import LitellmBackend
from connectors.litellm_ar.errors import map_exception
from connectors.openai_wire.client import OpenAIWire
from gateway.core.errors import ProviderError
from gateway.core.types import ChatRequest

NATIVE_PROVIDERS = frozenset({"openai", "hosted_vllm"})
MAX_CONNECTIONS = 256

# Parameters litellm's `completion()` resolves per model and value before its param mapping
# (reasoning levels, thinking budgets) or uses to pick the Responses-API bridge.
LITELLM_DECIDES = frozenset({"reasoning_effort", "thinking", "output_config", "web_search_options"})
# On GPT-5 models litellm bridges some tool requests to the Responses API.
GPT5_BRIDGE_PARAMS = frozenset({"tools"})

_MAPPED_CACHE_SIZE = 256


class NativeTransport:
    """One backend's resolved native route: litellm's decisions, frozen, plus the wire client."""

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        api_base: str,
        default_key: str | None,
        provider_config: Any,
        supported_params: frozenset[str],
        openai_params: frozenset[str],
        litellm_decides: frozenset[str],
        always_transform: bool,
        wire: OpenAIWire,
    ) -> None:
        self.provider = provider
        self.model = model  # as the upstream sees it: "openai/gpt-4.1-mini" -> "gpt-4.1-mini"
        self.api_base = api_base
        self.default_key = default_key  # litellm's default when the policy names no api_key_env
        self.wire = wire
        self._config = provider_config
        self._supported = supported_params
        self._openai_params = openai_params
        self._litellm_decides = litellm_decides
        self._always_transform = always_transform
        self._litellm_params = {
            "custom_llm_provider": provider,
            "api_base": api_base,
            "drop_params": True,
        }
        # map_openai_params results by the parameters' JSON: the o-series and GPT-5 configs look
        # the model up in litellm's tables on every call (~0.1 ms); a mapping depends only on
        # the model (fixed here) and the parameters, and agents repeat theirs.
        self._mapped: dict[bytes, dict[str, Any]] = {}
        self._auth: tuple[str, Mapping[str, str]] | None = None

    def body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any] | None:
        """The JSON body litellm would send for `request`, or None when litellm must decide."""
        params = request.passthrough()
        if not self._litellm_decides.isdisjoint(params):
            return None
        params.pop("metadata", None)  # litellm takes `metadata` as its own logging payload
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in params.items():
            if name in self._supported:
                known[name] = value
            elif name not in self._openai_params:
                extra[name] = value  # litellm forwards non-OpenAI keys (its `extra_body`)
            # else: an OpenAI parameter this model does not take, dropped as drop_params does
        messages = request.wire_messages()
        if any(m.get("role") == "developer" for m in messages):
            messages = self._call(
                self._config.translate_developer_role_to_system_role,
                messages,
                model=self.model,
                custom_llm_provider=self.provider,
                api_base=self.api_base,
                model_info=None,
            )
        mapped = self._map(known) if known else {}
        if (
            self._always_transform
            or "tools" in mapped
            or any(not isinstance(m.get("content"), str | None) for m in messages)
        ):
            # litellm's own request transform (content parts, tool schemas the endpoint would
            # reject, cache marks, o-series/vLLM message rules). It may edit what it is given in
            # place: it gets copies (the request may go to another backend next; `mapped` may
            # share objects with the cache).
            messages, mapped = orjson.loads(orjson.dumps((messages, mapped)))
            body: dict[str, Any] = self._call(
                self._config.transform_request,
                self.model,
                messages,
                mapped,
                self._litellm_params,
                {},
            )
        else:
            # Plain-text messages, no tools, a config without message rules: that transform is
            # the identity but for this one rule, at a tenth of the cost.
            body = {"model": self.model, "messages": list(messages), **mapped}
            if "tool_choice" in body and not body.get("functions"):
                del body["tool_choice"]  # a 400 upstream otherwise
        body.update(extra)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def headers(self, key: str) -> Mapping[str, str]:
        if self._auth is None or self._auth[0] != key:
            self._auth = (key, {"authorization": f"Bearer {key}"})
        return self._auth[1]

    def _map(self, known: dict[str, Any]) -> dict[str, Any]:
        key = orjson.dumps(known, option=orjson.OPT_SORT_KEYS)
        mapped = self._mapped.get(key)
        if mapped is None:
            # A copy of its own: the cache must not hold (nor share) this request's objects.
            mapped = orjson.loads(orjson.dumps(self._map_now(known)))
            if len(self._mapped) < _MAPPED_CACHE_SIZE:
                self._mapped[key] = mapped
        return dict(mapped)

    def _map_now(self, known: dict[str, Any]) -> dict[str, Any]:
        mapped: dict[str, Any] = self._call(
            self._config.map_openai_params,
            non_default_params=known,
            optional_params={},
            model=self.model,
            drop_params=True,
        )
        return mapped

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProviderError:
            raise
        except Exception as exc:  # litellm raises its own types (e.g. UnsupportedParamsError)
            raise map_exception(exc, backend=self.wire.backend) from exc


def resolve(litellm: ModuleType, name: str, backend: LitellmBackend) -> NativeTransport | None:
    """The native route for `backend` as litellm resolves it, or None to keep litellm's own.

    Raises what litellm raises for a model string it cannot place (the caller keeps
    `litellm.acompletion`, which reports it per request as before).
    """
    model, provider, dynamic_key, api_base = litellm.get_llm_provider(
        backend.model, api_base=backend.base_url
    )
    if provider not in NATIVE_PROVIDERS:
        return None
    config = litellm.utils.ProviderConfigManager.get_provider_chat_config(
        model=model, provider=litellm.LlmProviders(provider)
    )
    if config is None:
        return None
    default_key = dynamic_key
    if provider == "openai":
        # arg > litellm.api_base > OPENAI_BASE_URL / OPENAI_API_BASE > api.openai.com, and
        # litellm.api_key > OPENAI_API_KEY: what litellm's OpenAI handler would use.
        api_base = config.get_api_base(api_base)
        default_key = default_key or config.get_api_key(None)
    if not api_base:
        return None  # hosted_vllm without a base URL: leave it to litellm
    bridge = importlib.import_module("litellm.responses.bridge_check")
    if bridge.chat_completion_ends_in_responses_api(model, provider, api_base=api_base):
        return None  # litellm serves this model through the Responses API, not chat completions
    decides = LITELLM_DECIDES
    if litellm.OpenAIGPT5Config.is_model_gpt_5_model(model):
        decides = decides | GPT5_BRIDGE_PARAMS
    # A config with message rules of its own (o-series: system -> user on some models; vLLM:
    # assistant thinking blocks, video parts) runs litellm's request transform on every call.
    plain = litellm.OpenAIGPTConfig
    always_transform = (
        type(config).transform_request is not plain.transform_request
        or type(config)._transform_messages is not plain._transform_messages
    )
    url = config.get_complete_url(
        api_base=api_base, api_key=None, model=model, optional_params={}, litellm_params={}
    )
    return NativeTransport(
        provider=provider,
        model=model,
        api_base=api_base,
        default_key=default_key,
        provider_config=config,
        supported_params=frozenset(config.get_supported_openai_params(model)),
        openai_params=frozenset(litellm.constants.DEFAULT_CHAT_COMPLETION_PARAM_VALUES),
        litellm_decides=decides,
        always_transform=always_transform,
        wire=OpenAIWire(
            backend=name, url=url, timeouts=backend.timeouts, max_connections=MAX_CONNECTIONS
        ),
    )
