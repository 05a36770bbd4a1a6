"""Each dLLM engine against its protocol-faithful fake: what is sent (and not), what comes back,
and how the engine's confidence reaches escalation. No module of ours is mocked: assertions
are on what the fakes recorded and on values computed here independently."""

from __future__ import annotations

import asyncio
import math
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from connectors.dllm.config import DllmBackend, Engine
from connectors.dllm.connector import DllmConnector
from gateway.cli import app
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.core.types import ChatRequest, Chunk, Completion
from gateway.policy.loader import PolicyLoadError, load_policy
from tests.support.app_client import running_app
from tests.support.fakes.engines import (
    FakeDlmserve,
    FakeInception,
    FakeSGLang,
    FakeVllm,
    generate_stream_error,
)
from tests.support.fakes.upstream import FakeUpstream, ok, status

INCEPTION_KEY = "test-inception-key"
LLADA2 = {
    "system": "<role>SYSTEM</role>{content}<|role_end|>",
    "user": "<role>HUMAN</role>{content}<|role_end|>",
    "generation": "<role>ASSISTANT</role>",
    "default_system": "detailed thinking off",
}
TICKET = (
    "Classify the ticket. Answer with one of: billing, shipping, refund.\n"
    "Ticket: my parcel has not arrived yet"
)
LABELS = ["billing", "shipping", "refund"]


@pytest.fixture(scope="module")
def sglang_server() -> Iterator[FakeSGLang]:
    with FakeSGLang() as fake:
        yield fake


@pytest.fixture(scope="module")
def inception_server() -> Iterator[FakeInception]:
    with FakeInception() as fake:
        yield fake


@pytest.fixture(scope="module")
def dlmserve_server() -> Iterator[FakeDlmserve]:
    with FakeDlmserve() as fake:
        yield fake


@pytest.fixture(scope="module")
def vllm_server() -> Iterator[FakeVllm]:
    with FakeVllm(model="diffusiongemma", diffusion_config={"canvas_length": 256}) as fake:
        yield fake


@pytest.fixture
def sglang(sglang_server: FakeSGLang) -> Iterator[FakeSGLang]:
    sglang_server.reset_all()
    yield sglang_server
    sglang_server.reset_all()


@pytest.fixture
def inception(
    inception_server: FakeInception, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeInception]:
    monkeypatch.setenv("TEST_INCEPTION_KEY", INCEPTION_KEY)
    inception_server.reset_all()
    yield inception_server
    inception_server.reset_all()


@pytest.fixture
def dlmserve(dlmserve_server: FakeDlmserve) -> Iterator[FakeDlmserve]:
    dlmserve_server.reset_all()
    yield dlmserve_server
    dlmserve_server.reset_all()


@pytest.fixture
def vllm(vllm_server: FakeVllm) -> Iterator[FakeVllm]:
    vllm_server.reset_all()
    yield vllm_server
    vllm_server.reset_all()


# --- helpers ---------------------------------------------------------------------------------


def backend(engine: str, base_url: str, **extra: Any) -> DllmBackend:
    return DllmBackend.model_validate(
        {
            "type": "dllm",
            "engine": engine,
            "base_url": base_url,
            "model": extra.pop("model", "m"),
            "timeouts": {"connect_s": 1, "request_s": 5},
            **extra,
        }
    )


def request(content: str = TICKET, **extra: Any) -> ChatRequest:
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return ChatRequest.from_wire(body)


def complete(config: DllmBackend, req: ChatRequest) -> Completion:
    conn = DllmConnector("d", config)

    async def go() -> Completion:
        try:
            return await conn.complete(req, Deadline.after(5))
        finally:
            await conn.aclose()

    return asyncio.run(go())


def stream(config: DllmBackend, req: ChatRequest, got: list[Chunk] | None = None) -> list[Chunk]:
    conn = DllmConnector("d", config)
    chunks = got if got is not None else []

    async def go() -> list[Chunk]:
        try:
            async for chunk in conn.stream(req, Deadline.after(5)):
                chunks.append(chunk)
            return chunks
        finally:
            await conn.aclose()

    return asyncio.run(go())


