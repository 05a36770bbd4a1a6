"""Shared fixtures: fake upstreams, a test policy pointing at them, the app in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fakes.fixtures import *  # noqa: F403 - fixtures are collected by name
from tests.support.fakes.upstream import FakeUpstream

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

TEST_POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: {timeout}, first_token_s: {timeout}}}
    diffusion: {{steps: 16, canvas_length: 128, threshold: 0.9}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  ar-openai:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 40}}
  ar-anthropic:
    type: litellm
    model: anthropic/claude-haiku-4-5
    api_key_env: TEST_ANTHROPIC_KEY
    base_url: {anthropic}
    timeouts: {{connect_s: 1, request_s: 40}}
baseline: ar-openai
retry: {{max_attempts: 2, backoff_base_ms: 10, backoff_max_ms: 50, max_retry_after_s: 3}}
request_timeout_s: 60
aliases:
  gpt-4.1-mini: ar-openai
  claude-haiku: ar-anthropic
  dllm-direct: {{backend: dllm, checks: none}}
routes:
  - name: fast
    match: {{kind: [classify, extract, format, lookup]}}
    target: dllm
    fallbacks: [ar-openai]
  - name: deep
    target: ar-openai
    fallbacks: [ar-anthropic]
default_route: deep
"""


def render_policy(
    dllm: FakeUpstream, openai: FakeUpstream, anthropic: FakeUpstream, *, timeout: float = 2.0
) -> str:
    return TEST_POLICY.format(
        dllm=dllm.openai_base, openai=openai.openai_base, anthropic=anthropic.url, timeout=timeout
    )


@pytest.fixture(autouse=True)
def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "test-openai-key")
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "test-anthropic-key")


@pytest.fixture
def policy_file(
    tmp_path: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(render_policy(fake_dllm, fake_openai, fake_anthropic))
    return path


@pytest.fixture
def client(policy_file: Path, tmp_path: Path) -> Iterator[object]:
    """The app in-process (lifespan run), driven through Starlette's TestClient."""
    from tests.support.app_client import running_app

    with running_app(policy_file, tmp_path) as c:
        yield c
