"""Property-based fuzz of a served gateway: `/v1/chat/completions` bodies and the admin reads'
query parameters, within a fixed, derandomized budget (about 35 s on two cores).

One `stepgate serve` process (SQLite ledger, Redis limits, a key with daily budgets) answers
every example; the fake upstreams always succeed, with a reply drawn per example. Per call: an
answer within STALL_S, never a 5xx, every error OpenAI-shaped, `/healthz` still answering.
The examples run twice (derandomized, so the same ones): the first pass also warms what
litellm imports lazily. After both: the key's and the team's budget counters equal the
ledger's spend (no reservation left unsettled), one ledger row per request that passed
routing with the status its caller saw, and the process' fds back near their post-warm-up
count and its RSS near its size after the first pass.

`STEPGATE_FUZZ_EXAMPLES=N` runs N examples per fuzzer instead (a longer local hunt).
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from gateway.core.params import CONTROL_KEYS
from gateway.ledger.tables import requests as ledger_requests
from gateway.limits.budgets import window
from gateway.limits.keys import KeyLimits
from tests.security.support import ADMIN, BEARER
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream
from tests.support.limits import mint

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/13"
STALL_S = 10.0  # an answer later than this is a stall: the one timing bound here
EXAMPLES = int(os.environ.get("STEPGATE_FUZZ_EXAMPLES", "0"))
CHAT_EXAMPLES = EXAMPLES or 300
ADMIN_EXAMPLES = EXAMPLES or 400
FD_SLACK = 4
RSS_SLACK_KIB = 40 * 1024
DAILY_BUDGET_NANOS = 10**12  # $1000: never reached, so every reservation is settled, not refused

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 5, first_token_s: 5}}
    diffusion: {{steps: 16, canvas_length: 128, threshold: 0.9}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  ar-openai:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 5}}
  ar-anthropic:
    type: litellm
    model: anthropic/claude-haiku-4-5
    api_key_env: TEST_ANTHROPIC_KEY
    base_url: {anthropic}
    timeouts: {{connect_s: 1, request_s: 5}}
baseline: ar-openai
retry: {{max_attempts: 1}}
request_timeout_s: 8
aliases:
  gpt-4.1-mini: ar-openai
  claude-haiku: ar-anthropic
  dllm-direct: {{backend: dllm, checks: none}}
routes:
  - name: checked
    match: {{kind: [extract, format]}}
    target: dllm
    fallbacks: [ar-openai]
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-openai}}
  - name: fast
    match: {{kind: [classify, lookup]}}
    target: dllm
    fallbacks: [ar-openai]
  - name: deep
    target: ar-openai
    fallbacks: [ar-anthropic]
default_route: deep
limits:
  teams:
    {team}: {{daily_budget_usd: "1000", rpm: 1000000}}
cache: {{enabled: true}}
"""


# ---------------------------------------------------------------------------------------------
# The served gateway and what the fuzz sent it


@dataclass
class Call:
    status: int
    stream: bool
    routed: bool  # the answer carries x-stepgate-route: it passed routing
    code: str = ""  # the error's code


@dataclass
class Served:
    base: str
    pid: int
    workdir: Path
    key: str
    key_id: str
    team: str
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
    calls: dict[str, Call] = field(default_factory=dict)
    admin_statuses: list[int] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir}/ledger.db"


def _server_pid(port: int) -> int:
    """The `stepgate serve` child of this process listening on `port` (from /proc)."""
    me, wanted = os.getpid(), str(port).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and b"serve" in argv and wanted in argv:
            return int(entry)
    raise RuntimeError(f"no stepgate serve child on port {port}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    fake_dllm_server: FakeUpstream,
    fake_openai_server: FakeUpstream,
    fake_anthropic_server: FakeUpstream,
) -> Iterator[Served]:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to read the server's fds and RSS")
    workdir = tmp_path_factory.mktemp("fuzz")
    team = f"fuzz-{uuid.uuid4().hex[:10]}"
    policy = workdir / "policy.yaml"
    policy.write_text(
        POLICY.format(
            dllm=fake_dllm_server.openai_base,
            openai=fake_openai_server.openai_base,
            anthropic=fake_anthropic_server.url,
            team=team,
        )
    )
    url = f"sqlite:///{workdir}/ledger.db"
    limits = KeyLimits(daily_budget_nanos=DAILY_BUDGET_NANOS, rpm=1_000_000)
    key, key_id = mint(url, team, limits)
    env = {
        "STEPGATE_ADMIN_KEY": ADMIN,
        "STEPGATE_REDIS_URL": REDIS_URL,
        "STEPGATE_POLICY_POLL_S": "0",
        "STEPGATE_PRELOAD_AR": "false",
        "STEPGATE_LOG_LEVEL": "error",
        "TEST_OPENAI_KEY": "test-openai-key",
        "TEST_ANTHROPIC_KEY": "test-anthropic-key",
    }
    fakes = (fake_dllm_server, fake_openai_server, fake_anthropic_server)
    for fake in fakes:
        fake.reset_all()
    try:
        with serve(policy, workdir, env=env) as base:
            port = int(base.rsplit(":", 1)[1])
            yield Served(base, _server_pid(port), workdir, key, key_id, team, fakes)
    finally:
        for fake in fakes:
            fake.reset_all()