def paths(fake: FakeUpstream) -> list[str]:
    return [r.path for r in fake.requests]


KNOB_NAMES = {
    "vllm_xargs",
    "steps",
    "canvas_length",
    "block_length",
    "gen_length",
    "threshold",
    "num_denoising_steps",
    "target_length",
    "max_denoising_steps",
}
KNOBS = {"steps": 24, "canvas_length": 128, "block_length": 32, "threshold": 0.9}


# --- engines whose knobs are launch settings -------------------------------------------------


@pytest.mark.parametrize("engine", ["vllm", "sglang", "mistralrs", "mercury", "openai"])
def test_launch_time_engines_never_send_diffusion_knobs(
    engine: str, vllm: FakeVllm, inception: FakeInception
) -> None:
    fake: FakeUpstream = inception if engine == "mercury" else vllm
    model = "mercury-2" if engine == "mercury" else "diffusiongemma"
    extra = {"api_key_env": "TEST_INCEPTION_KEY"} if engine == "mercury" else {}
    config = backend(engine, fake.openai_base, model=model, diffusion=KNOBS, **extra)
    complete(config, request("Summarise: the parcel is late."))
    sent = fake.requests[-1].body
    assert fake.requests[-1].path == "/v1/chat/completions"
    assert not KNOB_NAMES & set(sent), sent


def test_vllm_sends_logprobs_and_prefill_fields(vllm: FakeVllm) -> None:
    vllm.set_reply(content="shipping", logprobs=-0.2)
    config = backend("vllm", vllm.openai_base, model="diffusiongemma", top_logprobs=3)
    done = complete(config, request())
    sent = vllm.requests[-1].body
    assert sent["logprobs"] is True and sent["top_logprobs"] == 3
    assert done.logprobs is not None and done.logprobs[0].logprob == pytest.approx(-0.2)


def test_mistralrs_asks_for_no_logprobs_even_when_the_caller_does(vllm: FakeVllm) -> None:
    config = backend("mistralrs", vllm.openai_base, model="diffusiongemma")
    complete(config, request(logprobs=True, top_logprobs=2, temperature=0.3))
    sent = vllm.requests[-1].body
    assert "logprobs" not in sent and "top_logprobs" not in sent
    assert sent["temperature"] == 0.3  # passed; the diffusion path ignores it
    assert DllmConnector("d", config).capabilities.logprobs is False


def test_openai_engine_is_plain_openai_with_logprobs(vllm: FakeVllm) -> None:
    complete(backend("openai", vllm.openai_base, model="diffusiongemma"), request())
    sent = vllm.requests[-1].body
    assert sent["logprobs"] is True
    assert "continue_final_message" not in sent


# --- SGLang ----------------------------------------------------------------------------------


def sglang_backend(fake: FakeSGLang, **extra: Any) -> DllmBackend:
    extra.setdefault("generate_template", LLADA2)
    return backend("sglang", fake.openai_base, model="llada2", **extra)


def test_sglang_without_template_asks_the_openai_endpoint_for_logprobs(sglang: FakeSGLang) -> None:
    complete(backend("sglang", sglang.openai_base, model="llada2", diffusion=KNOBS), request())
    assert paths(sglang) == ["/v1/chat/completions"]
    sent = sglang.requests[-1].body
    assert sent["logprobs"] is True
    assert not KNOB_NAMES & set(sent)


