"""What a caller may put in a chat body: the parameter allow-list, control keys, size caps.

Every byte of a request is the caller's. Upstream URLs, credentials and headers come only from
the policy, so the edge accepts the chat parameters providers document and nothing else: a key
that steers an SDK or the gateway (`base_url`, `api_key`, `extra_headers`, `mock_response`, ...)
is refused by name, any other unknown key as unknown. Connectors then forward only what their
provider takes. The caps bound what one request can make the gateway do (parse, walk, reserve).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# OpenAI's documented /v1/chat/completions parameters (model, messages, stream included).
OPENAI_CHAT_PARAMS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
# Generation parameters other providers document for chat, which litellm maps per provider
# (Anthropic `thinking`, `output_config`) or OpenAI-compatible servers take (vLLM, SGLang).
PROVIDER_CHAT_PARAMS = frozenset(
    {"thinking", "output_config", "top_k", "min_p", "repetition_penalty"}
)
CHAT_PARAMS = OPENAI_CHAT_PARAMS | PROVIDER_CHAT_PARAMS

# Keys that choose where a call goes, with what credentials or headers, or that make an SDK do
# something other than call the provider (litellm takes all of these as keyword arguments).
CONTROL_KEYS = frozenset(
    {
        "api_base",
        "api_key",
        "api_version",
        "base_url",
        "headers",
        "extra_headers",
        "extra_body",
        "extra_query",
        "custom_llm_provider",
        "organization",
        "project",
        "deployment_id",
        "mock_response",
        "mock_tool_calls",
        "mock_timeout",
        "mock_delay",
        "fallbacks",
        "context_window_fallback_dict",
        "model_list",
        "num_retries",
        "max_retries",
        "timeout",
        "request_timeout",
        "callbacks",
        "success_callback",
        "failure_callback",
        "input_cost_per_token",
        "output_cost_per_token",
        "litellm_params",
        "litellm_logging_obj",
        "proxy_server_request",
        "client",
        "http_client",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "vertex_project",
        "vertex_location",
        "vertex_credentials",
        "azure_ad_token",
        "drop_params",
        "allowed_openai_params",
    }
)
# Prefixes of SDK-internal keys (litellm_*, mock_*, aws_*, vertex_*, azure_*).
CONTROL_PREFIXES = ("litellm_", "mock_", "aws_", "vertex_", "azure_", "api_")

MAX_MESSAGES = 2_048
MAX_CONTENT_PARTS = 256
MAX_TOOLS = 128
MAX_JSON_DEPTH = 64
# No model generates more tokens than this in one answer; estimates and reservations rely on it.
MAX_OUTPUT_TOKENS = 1_000_000
MAX_STOP_SEQUENCES = 16


def is_control_key(name: str) -> bool:
    return name in CONTROL_KEYS or name.startswith(CONTROL_PREFIXES)


def unknown_params(keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """(control keys, other unknown keys) among a body's top-level keys, each sorted."""
    control: list[str] = []
    unknown: list[str] = []
    for name in keys:
        if name in CHAT_PARAMS:
            continue
        (control if is_control_key(name) else unknown).append(name)
    return sorted(control), sorted(unknown)


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` nests dicts/lists deeper than `limit` (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def remote_refs(schema: Any) -> list[str]:
    """Every `$ref`-like value in `schema` that points outside it (not a `#...` fragment)."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef", "$recursiveRef") and isinstance(value, str):
                    if not value.startswith("#"):
                        found.append(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return found