# ---------------------------------------------------------------------------------------------
# Strategies


# Any code point: NUL, controls, lone surrogates, private use, astral planes.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=24)
SHORT_TEXT = st.text(max_size=12)
KEY_TEXT = st.sampled_from(["a", "v", "x", "", "$ref", "__proto__", "\x00"]) | SHORT_TEXT
HUGE_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**16, 10**30, 10**400])
NUMBERS = (
    st.integers(-5, 5)
    | st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.5, -0.0, 1e308, 5e-324, 1.0, 2.0000001])
)
LEAF = st.none() | st.booleans() | NUMBERS | ANY_TEXT
JSON = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY_TEXT, inner, max_size=3),
    max_leaves=10,
)
# Anything where a number is expected: numbers, their look-alikes, the wrong types.
SCALAR = NUMBERS | st.booleans() | st.none() | st.sampled_from(["1", "inf", "", "NaN"]) | JSON

PATTERNS = st.sampled_from(
    [
        "^[a-z]+$",
        "(",
        "[",
        "*",
        "\\",
        "^(a+)+$",
        "^(a|aa)+$",
        "(?P<x>a)(?P=x)",
        "\\p{L}+",
        "a{1,99999}",
        "(?<=a)b",
        "\\d{3}",
        "(?i)x",
        "\x00",
    ]
) | st.text(max_size=8)
# Mostly local references (they validate, or dangle); now and then one pointing outside, which
# the edge refuses before anything could be fetched.
REFS = st.sampled_from(
    ["#/$defs/a", "#", "#/nope", "#/properties/v", "#/$defs/%25", "#/definitions/a", "#/$defs/a",
     "#/$defs/a/properties/v", "http://127.0.0.1:9/s.json", "other.json", "urn:x", ""]
)  # fmt: skip
TYPES = st.sampled_from(
    ["object", "array", "string", "integer", "number", "boolean", "null", "weird"]
) | st.lists(st.sampled_from(["string", "null", "object", "x"]), max_size=3)
FORMATS = st.sampled_from(["email", "date-time", "uri", "regex", "ipv4", "uuid", "nope"])
SCHEMA_LEAF = LEAF | st.fixed_dictionaries(
    {},
    optional={
        "type": TYPES,
        "pattern": PATTERNS,
        "enum": st.lists(LEAF, max_size=4) | LEAF,
        "const": LEAF,
        "format": FORMATS,
        "minLength": SCALAR,
        "maxLength": SCALAR,
        "minimum": SCALAR,
        "multipleOf": SCALAR,
        "$ref": REFS,
        "$schema": st.sampled_from(["https://json-schema.org/draft/2020-12/schema", "x"]),
    },
)
SCHEMA = st.recursive(
    SCHEMA_LEAF,
    lambda inner: st.fixed_dictionaries(
        {},
        optional={
            "type": TYPES,
            "properties": st.dictionaries(KEY_TEXT, inner, max_size=3) | inner,
            "patternProperties": st.dictionaries(PATTERNS, inner, max_size=2),
            "additionalProperties": st.booleans() | inner,
            "unevaluatedProperties": st.booleans() | inner,
            "required": st.lists(KEY_TEXT, max_size=3) | LEAF,
            "items": inner,
            "prefixItems": st.lists(inner, max_size=2),
            "anyOf": st.lists(inner, max_size=3),
            "oneOf": st.lists(inner, max_size=2),
            "allOf": st.lists(inner, max_size=2),
            "not": inner,
            "if": inner,
            "then": inner,
            "$defs": st.dictionaries(KEY_TEXT, inner, max_size=2),
            "definitions": st.dictionaries(KEY_TEXT, inner, max_size=2),
            "$ref": REFS,
            "$dynamicRef": REFS,
            "$id": st.sampled_from(["http://127.0.0.1:9/root.json", "urn:root", "#x", ""]),
        },
    ),
    max_leaves=8,
)


def nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


DEEP = st.integers(1, 120).map(nested)