def test_sglang_generate_body_is_the_templated_text_and_sampling_params(
    sglang: FakeSGLang,
) -> None:
    sglang.set_reply(tokens=["ship", "ping"], logprobs=[-0.1, -0.3], prompt_tokens=40)
    done = complete(
        sglang_backend(sglang), request(temperature=0.2, max_completion_tokens=8, seed=3)
    )
    assert paths(sglang) == ["/generate"]
    sent = sglang.requests[-1].body
    expected_text = (
        "<role>SYSTEM</role>detailed thinking off<|role_end|>"
        f"<role>HUMAN</role>{TICKET}<|role_end|><role>ASSISTANT</role>"
    )
    assert sent == {
        "text": expected_text,
        "sampling_params": {"temperature": 0.2, "max_new_tokens": 8},
        "return_logprob": True,
        "return_text_in_logprobs": True,
    }
    assert done.content == "shipping"
    assert done.finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (40, 2)
    assert done.logprobs is not None
    assert [(t.token, t.logprob) for t in done.logprobs] == [("ship", -0.1), ("ping", -0.3)]


def test_sglang_generate_renders_the_request_system_message_not_the_default(
    sglang: FakeSGLang,
) -> None:
    req = ChatRequest.from_wire(
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "You sort tickets."},
                {"role": "user", "content": "Where is my parcel?"},
            ],
        }
    )
    complete(sglang_backend(sglang), req)
    assert sglang.requests[-1].body["text"] == (
        "<role>SYSTEM</role>You sort tickets.<|role_end|>"
        "<role>HUMAN</role>Where is my parcel?<|role_end|><role>ASSISTANT</role>"
    )


def test_sglang_generate_maps_top_logprobs_length_and_json_schema(sglang: FakeSGLang) -> None:
    sglang.set_reply(tokens=["a", "b"], logprobs=[-0.5, -0.05], finish_reason="length")
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    done = complete(sglang_backend(sglang, top_logprobs=2), request(response_format=fmt))
    sent = sglang.requests[-1].body
    assert sent["top_logprobs_num"] == 2
    assert orjson.loads(sent["sampling_params"]["json_schema"]) == schema
    assert done.finish_reason == "length"
    assert done.logprobs is not None
    first = done.logprobs[0]
    assert first.top[0] == ("a", -0.5)
    assert first.top[1][0] == " alt1"
    assert first.top[1][1] == pytest.approx(math.log((1 - math.exp(-0.5)) / 2))


@pytest.mark.parametrize(
    ("why", "req"),
    [
        (
            "tools",
            request(tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}]),
        ),
        (
            "image",
            request(
                [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ]
            ),
        ),
        ("json_object", request(response_format={"type": "json_object"})),
        (
            "assistant turn the template has no format for",
            ChatRequest.from_wire(
                {
                    "model": "auto",
                    "messages": [
                        {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "hello"},
                        {"role": "user", "content": "where is my parcel?"},
                    ],
                }
            ),
        ),
    ],
)
def test_sglang_requests_the_template_cannot_express_use_the_openai_endpoint(
    sglang: FakeSGLang, why: str, req: ChatRequest
) -> None:
    complete(sglang_backend(sglang), req)
    assert paths(sglang) == ["/v1/chat/completions"], why
    assert sglang.requests[-1].body["logprobs"] is True


@pytest.mark.parametrize("mode", ["empty", "missing"])
def test_sglang_generate_without_logprob_values_returns_none(sglang: FakeSGLang, mode: str) -> None:
    """LLaDA2's algorithms fill no logprobs: the verdict must see none, not zeros."""
    sglang.logprob_mode = mode
    done = complete(sglang_backend(sglang), request())
    assert done.content == "ok"
    assert done.logprobs is None


def test_sglang_generate_stream_turns_cumulative_text_into_deltas(sglang: FakeSGLang) -> None:
    tokens = ["The", " parcel", " left", " the", " depot", " today", "."]
    sglang.set_reply(tokens=tokens, logprobs=-0.02, prompt_tokens=9)
    chunks = stream(sglang_backend(sglang), request(stream=True))
    sent = sglang.requests[-1].body
    assert sglang.requests[-1].path == "/generate" and sent["stream"] is True
    assert chunks[0].role == "assistant"
    contents = [c.content for c in chunks[1:] if c.content]
    # block_size 4: one event per resolved block, each carrying only its new text
    assert contents == ["The parcel left the", " depot today."]
    streamed = [t.token for c in chunks if c.logprobs for t in c.logprobs]
    assert streamed == tokens
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].prompt_tokens == 9 and usage[0].completion_tokens == 7


