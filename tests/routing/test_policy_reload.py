"""Hot reload: a changed policy file (or POST /admin/policy/reload) swaps the policy atomically;
an invalid edit is rejected, logged and counted while the previous policy keeps serving; a
request finishes on the generation it started with; no request fails under concurrent load."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.runtime import ConnectorFactory, PolicyHolder
from tests.support.app_client import running_app
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream

ADMIN_KEY = "test-admin-key-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
HINT = {"x-step-kind": "classify"}
BODY = {"model": "auto", "messages": [{"role": "user", "content": "billing or shipping?"}]}


# --- policy texts ----------------------------------------------------------------------------
# Both swap targets are OpenAI-compatible `dllm`-type backends on the fakes, so no request here
# waits for litellm's multi-second lazy import; `dllm-b` is served by the fake_openai server.

SECOND_BACKEND = """  dllm-b:
    type: dllm
    engine: openai
    base_url: {base}
    model: test-b
    timeouts: {{connect_s: 1, request_s: 10}}
    pricing: {{input_per_mtok_usd: "0.10", output_per_mtok_usd: "0.40"}}
"""
FAST_ON_DLLM = "    target: dllm\n    fallbacks: [ar-openai]\n"
FAST_ON_B = "    target: dllm-b\n"


def version_a(base: str, openai_base: str) -> str:
    """The test policy plus backend `dllm-b`; `fast` routes to `dllm`."""
    at = base.index("  ar-openai:\n")
    return base[:at] + SECOND_BACKEND.format(base=openai_base) + base[at:]


def version_b(a: str) -> str:
    """`fast` routes to `dllm-b`, and the `dllm` backend (and its alias) is gone."""
    assert FAST_ON_DLLM in a
    text = a.replace(FAST_ON_DLLM, FAST_ON_B)
    start, end = text.index("  dllm:\n"), text.index("  dllm-b:\n")
    return (text[:start] + text[end:]).replace("  dllm-direct: {backend: dllm, checks: none}\n", "")


def invalid(b: str) -> str:
    """A typo in the `fast` target: cross-check rejects it."""
    assert FAST_ON_B in b
    return b.replace(FAST_ON_B, "    target: dlm-b\n")


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place_slowly(path: Path, text: str, pause_s: float) -> None:
    """An editor that truncates and writes in two parts: the poller sees the half file."""
    half = len(text) // 2
    with open(path, "w") as fh:
        fh.write(text[:half])
        fh.flush()
        os.fsync(fh.fileno())
        time.sleep(pause_s)
        fh.write(text[half:])


# --- helpers against a running gateway -------------------------------------------------------


def chat(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/chat/completions", json=BODY, headers=HINT)


def generation(http: httpx.Client) -> int:
    return int(http.get("/readyz").json()["policy_generation"])


def metric(http: httpx.Client, name: str) -> float:
    text = http.get("/metrics").text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def versions(policy_file: Path, fake_openai: FakeUpstream) -> dict[str, str]:
    a = version_a(policy_file.read_text(), fake_openai.openai_base)
    policy_file.write_text(a)
    return {"dllm": a, "dllm-b": version_b(a)}


@pytest.fixture
def gateway(policy_file: Path, tmp_path: Path, versions: dict[str, str]) -> Iterator[httpx.Client]:
    env = {"STEPGATE_POLICY_POLL_S": "0.2", "STEPGATE_ADMIN_KEY": ADMIN_KEY}
    with (
        serve(policy_file, tmp_path, env=env) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


# --- the file watcher, end to end -------------------------------------------------------------


@pytest.mark.e2e
def test_watcher_swaps_rejects_and_keeps_in_flight_requests(
    gateway: httpx.Client,
    versions: dict[str, str],
    policy_file: Path,
    tmp_path: Path,
    fake_dllm: FakeUpstream,
) -> None:
    http = gateway
    first = chat(http)
    assert first.status_code == 200
    assert first.headers["x-stepgate-backend"] == "dllm"
    assert generation(http) == 1

    # A request in flight on the dLLM while the dLLM backend disappears from the policy.
    fake_dllm.latency_s = 1.5
    held: dict[str, Any] = {}

    def slow_request() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=10) as own:
            held["response"] = chat(own)

    worker = threading.Thread(target=slow_request)
    worker.start()
    wait_until(lambda: len(fake_dllm.requests) >= 2)
    write_atomically(policy_file, versions["dllm-b"])
    wait_until(lambda: generation(http) == 2)
    swapped = chat(http)
    assert swapped.status_code == 200
    assert swapped.headers["x-stepgate-backend"] == "dllm-b"
    assert swapped.headers["x-stepgate-route"] == "fast"
    worker.join(timeout=10)
    in_flight = held["response"]
    assert in_flight.status_code == 200, in_flight.text
    assert in_flight.headers["x-stepgate-backend"] == "dllm"  # the generation it started on
    fake_dllm.latency_s = 0.0

    # An invalid edit: rejected, counted, logged with its position; generation 2 keeps serving.
    assert metric(http, "stepgate_policy_reload_failures_total") == 0
    write_atomically(policy_file, invalid(versions["dllm-b"]))
    wait_until(lambda: metric(http, "stepgate_policy_reload_failures_total") == 1)
    ready = http.get("/readyz").json()
    assert ready["policy_generation"] == 2
    (problem,) = ready["policy_errors"]
    assert problem.startswith(f"{policy_file}:") and "unknown backend 'dlm-b'" in problem
    still = chat(http)
    assert still.status_code == 200 and still.headers["x-stepgate-backend"] == "dllm-b"
    log = next(tmp_path.glob("server-*.log")).read_text()
    rejected = [line for line in log.splitlines() if "policy reload rejected" in line]
    assert rejected and "dlm-b" in rejected[0]
    time.sleep(0.5)  # several more polls: an unchanged invalid file is not re-counted
    assert metric(http, "stepgate_policy_reload_failures_total") == 1

    # Fixing the file swaps again; the dLLM is back.
    write_atomically(policy_file, versions["dllm"])
    wait_until(lambda: generation(http) == 3)
    assert http.get("/readyz").json()["policy_errors"] == []
    assert chat(http).headers["x-stepgate-backend"] == "dllm"
    assert metric(http, "stepgate_policy_generation") == 3


@pytest.mark.e2e
def test_no_failed_request_while_the_policy_is_rewritten_under_load(
    gateway: httpx.Client,
    versions: dict[str, str],
    policy_file: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
) -> None:
    http = gateway
    fake_dllm.latency_s = 0.03  # keep requests in flight across swaps
    fake_openai.latency_s = 0.03
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    backends: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as own:
            while not stop.is_set():
                try:
                    response = chat(own)
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(repr(exc))
                    continue
                with lock:
                    statuses[response.status_code] += 1
                    backends[response.headers.get("x-stepgate-backend", "?")] += 1
                    if response.status_code != 200:
                        errors.append(response.text[:300])

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        expected_generation = 1
        for i in range(6):  # atomic rewrites, alternating the fast route's backend
            target = "dllm-b" if i % 2 == 0 else "dllm"
            write_atomically(policy_file, versions[target])
            expected_generation += 1
            wait_until(lambda g=expected_generation: generation(http) == g)  # type: ignore[misc]
            time.sleep(0.15)
        # An invalid atomic edit in the middle of the load: rejected, nothing fails.
        write_atomically(policy_file, invalid(versions["dllm-b"]))
        wait_until(lambda: metric(http, "stepgate_policy_reload_failures_total") >= 1)
        time.sleep(0.3)
        assert generation(http) == expected_generation
        # A non-atomic, in-place write: the half file is rejected, the whole one is taken.
        write_in_place_slowly(policy_file, versions["dllm-b"], pause_s=0.6)
        expected_generation += 1
        wait_until(lambda: generation(http) == expected_generation)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)

    assert errors == []
    assert set(statuses) == {200}
    total = sum(statuses.values())
    assert total >= 8 * 10
    assert set(backends) == {"dllm", "dllm-b"}
    assert metric(http, "stepgate_policy_reload_failures_total") >= 2  # invalid + half file
    assert http.get("/readyz").json()["policy_errors"] == []
    assert chat(http).headers["x-stepgate-backend"] == "dllm-b"


# --- POST /admin/policy/reload ---------------------------------------------------------------


@pytest.fixture
def admin_client(policy_file: Path, tmp_path: Path, versions: dict[str, str]) -> Iterator[Any]:

    # policy_poll_s=0 (running_app's default): only the endpoint reloads
    with running_app(policy_file, tmp_path, admin_key=ADMIN_KEY) as c:
        yield c


def test_admin_reload_needs_the_admin_key(admin_client: Any) -> None:
    response = admin_client.post("/admin/policy/reload")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    wrong = admin_client.post("/admin/policy/reload", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert admin_client.get("/readyz").json()["policy_generation"] == 1


def test_admin_reload_rejects_an_invalid_file_and_swaps_a_valid_one(
    admin_client: Any, policy_file: Path, versions: dict[str, str]
) -> None:
    before = admin_client.post("/v1/chat/completions", json=BODY, headers=HINT)
    assert before.headers["x-stepgate-backend"] == "dllm"

    write_atomically(policy_file, invalid(versions["dllm-b"]))
    response = admin_client.post("/admin/policy/reload", headers=ADMIN)
    assert response.status_code == 422
    body = response.json()
    assert body["reloaded"] is False and body["generation"] == 1
    (problem,) = body["problems"]
    assert re.match(rf"^{re.escape(str(policy_file))}:\d+:\d+: ", problem)
    assert "unknown backend 'dlm-b'" in problem and "did you mean 'dllm-b'" in problem
    metrics = admin_client.get("/metrics").text
    assert "stepgate_policy_reload_failures_total 1.0" in metrics
    kept = admin_client.post("/v1/chat/completions", json=BODY, headers=HINT)
    assert kept.status_code == 200 and kept.headers["x-stepgate-backend"] == "dllm"

    write_atomically(policy_file, versions["dllm-b"])
    response = admin_client.post("/admin/policy/reload", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {"reloaded": True, "generation": 2, "problems": []}
    after = admin_client.post("/v1/chat/completions", json=BODY, headers=HINT)
    assert after.status_code == 200 and after.headers["x-stepgate-backend"] == "dllm-b"
    assert admin_client.get("/readyz").json()["policy_errors"] == []


def test_admin_reload_is_disabled_without_an_admin_key(client: Any) -> None:
    response = client.post("/admin/policy/reload", headers=ADMIN)
    assert response.status_code == 403


# --- the watcher's change detection ----------------------------------------------------------


def test_a_rewrite_within_one_timestamp_tick_is_still_noticed(
    policy_file: Path, versions: dict[str, str]
) -> None:
    """Half a file, then the rest, with the same mtime (coarse filesystem clocks): the size
    differs, so the next poll retries instead of keeping the rejected half forever."""

    async def scenario() -> None:
        rejected: list[list[str]] = []
        holder = PolicyHolder(policy_file, ConnectorFactory(), on_reject=rejected.append)
        holder.load_initial()
        try:
            text = versions["dllm-b"]
            stamp = os.stat(policy_file).st_mtime_ns
            policy_file.write_text(text[: len(text) // 2])
            os.utime(policy_file, ns=(stamp, stamp))
            assert holder.changed_on_disk()
            ok, problems = holder.reload()
            assert not ok and problems and rejected == [problems]
            assert holder.reload_failures == 1
            assert not holder.changed_on_disk()
            with open(policy_file, "a") as fh:  # the rest of the same save
                fh.write(text[len(text) // 2 :])
            os.utime(policy_file, ns=(stamp, stamp))
            assert holder.changed_on_disk()
            ok, _ = holder.reload()
            assert ok and holder.current.number == 2
            assert holder.current.policy.routes[0].target == "dllm-b"
        finally:
            await holder.aclose()

    asyncio.run(scenario())