URLS = st.sampled_from(
    ["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo=", "http://127.0.0.1:9/x",
     "file:///etc/passwd", "data:", "", "https://"]
) | SHORT_TEXT  # fmt: skip
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": ANY_TEXT | JSON}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": URLS}) | URLS},
        optional={"detail": JSON},
    ),
    st.fixed_dictionaries({"type": st.just("image_url")}, optional={"image_url": JSON}),
    st.fixed_dictionaries(
        {"type": st.just("file")},
        optional={
            "file": st.fixed_dictionaries(
                {},
                optional={
                    "file_id": URLS | JSON,
                    "file_data": URLS | JSON,
                    "filename": ANY_TEXT,
                },
            )
            | JSON
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_audio", "refusal", "weird", ""]) | JSON},
        optional={"text": JSON, "input_audio": JSON},
    ),
    JSON,
)
CONTENT = st.lists(PART, min_size=1, max_size=4) | st.lists(PART, max_size=4) | ANY_TEXT | JSON
ROLE = st.sampled_from(
    ["user", "system", "developer", "assistant", "tool", "function", "user", "bot", ""]
) | JSON  # fmt: skip
TOOL_CALL = (
    st.fixed_dictionaries(
        {},
        optional={
            "id": ANY_TEXT,
            "type": st.sampled_from(["function", "x"]),
            "function": st.fixed_dictionaries(
                {}, optional={"name": ANY_TEXT, "arguments": st.just('{"a": 1}') | ANY_TEXT | JSON}
            ),
        },
    )
    | JSON
)
MESSAGE_EXTRAS = {
    "name": ANY_TEXT | JSON,
    "tool_calls": st.lists(TOOL_CALL, max_size=2) | JSON,
    "tool_call_id": ANY_TEXT | JSON,
    "function_call": JSON,
    "refusal": JSON,
    "extra": DEEP,
}
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": ROLE, "content": CONTENT}, optional=MESSAGE_EXTRAS),
    st.fixed_dictionaries({"role": ROLE, "content": CONTENT}, optional=MESSAGE_EXTRAS),
    st.fixed_dictionaries({"role": ROLE}, optional=MESSAGE_EXTRAS),
    JSON,
)
# Text a valid body carries: any code point but lone surrogates (those make invalid JSON).
TEXT = st.text(max_size=40)
VALID_PART = st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}) | st.fixed_dictionaries(
    {
        "type": st.just("image_url"),
        "image_url": st.fixed_dictionaries(
            {"url": st.sampled_from(["https://example.com/a.png", "data:image/png;base64,AA=="])}
        ),
    }
)
VALID_MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "user", "assistant"]),
        "content": TEXT | st.lists(VALID_PART, min_size=1, max_size=3),
    },
    optional={"name": st.sampled_from(["agent", "a-b_c"])},
)
VALID_MESSAGES = st.lists(VALID_MESSAGE, min_size=1, max_size=4)
# A well-formed message but for its content parts: images as bare strings, http:// and file
# URLs, parts that are not objects, unknown types.
ODD_PARTS_MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant"]),
        "content": st.lists(PART | VALID_PART, min_size=1, max_size=4),
    }
)
ODD_MESSAGES = (
    st.lists(VALID_MESSAGE, min_size=1, max_size=2).flatmap(
        lambda plain: st.lists(MESSAGE, max_size=3).map(lambda odd: plain + odd)
    )
    | st.lists(MESSAGE, max_size=3)
    | JSON
)
VALID_TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["lookup_order", "f", "refund.v2"])},
            optional={"parameters": SCHEMA, "description": TEXT, "strict": st.booleans()},
        ),
    }
)
ODD_TOOL = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "custom"]) | JSON},
    optional={
        "function": st.fixed_dictionaries(
            {"name": ANY_TEXT | JSON},
            optional={"parameters": SCHEMA, "description": ANY_TEXT, "strict": SCALAR},
        )
        | JSON
    },
)
VALID_RESPONSE_FORMAT = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("json_schema"),
            "json_schema": st.fixed_dictionaries(
                {"name": st.just("v"), "schema": SCHEMA}, optional={"strict": st.booleans()}
            ),
        }
    ),
    st.sampled_from([{"type": "json_object"}, {"type": "text"}]),
)
ODD_RESPONSE_FORMAT = (
    st.fixed_dictionaries(
        {"type": st.sampled_from(["json_schema", "json_object", "text", "x"]) | JSON},
        optional={
            "json_schema": st.fixed_dictionaries(
                {}, optional={"name": ANY_TEXT | JSON, "schema": SCHEMA, "strict": SCALAR}
            )
            | JSON
        },
    )
    | JSON
)
HINT_KEYS = ["step_kind", "latency_budget_ms", "chain_id", "conversation_id", "chain_budget_ms",
             "chain_budget_usd"]  # fmt: skip