def test_sglang_generate_stream_error_event_is_a_provider_error(sglang: FakeSGLang) -> None:
    sglang.set_reply(tokens=["a", "b", "c", "d", "e", "f"])
    sglang.script([generate_stream_error(1, "CUDA out of memory")])
    got: list[Chunk] = []
    with pytest.raises(ProviderUnavailable, match="CUDA out of memory"):
        stream(sglang_backend(sglang), request(stream=True), got)
    assert "".join(c.content or "" for c in got) == "abcd"


def test_sglang_generate_errors_map_to_the_error_tree(sglang: FakeSGLang) -> None:
    sglang.script(
        [
            status(
                400, body={"error": {"message": "DiffusionGemma does not support return_logprob"}}
            ),
            ok("x", finish_reason="abort"),
            status(503),
        ]
    )
    config = sglang_backend(sglang)
    with pytest.raises(ProviderRejected, match="does not support return_logprob"):
        complete(config, request())
    with pytest.raises(ProviderRejected, match="fake abort"):
        complete(config, request())
    with pytest.raises(ProviderUnavailable):
        complete(config, request())


def test_sglang_generate_endpoint_is_at_the_server_root(sglang: FakeSGLang) -> None:
    complete(backend("sglang", sglang.url, model="llada2", generate_template=LLADA2), request())
    assert paths(sglang) == ["/generate"]


# --- Mercury (Inception) ---------------------------------------------------------------------


def mercury_backend(fake: FakeInception, **extra: Any) -> DllmBackend:
    return backend(
        "mercury", fake.openai_base, model="mercury-2", api_key_env="TEST_INCEPTION_KEY", **extra
    )


def test_mercury_sends_reasoning_effort_and_no_logprobs(inception: FakeInception) -> None:
    done = complete(
        mercury_backend(inception, reasoning_effort="instant"),
        request("Summarise: the parcel is late.", logprobs=True, top_p=0.5, seed=1),
    )
    sent = inception.requests[-1].body
    assert inception.requests[-1].headers["authorization"] == f"Bearer {INCEPTION_KEY}"
    assert sent["reasoning_effort"] == "instant"
    assert not {"logprobs", "top_logprobs", "top_p", "seed"} & set(sent)
    assert done.logprobs is None


@pytest.mark.parametrize(("asked", "sent"), [(0.0, 0.5), (0.2, 0.5), (0.7, 0.7), (1.6, 1.0)])
def test_mercury_temperature_is_clamped_into_its_documented_range(
    inception: FakeInception, asked: float, sent: float
) -> None:
    complete(mercury_backend(inception), request("Summarise it.", temperature=asked))
    assert inception.requests[-1].body["temperature"] == sent


def test_mercury_output_cap_and_caller_reasoning_effort(inception: FakeInception) -> None:
    config = mercury_backend(inception)
    complete(config, request("Summarise it.", max_completion_tokens=90, reasoning_effort="low"))
    sent = inception.requests[-1].body
    assert sent["max_tokens"] == 90 and "max_completion_tokens" not in sent
    assert sent["reasoning_effort"] == "low"
    # OpenAI's `minimal` is not one of Inception's values: dropped, not sent to a 400.
    complete(config, request("Summarise it.", reasoning_effort="minimal"))
    assert "reasoning_effort" not in inception.requests[-1].body


def test_mercury_policy_effort_wins_over_the_caller(inception: FakeInception) -> None:
    complete(
        mercury_backend(inception, reasoning_effort="high"),
        request("Summarise it.", reasoning_effort="low"),
    )
    assert inception.requests[-1].body["reasoning_effort"] == "high"


