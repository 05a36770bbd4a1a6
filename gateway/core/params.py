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
# Nodes a schema may have once its local `$ref`s are inlined (as SDKs do for Anthropic): a few
# KB of `$defs` that fan out can otherwise expand to millions of nodes, inlined on the loop.
MAX_SCHEMA_EXPANSION = 20_000
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


REF_KEYWORDS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})


def remote_refs(schema: Any) -> list[str]:
    """Every `$ref`-like value in `schema` that points outside it (not a `#...` fragment)."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in REF_KEYWORDS and isinstance(value, str):
                    if not value.startswith("#"):
                        found.append(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return found


def schema_shape_problem(schema: Any) -> str | None:
    """Why `schema` cannot be a JSON Schema that SDKs can rewrite, or None: a `$ref`-like
    value that is not a string, or `$defs` / `definitions` that do not map names to schema
    objects. Provider SDKs walk every such key wherever it is (litellm inlines `$defs` for
    Anthropic and calls `.split` on each `$ref`), and fail on other shapes in a way that
    reads as the backend being down."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in REF_KEYWORDS and not isinstance(value, str):
                    return f"a `{key}` value must be a string, a '#/...' reference into the schema"
                if key in ("$defs", "definitions") and not (
                    isinstance(value, dict) and all(isinstance(d, dict) for d in value.values())
                ):
                    return f"`{key}` must map names to schema objects"
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return None


def schema_expansion(schema: Any, limit: int = MAX_SCHEMA_EXPANSION) -> int:
    """How many nodes `schema` has with its local `#/$defs/...` (and `#/definitions/...`)
    references inlined, counted up to `limit` (a recursive reference counts once)."""
    if not isinstance(schema, dict):
        return 1
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        block = schema.get(key)
        if isinstance(block, dict):
            defs.update({f"#/{key}/{name}": d for name, d in block.items()})
    sizes: dict[str, int] = {}
    open_refs: set[str] = set()

    def size(node: Any) -> int:
        if isinstance(node, list):
            return sum(size(item) for item in node)
        if not isinstance(node, dict):
            return 1
        total = 1
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in defs:
            if ref not in sizes and ref not in open_refs:
                open_refs.add(ref)
                sizes[ref] = min(size(defs[ref]), limit)
                open_refs.discard(ref)
            total += sizes.get(ref, 1)
        for key, value in node.items():
            if key not in ("$defs", "definitions") and isinstance(value, dict | list):
                total += size(value)
                if total > limit:
                    return total
        return total

    return size(schema)