KINDS = st.sampled_from(["classify", "extract", "format", "lookup", "summarize", "draft", "reason"])
HINT_VALUES = KINDS | st.sampled_from(["0", "250", "-1", "1e9", "abc", "0.01", "nan"]) | TEXT
VALID_METADATA = st.dictionaries(st.sampled_from(HINT_KEYS) | TEXT, HINT_VALUES, max_size=6)
ODD_METADATA = (
    st.dictionaries(st.sampled_from(HINT_KEYS) | SHORT_TEXT, KINDS | ANY_TEXT | SCALAR, max_size=18)
    | JSON
    | DEEP
)
VALID_MODEL = st.sampled_from(
    ["auto", "auto", "auto", "fast", "deep", "checked", "gpt-4.1-mini", "claude-haiku",
     "dllm-direct"]
)  # fmt: skip
ODD_MODEL = st.sampled_from(["nope", "", "x" * 300, "auto\x00"]) | ANY_TEXT | JSON
STOP = TEXT | st.lists(TEXT, max_size=16)
# Each field's valid values; a body takes any of them, all at once if it likes.
VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "tools": st.lists(VALID_TOOL, min_size=1, max_size=3),
    "tool_choice": st.sampled_from(["auto", "none", "required"]),
    "parallel_tool_calls": st.booleans(),
    "response_format": VALID_RESPONSE_FORMAT,
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "max_tokens": st.integers(1, 64) | st.integers(1, 1_000_000),
    "max_completion_tokens": st.integers(1, 1_000_000),
    "n": st.just(1),
    "stop": STOP,
    "seed": st.integers(-(2**63), 2**63 - 1),
    "user": TEXT,
    "metadata": VALID_METADATA,
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 20),
    "frequency_penalty": st.floats(-2, 2),
    "presence_penalty": st.floats(-2, 2),
    "logit_bias": st.dictionaries(st.integers(0, 100_000).map(str), st.integers(-100, 100)),
    "top_k": st.integers(-1, 100),
    "reasoning_effort": st.sampled_from(["low", "medium", "high"]),
}
# The wrong values a field may get instead: wrong types, huge, negative, NaN-ish, nested.
ODD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": ODD_MODEL,
    "messages": ODD_MESSAGES,
    "stream": SCALAR,
    "stream_options": st.fixed_dictionaries({"include_usage": SCALAR}) | JSON,
    "tools": st.lists(ODD_TOOL | VALID_TOOL, max_size=3) | JSON,
    "tool_choice": st.fixed_dictionaries({"type": st.just("function"), "function": JSON}) | JSON,
    "parallel_tool_calls": SCALAR,
    "response_format": ODD_RESPONSE_FORMAT,
    "temperature": SCALAR,
    "top_p": SCALAR,
    "max_tokens": SCALAR,
    "max_completion_tokens": SCALAR,
    "n": SCALAR,
    "stop": ANY_TEXT | st.lists(ANY_TEXT, max_size=20) | JSON,
    "seed": SCALAR,
    "user": ANY_TEXT | JSON,
    "metadata": ODD_METADATA,
    "logprobs": SCALAR,
    "top_logprobs": SCALAR,
    "logit_bias": st.dictionaries(SHORT_TEXT, SCALAR, max_size=3) | JSON,
    "frequency_penalty": SCALAR,
    "reasoning_effort": JSON,
    "thinking": JSON,
    "prediction": JSON,
    "modalities": JSON,
    "audio": JSON,
    "store": SCALAR,
    "service_tier": JSON,
    "functions": JSON,
    "function_call": JSON,
    "web_search_options": JSON,
    "output_config": JSON,
}
# Keys a body may not carry: upstream control (base_url, api_key, ...) and unknown ones.
STRAY_KEY = st.sampled_from(sorted(CONTROL_KEYS)) | st.sampled_from(
    ["litellm_params", "mock_response", "aws_x", "api_whatever", "prompt", "deep"]
) | SHORT_TEXT  # fmt: skip
PERTURBATION = st.one_of(
    st.sampled_from(sorted(ODD_FIELDS)).flatmap(
        lambda name: ODD_FIELDS[name].map(lambda value: (name, value))
    ),
    st.tuples(STRAY_KEY, st.sampled_from(["http://127.0.0.1:9/v1", "k"]) | JSON),
    st.tuples(st.sampled_from(sorted(VALID_FIELDS)), st.just(None)),
)


@st.composite
def chat_bodies(draw: st.DrawFn) -> Any:
    """A valid body (any mix of valid fields); now and then an odd message put in, up to
    three fields made odd or dropped, or no object at all."""
    body: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {"model": VALID_MODEL, "messages": VALID_MESSAGES}, optional=VALID_FIELDS
        )
    )
    if rarely(draw, 3):
        messages = body["messages"]
        odd = draw(ODD_PARTS_MESSAGE | MESSAGE)
        messages.insert(draw(st.integers(0, len(messages))), odd)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        name, value = draw(PERTURBATION)
        if value is None and draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = value
    if rarely(draw, 20):
        return draw(JSON)  # not even an object, usually
    return body


CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json", "application/json; charset=utf-8", "text/plain",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json; charset=utf-16", ""]
)  # fmt: skip
# Printable ASCII; HTTP trims the whitespace around a header value, so none is sent.
HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(
    str.strip
)
HINT_HEADERS = st.dictionaries(
    st.sampled_from(["x-step-kind", "x-latency-budget-ms", "x-chain-id", "x-chain-budget-ms",
                     "x-chain-budget-usd", "x-conversation-id", "idempotency-key",
                     "x-request-id", "x-client-request-id"]),
    KINDS | st.integers(0, 10**6).map(str) | HEADER_VALUE,
    max_size=2,
)  # fmt: skip
# Who calls: the budgeted key mostly; also nobody, a bad `sg-` key and garbage.
AUTH = st.sampled_from(["key", "key", "key", "key", "none", "sg-bad", "garbage"])