def test_mercury_decide_asks_one_choice_question_over_the_labels(
    inception: FakeInception,
) -> None:
    inception.set_decision({"shipping": 0.8, "billing": 0.15})
    done = complete(mercury_backend(inception, decide={}), request())
    assert paths(inception) == ["/v1/decisions"]
    sent = inception.requests[-1].body
    assert sent == {
        "model": "mercury-decide",
        "state": [{"role": "user", "content": TICKET}],
        "questions": {
            "label": {
                "type": "choice",
                "instructions": "Choose the label that answers the last user message.",
                "criteria": {"billing": None, "shipping": None, "refund": None},
            }
        },
    }
    assert done.content == "shipping"
    assert done.logprobs is not None and len(done.logprobs) == 1
    token = done.logprobs[0]
    assert token.token == "shipping"
    assert token.logprob == pytest.approx(math.log(0.8))
    assert dict(token.top) == pytest.approx({"billing": math.log(0.15), "refund": math.log(0.05)})


def test_mercury_decide_json_schema_enum_answers_in_the_schema_shape(
    inception: FakeInception,
) -> None:
    inception.set_decision({"refund": 0.6})
    schema = {
        "type": "object",
        "properties": {"category": {"type": "string", "enum": LABELS}},
        "required": ["category"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    req = ChatRequest.from_wire(
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Route the ticket to a team."},
                {"role": "user", "content": "I was charged twice"},
            ],
            "response_format": fmt,
        }
    )
    done = complete(mercury_backend(inception, decide={"model": "mercury-decide"}), req)
    sent = inception.requests[-1].body
    assert sent["questions"]["label"]["instructions"] == "Route the ticket to a team."
    assert sent["state"] == [{"role": "user", "content": "I was charged twice"}]
    assert orjson.loads(done.content or "") == {"category": "refund"}
    assert done.logprobs is not None
    scored = [t for t in done.logprobs if t.logprob != 0.0]
    assert [(t.token, t.logprob) for t in scored] == [("refund", pytest.approx(math.log(0.6)))]
    assert "".join(t.token for t in done.logprobs) == done.content


@pytest.mark.parametrize(
    ("why", "req"),
    [
        ("no label set", request("Summarise: the parcel is late.")),
        (
            "tools",
            request(tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}]),
        ),
        ("json_object", request(response_format={"type": "json_object"})),
    ],
)
def test_mercury_decide_steps_it_cannot_express_go_to_chat(
    inception: FakeInception, why: str, req: ChatRequest
) -> None:
    complete(mercury_backend(inception, decide={}), req)
    assert paths(inception) == ["/v1/chat/completions"], why


def test_mercury_decide_streams_go_to_chat(inception: FakeInception) -> None:
    chunks = stream(mercury_backend(inception, decide={}), request(stream=True))
    assert paths(inception) == ["/v1/chat/completions"]
    assert "".join(c.content or "" for c in chunks) == "ok"


def test_mercury_decide_errors_map_to_the_error_tree(inception: FakeInception) -> None:
    inception.script_decisions([status(429), status(500)])
    config = mercury_backend(inception, decide={})
    with pytest.raises(ProviderRateLimited):
        complete(config, request())
    with pytest.raises(ProviderUnavailable):
        complete(config, request())
    with pytest.raises(ProviderRejected, match="Decision model not found"):
        complete(mercury_backend(inception, decide={"model": "nope"}), request())


# --- dlmserve --------------------------------------------------------------------------------


def dlm_backend(fake: FakeDlmserve, **extra: Any) -> DllmBackend:
    extra.setdefault("model", "gsai-ml/LLaDA-8B-Instruct")
    return backend("dlmserve", fake.openai_base, **extra)


def test_dlmserve_gets_its_knobs_under_its_own_names_and_nothing_else(
    dlmserve: FakeDlmserve,
) -> None:
    dlmserve.set_reply(content="shipping")
    req = ChatRequest.from_wire(
        {
            "model": "auto",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": TICKET}]},
            ],
            "temperature": 0.0,
            "top_p": 0.9,
            "stop": ["\n"],
            "seed": 11,
            "max_completion_tokens": 16,
            "response_format": {"type": "json_object"},
            "logprobs": True,
        }
    )
    done = complete(dlm_backend(dlmserve, diffusion=KNOBS), req)
    sent = dlmserve.requests[-1].body
    assert sent == {
        "model": "gsai-ml/LLaDA-8B-Instruct",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": TICKET},
        ],
        "temperature": 0.0,
        "seed": 11,
        "max_tokens": 16,
        "num_denoising_steps": 24,
        "block_length": 32,
        "target_length": 128,
    }
    assert done.content == "shipping" and done.logprobs is None
    assert done.usage.prompt_tokens == len(TICKET.split()) + 2


