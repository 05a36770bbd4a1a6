"""policies/examples/*.yaml: each passes `stepgate policy check`, and each answers a request
end to end through the gateway app against fakes of its engines (the examples read their
URLs from environment variables, pointed here at the fakes). gemini.yaml is checked only: a
Gemini-shaped fake for litellm's `gemini/` provider does not exist here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.support.app_client import running_app
from tests.support.fakes.engines import FakeDlmserve, FakeInception, FakeSGLang, FakeVllm
from tests.support.fakes.gemini import FakeGemini
from tests.support.fakes.upstream import FakeUpstream

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
TICKET = (
    "Classify the ticket. Answer with one of: billing, shipping, refund.\n"
    "Ticket: my parcel has not arrived yet"
)
CHECK_ONLY = {"gemini.yaml"}


def test_the_examples_are_there() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert names >= {
        "vllm.yaml",
        "sglang.yaml",
        "mercury.yaml",
        "dlmserve.yaml",
        "mistralrs.yaml",
        "openai.yaml",
        "gemini.yaml",
    }
    assert names - CHECK_ONLY <= set(E2E), "every example but gemini.yaml is run end to end"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_passes_policy_check(path: Path) -> None:
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: ok")
    assert (
        path.read_text().splitlines()[0] == "# yaml-language-server: $schema=../policy.schema.json"
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    for name in ("OPENAI_API_KEY", "INCEPTION_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(name, f"test-{name.lower()}")

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def post(client: Any, kind: str, content: str = TICKET, **extra: Any) -> Any:
    body = {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}
    r = client.post("/v1/chat/completions", json=body, headers={"X-Step-Kind": kind})
    assert r.status_code == 200, r.text
    return r


def answer(r: Any) -> str:
    return str(r.json()["choices"][0]["message"]["content"])


# Each end-to-end case: (tmp_path, env, fake_openai, fake_anthropic) -> None


def vllm_two_pools(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    model = "diffusiongemma-26b-a4b-it"
    with (
        FakeVllm(model=model, diffusion_config={"canvas_length": 32}) as labels,
        FakeVllm(model=model, diffusion_config={"canvas_length": 256}) as drafts,
    ):
        env(
            STEPGATE_VLLM_CLASSIFY_URL=labels.openai_base,
            STEPGATE_VLLM_DRAFT_URL=drafts.openai_base,
            OPENAI_BASE_URL=openai.openai_base,
        )
        labels.set_reply(content="shipping", logprobs=-0.01)
        drafts.set_reply(content="Your parcel left the depot today.", logprobs=-0.01)
        with running_app(EXAMPLES / "vllm.yaml", tmp) as client:
            short = post(client, "classify")
            long = post(client, "summarize", "Summarise: the parcel left the depot today.")
        assert (short.headers["x-stepgate-backend"], answer(short)) == ("vllm-labels", "shipping")
        assert long.headers["x-stepgate-backend"] == "vllm-drafts"
        assert len(labels.requests) == 1 and len(drafts.requests) == 1
        for fake in (labels, drafts):
            sent = fake.requests[0].body
            assert sent["model"] == model and sent["logprobs"] is True
            assert "vllm_xargs" not in sent and "canvas_length" not in sent
        assert not openai.requests


def sglang_llada2(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    with FakeSGLang() as sglang:
        env(STEPGATE_DLLM_BASE_URL=sglang.openai_base, OPENAI_BASE_URL=openai.openai_base)
        sglang.set_reply(content="shipping", logprobs=-0.01)
        with running_app(EXAMPLES / "sglang.yaml", tmp) as client:
            r = post(client, "classify")
        assert answer(r) == "shipping" and r.headers["x-stepgate-escalated"] == "false"
        assert [q.path for q in sglang.requests] == ["/generate"]
        assert sglang.requests[0].body["text"] == (
            "<role>SYSTEM</role>detailed thinking off<|role_end|>"
            f"<role>HUMAN</role>{TICKET}<|role_end|><role>ASSISTANT</role>"
        )


def mercury_decide(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    with FakeInception() as inception:
        env(STEPGATE_DLLM_BASE_URL=inception.openai_base, OPENAI_BASE_URL=openai.openai_base)
        inception.set_decision({"shipping": 0.9})
        inception.set_reply(content='{"order": "A-1"}')
        with running_app(EXAMPLES / "mercury.yaml", tmp) as client:
            decided = post(client, "classify")
            chat = post(client, "extract", "Extract the order id as JSON: order A-1 is late.")
        assert answer(decided) == "shipping"
        assert decided.headers["x-stepgate-route"] == "decide"
        assert chat.headers["x-stepgate-backend"] == "mercury"
        assert [q.path for q in inception.requests] == ["/v1/decisions", "/v1/chat/completions"]
        assert inception.requests[0].body["model"] == "mercury-decide"
        sent = inception.requests[1].body
        assert sent["model"] == "mercury-2" and sent["reasoning_effort"] == "instant"
        assert "logprobs" not in sent


def dlmserve_llada(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    with FakeDlmserve() as dlm:
        env(STEPGATE_DLLM_BASE_URL=dlm.openai_base, OPENAI_BASE_URL=openai.openai_base)
        dlm.set_reply(content="shipping")
        with running_app(EXAMPLES / "dlmserve.yaml", tmp) as client:
            r = post(client, "classify")
        assert answer(r) == "shipping" and r.headers["x-stepgate-backend"] == "llada"
        sent = dlm.requests[0].body
        knobs = {k: sent[k] for k in ("num_denoising_steps", "block_length", "target_length")}
        assert knobs == {"num_denoising_steps": 64, "block_length": 32, "target_length": 128}


def mistralrs_gemma(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    with FakeUpstream(dialect="openai", models=["diffusiongemma"]) as rs:
        env(STEPGATE_DLLM_BASE_URL=rs.openai_base, OPENAI_BASE_URL=openai.openai_base)
        rs.set_reply(content="shipping")
        with running_app(EXAMPLES / "mistralrs.yaml", tmp) as client:
            r = post(client, "classify")
        assert answer(r) == "shipping" and r.headers["x-stepgate-backend"] == "gemma-rs"
        sent = rs.requests[0].body
        assert sent["model"] == "diffusiongemma" and "logprobs" not in sent
        assert not {"steps", "canvas_length", "vllm_xargs"} & set(sent)


def openai_litellm(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    env(OPENAI_BASE_URL=openai.openai_base)
    openai.set_reply(content="shipping")
    with running_app(EXAMPLES / "openai.yaml", tmp) as client:
        r = post(client, "classify")
    assert answer(r) == "shipping" and r.headers["x-stepgate-backend"] == "small"
    assert openai.requests[-1].body["model"] == "gpt-4.1-mini"
    assert openai.requests[-1].headers["authorization"] == "Bearer test-openai_api_key"


def anthropic_native(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    env(ANTHROPIC_BASE_URL=anthropic.url)
    anthropic.set_reply(content="shipping")
    with running_app(EXAMPLES / "anthropic.yaml", tmp) as client:
        r = post(client, "classify")
    assert answer(r) == "shipping" and r.headers["x-stepgate-backend"] == "haiku"
    assert anthropic.requests[-1].path == "/v1/messages"


def gemini_litellm(tmp: Path, env: Any, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
    with FakeGemini() as gemini:
        env(GEMINI_BASE_URL=gemini.url, GEMINI_API_KEY="test-gemini-key")
        gemini.reply = "shipping"
        with running_app(EXAMPLES / "gemini.yaml", tmp) as client:
            r = post(client, "classify")
            assert answer(r) == "shipping" and r.headers["x-stepgate-backend"] == "flash"
            gemini.reply = "your parcel ships tomorrow"
            streamed = client.post(
                "/v1/chat/completions",
                json={
                    "model": "auto",
                    "stream": True,
                    "messages": [{"role": "user", "content": "why was I charged twice?"}],
                },
                headers={"X-Step-Kind": "reason"},
            )
    sent = gemini.requests[0]
    assert sent.path == "/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "test-gemini-key"
    assert sent.body["contents"][-1]["parts"][0]["text"] == TICKET
    assert gemini.requests[1].path.startswith("/models/gemini-2.5-pro:streamGenerateContent")
    assert streamed.status_code == 200 and streamed.headers["x-stepgate-backend"] == "pro"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in streamed.text.splitlines()
        if line.startswith("data: {") and json.loads(line[6:]).get("choices")
    )
    assert text == "your parcel ships tomorrow"


E2E: dict[str, Callable[[Path, Any, FakeUpstream, FakeUpstream], None]] = {
    "gemini.yaml": gemini_litellm,
    "vllm.yaml": vllm_two_pools,
    "sglang.yaml": sglang_llada2,
    "mercury.yaml": mercury_decide,
    "dlmserve.yaml": dlmserve_llada,
    "mistralrs.yaml": mistralrs_gemma,
    "openai.yaml": openai_litellm,
    "anthropic.yaml": anthropic_native,
}


@pytest.mark.parametrize("name", sorted(E2E))
def test_example_answers_end_to_end(
    name: str,
    tmp_path: Path,
    env: Any,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
) -> None:
    E2E[name](tmp_path, env, fake_openai, fake_anthropic)


@pytest.fixture(autouse=True)
def _no_stray_dllm_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The examples' defaults, not a developer's shell, unless a case sets a variable."""
    for name in (
        "STEPGATE_DLLM_BASE_URL",
        "STEPGATE_DLLM_MODEL",
        "STEPGATE_VLLM_CLASSIFY_URL",
        "STEPGATE_VLLM_DRAFT_URL",
        "STEPGATE_AR_MODEL",
        "STEPGATE_MERCURY_MODEL",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "GEMINI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