@st.composite
def encoded(draw: st.DrawFn, body: Any) -> bytes:
    """`body` as JSON text, ASCII-escaped or raw UTF-8 (lone surrogates made invalid bytes),
    with NaN/Infinity where floats are, and now and then cut short."""
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=True)
    raw = text.encode("utf-8", "surrogatepass")
    if rarely(draw, 12) and len(raw) > 2:
        raw = raw[: draw(st.integers(1, len(raw) - 1))]
    return raw


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (a middle value: generation favours the bounds)."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2


# Past the 4 MiB body limit: a 413, read no further.
OVERSIZED = b'{"model": "auto", "messages": [{"role": "user", "content": "%s"}]}' % (
    b"a" * (5 << 20)
)
RAW_BODY = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"", b"null", b"[]", b"{}", b'"x"', b"1", b"NaN", b"\xef\xbb\xbf{}", b"{" * 5000,
         b"[" * 100_000, b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}',
         b'{"model": "auto", "model": 1, "messages": []}', b'{"model": "auto"}\n{"x": 1}',
         b'{"model": 1e999, "messages": [{"role": "user", "content": "hi"}]}',
         b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": '
         + b"9" * 5000 + b"}",
         OVERSIZED]
    ),
)  # fmt: skip


@dataclass(frozen=True)
class ChatCase:
    raw: bytes
    content_type: str
    headers: dict[str, str]
    auth: str
    dllm_reply: dict[str, Any]
    openai_reply: dict[str, Any]


REPLY_TEXT = st.one_of(
    st.sampled_from(["billing", "ok", '{"v": "a"}', '{"v": 12}', "[1, 2]", "", "null"]),
    JSON.map(json.dumps),  # ASCII-escaped: a lone surrogate in a reply would break the fake
    st.text(max_size=30),
)
REPLY = st.fixed_dictionaries(
    {"content": REPLY_TEXT, "logprobs": st.floats(-6, 0)},
    optional={
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["lookup_order", "f"]), "arguments": JSON}
            ),
            min_size=1,
            max_size=2,
        ),
        "finish_reason": st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    },
)


@st.composite
def chat_cases(draw: st.DrawFn) -> ChatCase:
    raw = draw(RAW_BODY) if rarely(draw, 8) else draw(encoded(draw(chat_bodies())))
    return ChatCase(
        raw=raw,
        content_type=draw(CONTENT_TYPES),
        headers=draw(HINT_HEADERS) if rarely(draw, 3) else {},
        auth=draw(AUTH),
        dllm_reply=draw(REPLY),
        openai_reply=draw(REPLY),
    )