def test_dlmserve_refuses_tools_before_any_call(dlmserve: FakeDlmserve) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    config = dlm_backend(dlmserve)
    assert DllmConnector("d", config).capabilities.tools is False
    with pytest.raises(ProviderRejected, match="no tools"):
        complete(config, request(tools=tools))
    with pytest.raises(ProviderRejected, match="no tools"):
        stream(config, request(tools=tools, stream=True))
    assert dlmserve.requests == []


def test_dlmserve_stream_is_one_chunk_then_the_finish(dlmserve: FakeDlmserve) -> None:
    dlmserve.set_reply(content="The parcel is on its way.")
    chunks = stream(dlm_backend(dlmserve), request("Where is it?", stream=True))
    sent = dlmserve.requests[-1].body
    assert sent["stream"] is True and "stream_options" not in sent
    assert [c.content for c in chunks if c.content] == ["The parcel is on its way."]
    assert chunks[-1].finish_reason == "stop"


def test_dlmserve_errors_map_to_the_error_tree(dlmserve: FakeDlmserve) -> None:
    # 512 is dlmserve's most denoising steps; the policy allows more, dlmserve says 422.
    with pytest.raises(ProviderRejected, match="num_denoising_steps"):
        complete(dlm_backend(dlmserve, diffusion={"steps": 1000}), request())
    with pytest.raises(ProviderRejected, match="not found"):
        complete(dlm_backend(dlmserve, model="other-model"), request())
    dlmserve.script([status(429), status(503)])
    with pytest.raises(ProviderRateLimited, match="server busy"):
        complete(dlm_backend(dlmserve), request())
    with pytest.raises(ProviderUnavailable, match="shutting down"):
        complete(dlm_backend(dlmserve), request())


# --- capabilities ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "logprobs", "prefill", "tools"),
    [
        ("vllm", True, True, True),
        ("sglang", True, True, True),
        ("mercury", False, False, True),
        ("dlmserve", False, False, False),
        ("mistralrs", False, False, True),
        ("ollada", False, False, True),
        ("openai", True, False, True),
    ],
)
def test_capabilities_per_engine(engine: str, logprobs: bool, prefill: bool, tools: bool) -> None:
    caps = DllmConnector("d", backend(engine, "http://127.0.0.1:9/v1")).capabilities
    assert (caps.logprobs, caps.prefill, caps.tools) == (logprobs, prefill, tools)
    assert caps.streaming is True


def test_every_engine_is_covered_by_the_capability_table() -> None:
    assert set(typing.get_args(Engine)) == {
        "vllm",
        "sglang",
        "mercury",
        "dlmserve",
        "mistralrs",
        "ollada",
        "openai",
    }


# --- confidence feeds escalation end to end --------------------------------------------------

ESCALATING = """
version: 1
backends:
  cheap:
{cheap}
  ar:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 10}}
baseline: ar
retry: {{max_attempts: 1}}
routes:
  - name: fast
    match: {{kind: [classify]}}
    target: cheap
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar}}
  - name: deep
    target: ar
default_route: deep
"""


def app_for(tmp_path: Path, cheap: str, openai: FakeUpstream) -> Any:
    policy = tmp_path / "policy.yaml"
    indented = "\n".join("    " + line for line in cheap.strip().splitlines())
    policy.write_text(ESCALATING.format(cheap=indented, openai=openai.openai_base))
    return running_app(policy, tmp_path)


