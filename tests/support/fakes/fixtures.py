"""Pytest fixtures for the fake upstreams: one server per dialect per session, reset per test.

Import them into a conftest (``from tests.support.fakes.fixtures import *``) or a test module.
``fake_openai``, ``fake_dllm`` and ``fake_anthropic`` are function-scoped views of
session-scoped servers: each test gets the default reply, an empty script, no recorded requests,
zero usage totals and no latency. The three are different servers on different ports.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.upstream import FakeUpstream

__all__ = [
    "fake_anthropic",
    "fake_anthropic_server",
    "fake_dllm",
    "fake_dllm_server",
    "fake_openai",
    "fake_openai_server",
]


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeUpstream]:
    with FakeUpstream(dialect="openai") as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_dllm_server() -> Iterator[FakeUpstream]:
    with FakeUpstream(dialect="vllm") as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[FakeUpstream]:
    with FakeUpstream(dialect="anthropic") as fake:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """An OpenAI-compatible upstream; point clients at ``fake_openai.openai_base``."""
    fake_openai_server.reset_all()
    yield fake_openai_server
    fake_openai_server.reset_all()


@pytest.fixture
def fake_dllm(fake_dllm_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """A vLLM-style dLLM upstream that returns logprobs; ``fake_dllm.openai_base``."""
    fake_dllm_server.reset_all()
    yield fake_dllm_server
    fake_dllm_server.reset_all()


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """An Anthropic Messages upstream; litellm ``api_base=fake_anthropic.url``."""
    fake_anthropic_server.reset_all()
    yield fake_anthropic_server
    fake_anthropic_server.reset_all()