TIMEY = st.one_of(
    st.from_regex(r"\A-?[0-9]{1,14}[smhdwy]?\Z"),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.floats(-1e12, 1e12).map(str),
    st.sampled_from(["7d", "24h", "0", "inf", "nan", "1e400", "-0", "9999-12-31T23:59Z", "now",
                     "2026-02-30", "1_000", "٣٤", " 7d ", "7D", "0x10", "+7d", "1.5e9"]),
)  # fmt: skip
NAMES = st.sampled_from(["fast", "deep", "checked", "dllm", "ar-openai", "classify", "support"])


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# A cursor as the page hands it out ([started_at, request_id], base64) with any values inside.
CURSORS = st.tuples(NUMBERS | LEAF, ANY_TEXT | LEAF).map(list).map(_cursor) | JSON.map(_cursor)
ANY_VALUE = st.one_of(
    TIMEY,
    st.integers().map(str),
    st.floats().map(str),
    ANY_TEXT.map(lambda s: s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.text(st.sampled_from("AZaz09-_=+/!é"), max_size=60),  # cursor-ish base64
    st.just("A" * 3000),
)
DURATION = st.tuples(st.integers(1, 9999), st.sampled_from("smhdw")).map(lambda t: f"{t[0]}{t[1]}")
INSTANT = st.one_of(
    DURATION,
    st.integers(0, 253_402_214_400).map(str),
    st.datetimes(datetime(1970, 1, 2), datetime(9999, 12, 30)).map(lambda d: d.isoformat()),
)
# Each parameter's accepted values: a query of these alone is answered 200 (or refused as
# a whole, e.g. an empty window or a time series of too many points).
GOOD: dict[str, st.SearchStrategy[str]] = {
    "since": INSTANT,
    "until": INSTANT,
    "range": DURATION,
    "team": NAMES | TEXT.filter(lambda t: "\x00" not in t),
    "route": NAMES,
    "kind": NAMES,
    "backend": NAMES,
    "group_by": st.sampled_from(["route", "backend", "team", "kind", "day"]),
    "bucket": st.sampled_from(["minute", "hour", "day"]),
    "limit": st.integers(1, 200).map(str),
    "escalated": st.sampled_from(["true", "false"]),
    "cursor": st.tuples(st.floats(0, 2e9), st.sampled_from(["r", "abc-1"])).map(list).map(_cursor),
}
# And its odd values: out of range, wrong form, wrong type, huge, other scripts' digits.
ODD: dict[str, st.SearchStrategy[str]] = {
    "since": TIMEY,
    "until": TIMEY,
    "range": TIMEY,
    "team": ANY_VALUE,
    "route": ANY_VALUE,
    "kind": ANY_VALUE,
    "backend": ANY_VALUE,
    "group_by": ANY_VALUE,
    "bucket": st.sampled_from(["week", "Hour", ""]) | ANY_VALUE,
    "limit": st.sampled_from(["abc", "1.5", " 7", "٣", "1e3", "0x10", "+5", "-5", "0", "201"])
    | st.integers().map(str)
    | ANY_VALUE,
    "escalated": st.sampled_from(["1", "TRUE", "yes"]) | ANY_VALUE,
    "cursor": CURSORS | ANY_VALUE,
}
WINDOW = ("since", "until", "range", "team", "route", "kind", "backend")
ADMIN_PATHS: dict[str, tuple[str, ...]] = {
    "/v1/spend/summary": (*WINDOW, "group_by"),
    "/v1/spend/timeseries": (*WINDOW, "group_by", "bucket"),
    "/v1/spend/escalations": WINDOW[:-1],  # no backend
    "/dashboard/api/requests": (*WINDOW, "limit", "cursor", "escalated"),
    "/dashboard/api/keys": (*WINDOW, "limit"),
    "/dashboard/api/meta": (),
}
STRAY_PARAM = st.sampled_from([*GOOD, "by", "format", "since[]"]) | SHORT_TEXT


@st.composite
def admin_queries(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A path and a query of its own parameters with accepted values, then (mostly) one
    change: a value made odd, a parameter given twice, or one it does not take."""
    path = draw(st.sampled_from(sorted(ADMIN_PATHS)))
    own = ADMIN_PATHS[path]
    names = draw(st.lists(st.sampled_from(own), unique=True, max_size=4)) if own else []
    query = [(name, draw(GOOD[name])) for name in names]
    change = draw(st.sampled_from(["odd", "odd", "odd", "none", "twice", "stray"]))
    if change == "odd" and own:
        name = draw(st.sampled_from(own))
        query = [(n, v) for n, v in query if n != name] + [(name, draw(ODD[name]))]
    elif change == "twice" and query:
        query.append(draw(st.sampled_from(query)))
    elif change == "stray":
        query.append((draw(STRAY_PARAM), draw(ANY_VALUE)))
    return path, draw(st.permutations(query))


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# ---------------------------------------------------------------------------------------------
# Properties of one answer


def assert_error_shape(body: bytes, status: int) -> None:
    data = json.loads(body)
    assert isinstance(data, dict) and isinstance(data.get("error"), dict), (status, body[:300])
    error = data["error"]
    for name in ("message", "type", "code"):
        assert isinstance(error.get(name), str) and error[name], (status, name, error)


def read_answer(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The whole answer, or a failure if it is not complete within STALL_S."""
    deadline = time.monotonic() + STALL_S
    with http.stream(method, url, **kwargs) as response:
        chunks = []
        for chunk in response.iter_raw():
            chunks.append(chunk)
            assert time.monotonic() < deadline, f"{url}: still streaming after {STALL_S}s"
        response._content = b"".join(chunks)
    return response


def assert_sse(body: bytes) -> None:
    """A 200 stream: JSON events ending in [DONE]; an in-stream error is a failure too (the
    upstreams always succeed), and it must be OpenAI-shaped anyway."""
    events = [line[5:].strip() for line in body.split(b"\n") if line.startswith(b"data:")]
    assert events, body[:300]
    for event in events[:-1]:
        data = json.loads(event)
        assert isinstance(data, dict), event
        if "error" in data:
            assert_error_shape(event, 200)
            raise AssertionError(f"in-stream error with upstreams that always succeed: {event!r}")
    assert events[-1] == b"[DONE]", events[-1][:300]


def healthy(http: httpx.Client, base: str) -> None:
    response = http.get(f"{base}/healthz", timeout=STALL_S)
    assert response.status_code == 200, response.text


def send_chat(served: Served, http: httpx.Client, case: ChatCase) -> None:
    dllm, openai, _ = served.fakes
    dllm.set_reply(**case.dllm_reply)
    openai.set_reply(**case.openai_reply)
    headers = dict(case.headers)
    if case.content_type:
        headers["content-type"] = case.content_type
    if case.auth == "key":
        headers["authorization"] = f"Bearer {served.key}"
    elif case.auth != "none":
        headers["authorization"] = f"Bearer {case.auth}"
    try:
        stream = json.loads(case.raw).get("stream") is True
    except (ValueError, AttributeError, RecursionError):
        stream = False
    response = read_answer(
        http, "POST", f"{served.base}/v1/chat/completions", content=case.raw, headers=headers
    )
    status, body = response.status_code, response.content
    rid = response.headers.get("x-request-id")
    assert rid, (status, response.headers)  # every answer names the gateway's request id
    served.calls[rid] = Call(status, stream, "x-stepgate-route" in response.headers)
    assert status < 500, (status, body[:500])
    if status == 200:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            assert_sse(body)
        else:
            data = json.loads(body)
            assert data["object"] == "chat.completion" and data["choices"], body[:300]
    else:
        assert_error_shape(body, status)
        served.calls[rid].code = json.loads(body)["error"]["code"]
        if case.auth == "sg-bad":
            assert status == 401, status
    healthy(http, served.base)


def send_admin(served: Served, http: httpx.Client, path: str, query: list[tuple[str, str]]) -> None:
    response = read_answer(
        http, "GET", f"{served.base}{path}", params=httpx.QueryParams(query), headers=BEARER
    )
    status, body = response.status_code, response.content
    served.admin_statuses.append(status)
    assert status in (200, 400), (path, query, status, body[:500])
    if status == 200:
        assert isinstance(json.loads(body), dict | list)
    else:
        assert_error_shape(body, status)
        assert json.loads(body)["error"]["type"] == "invalid_request_error"
    healthy(http, served.base)


# ---------------------------------------------------------------------------------------------
# The fuzz


WARMUP: list[dict[str, Any]] = [
    {"model": m, "messages": [{"role": "user", "content": c}], "stream": s, "max_tokens": 8}
    for m in ("auto", "gpt-4.1-mini", "claude-haiku", "dllm-direct")
    for c in ("Is ticket 4411 about billing or shipping?", "Reason carefully about this refund.")
    for s in (False, True)
]


def warm_up(served: Served, http: httpx.Client) -> None:
    """Every backend, streamed and not, errors and admin reads: imports and pools settle."""
    for round_ in range(2):
        for body in WARMUP:
            r = http.post(
                f"{served.base}/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {served.key}"},
            )
            assert r.status_code == 200, r.text
        fmt = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}
        for extra in ({"response_format": fmt}, {"max_tokens": -1}, {"base_url": "x"}):
            body = {**WARMUP[0], **extra, "stream": round_ % 2 == 1}
            http.post(f"{served.base}/v1/chat/completions", json=body)
        http.post(f"{served.base}/v1/chat/completions", content=b"{")
        for path in ("/v1/spend/summary", "/dashboard/api/requests", "/dashboard/api/keys"):
            http.get(f"{served.base}{path}", headers=BEARER)


