"""/readyz tells the truth about warm-up, and the first request's figures are honest.

With `STEPGATE_PRELOAD_AR` (the default) litellm loads in the background at start: until it has,
the AR backends would make their first callers wait seconds, so the gateway is not ready.
With preload off, loading on first use is the operator's choice: ready at once, and the first
AR request's wait for the import is the gateway's overhead, not upstream time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.e2e


def readiness(base: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{base}/readyz", timeout=5)
    return r.status_code, r.json()


def test_not_ready_while_an_ar_backend_is_still_loading(policy_file: Path, tmp_path: Path) -> None:
    with serve(policy_file, tmp_path) as base:
        seen: list[tuple[int, tuple[str, ...]]] = []
        deadline = time.monotonic() + 60
        while True:
            status, report = readiness(base)
            seen.append((status, tuple(report["warming"])))
            warming = report["warming"]
            for name in warming:
                assert report["backends"][name]["ready"] is False
            assert (status == 200) == (not warming), report
            if not warming or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert seen[-1] == (200, ())
    # The first look came before litellm had loaded (it takes seconds): the AR backends were
    # reported as warming and the gateway as not ready.
    assert seen[0][0] == 503 and {"ar-openai", "ar-anthropic"} <= set(seen[0][1])


@pytest.fixture
def lazy_gateway(policy_file: Path, tmp_path: Path) -> Iterator[str]:
    with serve(policy_file, tmp_path, env={"STEPGATE_PRELOAD_AR": "false"}) as base:
        yield base


def test_lazy_loading_is_ready_at_once_and_bills_the_first_wait_as_overhead(
    lazy_gateway: str, fake_openai: FakeUpstream
) -> None:
    status, report = readiness(lazy_gateway)
    assert status == 200 and report["ready"] is True
    assert "ar-openai" in report["warming"]
    fake_openai.set_reply(content="ok")
    started = time.monotonic()
    r = httpx.post(
        f"{lazy_gateway}/v1/chat/completions",
        json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=120,
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    assert r.status_code == 200, r.text
    # The fake answers at once: nearly all of this request was the gateway loading litellm,
    # and the overhead header says so (it used to count the import as upstream time).
    assert float(r.headers["x-stepgate-overhead-ms"]) >= 0.5 * elapsed_ms
    assert readiness(lazy_gateway)[1]["warming"] == []  # one litellm import serves both