def classify(client: Any, **extra: Any) -> Any:
    body = {"model": "auto", "messages": [{"role": "user", "content": TICKET}], **extra}
    return client.post("/v1/chat/completions", json=body, headers={"X-Step-Kind": "classify"})


def sglang_policy(fake: FakeSGLang) -> str:
    return f"""
type: dllm
engine: sglang
base_url: {fake.openai_base}
model: llada2
timeouts: {{connect_s: 1, request_s: 5}}
generate_template:
  system: "<role>SYSTEM</role>{{content}}<|role_end|>"
  user: "<role>HUMAN</role>{{content}}<|role_end|>"
  generation: "<role>ASSISTANT</role>"
"""


@pytest.mark.parametrize(("p", "escalated"), [(0.3, True), (0.97, False)])
def test_sglang_generate_confidence_decides_escalation(
    tmp_path: Path, sglang: FakeSGLang, fake_openai: FakeUpstream, p: float, escalated: bool
) -> None:
    sglang.set_reply(content="shipping", logprobs=math.log(p))
    fake_openai.set_reply(content="shipping")
    with app_for(tmp_path, sglang_policy(sglang), fake_openai) as client:
        r = classify(client)
    assert r.status_code == 200, r.text
    assert paths(sglang) == ["/generate"]
    assert r.headers["x-stepgate-escalated"] == str(escalated).lower()
    # one content token: the score is its probability
    assert float(r.headers["x-stepgate-confidence"]) == pytest.approx(p, abs=1e-3)
    assert len(fake_openai.requests) == (1 if escalated else 0)
    assert r.json()["choices"][0]["message"]["content"] == "shipping"


def test_sglang_generate_without_logprobs_is_judged_by_validators_only(
    tmp_path: Path, sglang: FakeSGLang, fake_openai: FakeUpstream
) -> None:
    sglang.logprob_mode = "empty"
    sglang.set_reply(content="shipping")
    with app_for(tmp_path, sglang_policy(sglang), fake_openai) as client:
        r = classify(client)
    assert r.status_code == 200, r.text
    assert paths(sglang) == ["/generate"]
    # no logprobs: the labels validator passed, so the prior for a validated answer (0.8)
    assert float(r.headers["x-stepgate-confidence"]) == pytest.approx(0.8)


@pytest.mark.parametrize("stream_it", [False, True])
@pytest.mark.parametrize(("p", "escalated"), [(0.55, True), (0.95, False)])
def test_mercury_decide_probability_decides_escalation(
    tmp_path: Path,
    inception: FakeInception,
    fake_openai: FakeUpstream,
    p: float,
    escalated: bool,
    stream_it: bool,
) -> None:
    inception.set_decision({"shipping": p})
    fake_openai.set_reply(content="shipping")
    cheap = f"""
type: dllm
engine: mercury
base_url: {inception.openai_base}
model: mercury-2
api_key_env: TEST_INCEPTION_KEY
timeouts: {{connect_s: 1, request_s: 5}}
decide: {{model: mercury-decide}}
"""
    with app_for(tmp_path, cheap, fake_openai) as client:
        r = classify(client, stream=stream_it, logprobs=True)
    assert r.status_code == 200, r.text
    # a checked route buffers a stream: the classify step is still decided
    assert paths(inception) == ["/v1/decisions"]
    assert r.headers["x-stepgate-escalated"] == str(escalated).lower()
    assert float(r.headers["x-stepgate-confidence"]) == pytest.approx(p, abs=1e-3)
    assert len(fake_openai.requests) == (1 if escalated else 0)
    if not escalated and not stream_it:
        content = r.json()["choices"][0]["logprobs"]["content"]
        assert [t["token"] for t in content] == ["shipping"]
        assert content[0]["logprob"] == pytest.approx(math.log(p))