def budget_counter(served: Served, scope: str) -> int | None:
    """The key's or its team's daily budget counter in Redis: spent + reserved, nano-dollars."""
    ident = served.key_id if scope == "key" else served.team
    name = f"stepgate:b:{scope}:{ident}:{window('daily', datetime.now(UTC)).tag}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        raw = client.get(name)
    finally:
        client.close()
    return None if raw is None else int(raw)


def settle_wait(served: Served, limit_s: float = 15.0) -> tuple[list[dict[str, Any]], int | None]:
    """Ledger rows and the key's budget counter once every 200 has its row and the counter
    has stopped moving (or `limit_s` passed): the writer and the settles run off the request
    path."""
    answered = {rid for rid, call in served.calls.items() if call.status == 200}
    engine = create_engine(served.database_url)
    deadline = time.monotonic() + limit_s
    last: tuple[int, int | None] | None = None
    try:
        while True:
            with engine.connect() as conn:
                stmt = select(
                    ledger_requests.c.request_id,
                    ledger_requests.c.status,
                    ledger_requests.c.cost_nanos,
                    ledger_requests.c.api_key_id,
                    ledger_requests.c.stream,
                )
                rows = [dict(r._mapping) for r in conn.execute(stmt)]
            counter = budget_counter(served, "key")
            mine = [r for r in rows if r["api_key_id"] == served.key_id]
            spent = sum(r["cost_nanos"] or 0 for r in mine)
            state = (len(rows), counter)
            done = answered <= {r["request_id"] for r in rows} and counter == spent
            if (done and state == last) or time.monotonic() > deadline:
                return rows, counter
            last = state
            time.sleep(0.3)
    finally:
        engine.dispose()


def fuzz_once(served: Served) -> None:
    """Both fuzzers, over one keep-alive connection that is closed at the end."""
    with httpx.Client(timeout=STALL_S) as http:

        @fuzz_settings(CHAT_EXAMPLES)
        @given(case=chat_cases())
        def fuzz_chat(case: ChatCase) -> None:
            send_chat(served, http, case)

        @fuzz_settings(ADMIN_EXAMPLES)
        @given(case=admin_queries())
        def fuzz_admin(case: tuple[str, list[tuple[str, str]]]) -> None:
            send_admin(served, http, *case)

        fuzz_chat()
        fuzz_admin()