# --- policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", typing.get_args(Engine))
def test_shipped_policy_passes_policy_check_on_every_engine(engine: str) -> None:
    result = CliRunner().invoke(
        app, ["policy", "check", "policies/support.yaml"], env={"STEPGATE_DLLM_ENGINE": engine}
    )
    assert result.exit_code == 0, result.output
    policy = load_policy("policies/support.yaml", env={"STEPGATE_DLLM_ENGINE": engine})
    dllm = policy.backends["dllm"]
    assert isinstance(dllm, DllmBackend) and dllm.engine == engine


def policy_with(tmp_path: Path, backend_yaml: str) -> Path:
    path = tmp_path / "p.yaml"
    indented = "\n".join("    " + line for line in backend_yaml.strip().splitlines())
    path.write_text(
        "version: 1\nbackends:\n  d:\n"
        + indented
        + "\nbaseline: d\nroutes:\n  - {name: all, target: d}\ndefault_route: all\n"
    )
    return path


BASE = "type: dllm\nbase_url: http://127.0.0.1:1/v1\nmodel: m\n"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("engine: vllm\nreasoning_effort: low", "`reasoning_effort` is Inception's"),
        ("engine: sglang\ndecide: {}", "`decide` is Inception's Mercury Decide"),
        (
            "engine: mercury\ngenerate_template: {user: '{content}', generation: 'A:'}",
            "taken only with `engine: sglang`",
        ),
        (
            "engine: sglang\nlogprobs: false\n"
            "generate_template: {user: '{content}', generation: A}",
            "`logprobs: false`",
        ),
        (
            "engine: sglang\ngenerate_template: {user: 'no placeholder', generation: A}",
            "must contain `{content}` exactly once",
        ),
        (
            "engine: sglang\ngenerate_template: {user: '{content}', generation: '{content}'}",
            "takes no `{content}`",
        ),
        ("engine: mercury\nreasoning_effort: minimal", "'instant', 'low', 'medium' or 'high'"),
    ],
)
def test_engine_specific_fields_are_checked(tmp_path: Path, extra: str, needle: str) -> None:
    path = policy_with(tmp_path, BASE + extra)
    with pytest.raises(PolicyLoadError) as info:
        load_policy(path, env={})
    text = "\n".join(str(p) for p in info.value.problems)
    assert needle in text, text


def test_sglang_diffusion_block_is_valid(tmp_path: Path) -> None:
    path = policy_with(tmp_path, BASE + "engine: sglang\ndiffusion: {threshold: 0.95}")
    load_policy(path, env={})


# --- the fakes hold the engines' documented rules --------------------------------------------


def test_fake_inception_enforces_its_documented_chat_rules(inception: FakeInception) -> None:
    auth = {"authorization": "Bearer k"}
    base = {"model": "mercury-2", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=inception.url, headers=auth) as http:
        warm = http.post("/v1/chat/completions", json={**base, "temperature": 0.2})
        effort = http.post("/v1/chat/completions", json={**base, "reasoning_effort": "minimal"})
        asked = http.post("/v1/chat/completions", json={**base, "logprobs": True})
        nokey = httpx.post(f"{inception.url}/v1/chat/completions", json=base)
    assert warm.status_code == 200 and "0.75" in warm.json()["warning"]
    assert effort.status_code == 400
    assert effort.json()["error"]["type"] == "invalid_request_error"
    assert asked.json()["choices"][0]["logprobs"] is None
    assert nokey.status_code == 401 and nokey.json()["error"]["code"] == "invalid_api_key"


def test_fake_sglang_and_dlmserve_refuse_what_their_engines_refuse(
    sglang: FakeSGLang, dlmserve: FakeDlmserve
) -> None:
    bad_sampling = {"text": "hi", "sampling_params": {"max_tokens": 3}}
    r = httpx.post(f"{sglang.url}/generate", json=bad_sampling)
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    body = {
        "model": "gsai-ml/LLaDA-8B-Instruct",
        "messages": [{"role": "user", "content": "hi"}],
        "top_p": 0.9,
    }
    r = httpx.post(f"{dlmserve.url}/v1/chat/completions", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "extra_forbidden"
    assert r.json()["detail"][0]["loc"] == ["body", "top_p"]