def fds_settled(pid: int, limit: int) -> int:
    """The process' fd count once it is at most `limit`, or after 10 s: closing a connection
    on the server side follows the client's close by a moment."""
    deadline = time.monotonic() + 10
    while (count := fd_count(pid)) > limit and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def test_fuzzed_chat_and_admin_calls_leave_the_gateway_whole(served: Served) -> None:
    pid = served.pid
    with httpx.Client(timeout=STALL_S) as http:
        warm_up(served, http)
    warm_rows, _ = settle_wait(served)
    served.calls.clear()
    time.sleep(0.5)  # the server sees the warm-up connection close
    base_fds = fd_count(pid)

    # Two passes over the same (derandomized) examples: the first also pulls in what litellm
    # and the validators import lazily on first use (a one-off of tens of MiB), so growth on
    # the second is what a per-request leak would add.
    fuzz_once(served)
    first_rss = rss_kib(pid)
    fuzz_once(served)

    rows, counter = settle_wait(served)
    # No unsettled reservation: the key's budget counter (spent + reserved, in Redis) is
    # exactly the spend the ledger recorded for that key.
    mine = [r for r in rows if r["api_key_id"] == served.key_id]
    assert counter is not None, "the key was never charged"
    spent = sum(r["cost_nanos"] or 0 for r in mine)
    assert counter == spent, (counter, spent, len(mine))
    assert budget_counter(served, "team") == spent  # the team's counter: the same requests
    # One ledger row per request that passed routing, with the status its caller saw.
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["request_id"] not in by_id, f"two ledger rows for {row['request_id']}"
        by_id[row["request_id"]] = row
    before = {row["request_id"] for row in warm_rows}
    fuzzed = {rid: row for rid, row in by_id.items() if rid not in before}
    for rid, row in fuzzed.items():
        assert rid in served.calls, f"a ledger row for a request never answered: {rid}"
        assert row["status"] == served.calls[rid].status, (rid, row, served.calls[rid])
    routed = {rid for rid, call in served.calls.items() if call.routed}
    answered = {rid for rid, call in served.calls.items() if call.status == 200}
    assert answered <= routed <= set(fuzzed), sorted(routed - set(fuzzed))[:5]
    assert len(answered) >= CHAT_EXAMPLES // 3, f"only {len(answered)} fuzzed requests answered"
    assert {200, 400} <= set(served.admin_statuses)  # admin values both accepted and refused

    # Resources: with the client's connections closed, the process is back near its baseline.
    fds = fds_settled(pid, base_fds + FD_SLACK)
    assert fds <= base_fds + FD_SLACK, (base_fds, sorted(os.listdir(f"/proc/{pid}/fd")))
    assert rss_kib(pid) <= first_rss + RSS_SLACK_KIB, (first_rss, rss_kib(pid))


# ---------------------------------------------------------------------------------------------
# What the fuzz found: shapes litellm's Anthropic translation failed on before any byte was
# sent, reported as `provider_unavailable` 502 (the backend looked down, and a route would
# fall back). The edge now refuses them as the caller's 400, as OpenAI does.

SCHEMA_OK = {
    "$defs": {"id": {"type": "string"}},
    "type": "object",
    "properties": {"v": {"$ref": "#/$defs/id"}},
}


def _format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}


def _tool(parameters: Any) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"tools": _tool(True)}, "tools", "caller_bad_request"),
    ({"tools": _tool(5e-324)}, "tools", "caller_bad_request"),
    ({"tools": _tool("x")}, "tools", "caller_bad_request"),
    ({"response_format": _format(True)}, "response_format", "caller_bad_request"),
    ({"response_format": _format([])}, "response_format", "caller_bad_request"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "v"}}},
     "response_format", "caller_bad_request"),
    ({"response_format": {"type": "json_schema", "json_schema": None}},
     "response_format", "caller_bad_request"),
    ({"response_format": {"type": 0, "json_schema": {"name": "v"}}},
     "response_format", "caller_bad_request"),
    ({"response_format": _format({"definitions": {"v": {"$ref": 5e-324}}})},
     "response_format.json_schema.schema", "invalid_schema"),
    ({"response_format": _format({"properties": {"$ref": {"type": "string"}}})},
     "response_format.json_schema.schema", "invalid_schema"),
    ({"response_format": _format({"$defs": {"a": True}, "$ref": "#/$defs/a"})},
     "response_format.json_schema.schema", "invalid_schema"),
    ({"tools": _tool({"definitions": {"v": 5}, "$ref": "#/definitions/v"})},
     "tools[0].function.parameters", "invalid_schema"),
    ({"tools": _tool({}), "tool_choice": {"type": "function", "function": [1]}},
     "tool_choice", "caller_bad_request"),
]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("extra", "param", "code"), REFUSED)
def test_shapes_an_sdk_cannot_translate_are_the_callers_400(
    served: Served, extra: dict[str, Any], param: str, code: str, stream: bool
) -> None:
    anthropic = served.fakes[2]
    anthropic.clear()
    body = {"model": "claude-haiku", "messages": [{"role": "user", "content": "hi"}], **extra}
    r = httpx.post(
        f"{served.base}/v1/chat/completions", json={**body, "stream": stream}, timeout=STALL_S
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert anthropic.requests == []


def test_a_local_ref_to_an_object_schema_still_reaches_anthropic(served: Served) -> None:
    anthropic = served.fakes[2]
    anthropic.clear()
    body = {
        "model": "claude-haiku",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": _format(SCHEMA_OK),
        "tools": _tool(SCHEMA_OK),
    }
    r = httpx.post(f"{served.base}/v1/chat/completions", json=body, timeout=STALL_S)
    assert r.status_code == 200, r.text
    assert len(anthropic.requests) == 1
