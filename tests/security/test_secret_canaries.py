"""No provider key reaches a client: canary keys, upstreams that echo them, every client byte.

The gateway holds one canary as every backend's provider key (`api_key_env`), once shaped like a
real OpenAI project key and once as a short value no pattern would call a secret. Fake upstreams
(real HTTP servers) echo the credentials they receive in error bodies and in-stream error
events, as a careless provider does (`Incorrect API key provided: <key>`). Whatever the path,
dLLM and OpenAI over Stepgate's own wire, OpenAI and Anthropic through `litellm.acompletion`,
status errors and mid-stream errors, JSON and SSE, in process and through `stepgate serve`, the
canary must be absent from every byte a client receives: status line aside, every header and
body byte of chat answers, stream frames, error bodies, /readyz, /v1/models, /metrics and the
dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app_client import running_app
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import (
    FakeUpstream,
    echo_auth,
    persistent,
    status,
    stream_error_echo,
)

ADMIN = "canary-test-admin-key-0123456789"
BEARER = {"authorization": f"Bearer {ADMIN}"}

SHAPED = "sk-proj-CanaryZq7Xw3Lp9Vt2Rk5Nm8Hb4Jd6Fs1Gy0"
SHORT = "hunter2-upstream"  # no credential pattern matches this on its own
CANARIES = {"shaped": SHAPED, "short": SHORT}
KEY_ENVS = ("CANARY_DLLM_KEY", "CANARY_OPENAI_KEY", "CANARY_ANTHROPIC_KEY")

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    api_key_env: CANARY_DLLM_KEY
    timeouts: {{connect_s: 1, request_s: 10}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  ar-native:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: CANARY_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 20}}
  ar-litellm:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: CANARY_OPENAI_KEY
    base_url: {openai}
    transport: litellm
    timeouts: {{connect_s: 1, request_s: 20}}
  ar-anthropic:
    type: litellm
    model: anthropic/claude-haiku-4-5
    api_key_env: CANARY_ANTHROPIC_KEY
    base_url: {anthropic}
    timeouts: {{connect_s: 1, request_s: 20}}
baseline: ar-native
retry: {{max_attempts: 1, backoff_base_ms: 1, backoff_max_ms: 5, max_retry_after_s: 1}}
# One app serves every case, most of them upstream failures: a breaker would open and later
# cases would never reach the upstream whose echo they check.
circuit_breaker: {{enabled: false}}
request_timeout_s: 30
aliases:
  dllm-direct: {{backend: dllm, checks: none}}
  gpt-native: ar-native
  gpt-litellm: ar-litellm
  claude-haiku: ar-anthropic
routes:
  - name: deep
    target: ar-native
default_route: deep
"""

# Path id -> the model alias that takes it: one row per connector family and call path.
PATHS = {
    "dllm-wire": "dllm-direct",
    "openai-wire": "gpt-native",
    "openai-litellm": "gpt-litellm",
    "anthropic-litellm": "claude-haiku",
}
# What a client gets for each upstream status on a single-backend path.
CLIENT_STATUS = {400: 400, 401: 502, 403: 502, 429: 429, 500: 502, 502: 502, 503: 503, 504: 504}


def leaks(data: bytes, canary: str) -> list[str]:
    """The forms of `canary` found in `data`: the key, `Bearer <key>`, or its first or last ten
    characters (what a cut through the key, or a provider's `sk-...abcd` hint, would leave)."""
    text = data.decode("utf-8", "replace")
    forms = {canary, f"Bearer {canary}", canary[:10], canary[-10:]}
    return sorted(f for f in forms if f in text)


def client_bytes(response: httpx.Response) -> bytes:
    """Every byte of a response a client can read: header names and values, then the body."""
    head = b"".join(k + b": " + v + b"\r\n" for k, v in response.headers.raw)
    return head + b"\r\n" + response.content


def write_policy(directory: Path, dllm: FakeUpstream, openai: FakeUpstream, anthropic: Any) -> Path:
    path = directory / "policy.yaml"
    path.write_text(
        POLICY.format(dllm=dllm.openai_base, openai=openai.openai_base, anthropic=anthropic.url)
    )
    return path


@pytest.fixture(scope="module", params=sorted(CANARIES))
def canary(request: pytest.FixtureRequest) -> Iterator[str]:
    """The canary, set as every backend's provider key for the tests that use it."""
    value = CANARIES[request.param]
    with pytest.MonkeyPatch.context() as env:
        for name in KEY_ENVS:
            env.setenv(name, value)
        yield value


@pytest.fixture
def upstreams(
    fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> dict[str, FakeUpstream]:
    """Each model alias's upstream, reset for this test."""
    return {
        "dllm-direct": fake_dllm,
        "gpt-native": fake_openai,
        "gpt-litellm": fake_openai,
        "claude-haiku": fake_anthropic,
    }


@pytest.fixture(scope="module")
def app(
    canary: str,
    tmp_path_factory: pytest.TempPathFactory,
    fake_dllm_server: FakeUpstream,
    fake_openai_server: FakeUpstream,
    fake_anthropic_server: FakeUpstream,
) -> Iterator[Any]:
    """One gateway per canary, shared by the tests that only send chat requests (the policy
    has no limits, budgets or breakers for one test's failures to carry into the next)."""
    workdir = tmp_path_factory.mktemp("canary-gateway")
    policy = write_policy(workdir, fake_dllm_server, fake_openai_server, fake_anthropic_server)
    with running_app(policy, workdir, admin_key=ADMIN, preload_ar=False) as client:
        yield client


@pytest.fixture
def fresh_app(
    canary: str,
    tmp_path: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
) -> Iterator[Any]:
    """A gateway of this test's own (for tests that reload its policy)."""
    policy = write_policy(tmp_path, fake_dllm, fake_openai, fake_anthropic)
    with running_app(policy, tmp_path, admin_key=ADMIN, preload_ar=False) as client:
        yield client


def chat(client: Any, model: str, *, stream: bool) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Where is my order 1234?"}],
        "stream": stream,
    }
    response: httpx.Response = client.post("/v1/chat/completions", json=body)
    return response


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("code", sorted(CLIENT_STATUS))
@pytest.mark.parametrize("path", sorted(PATHS))
def test_upstream_error_echoing_the_key_is_redacted(
    app: Any,
    upstreams: dict[str, FakeUpstream],
    canary: str,
    path: str,
    code: int,
    stream: bool,
) -> None:
    model = PATHS[path]
    upstream = upstreams[model]
    upstream.script([persistent(echo_auth(code))])
    r = chat(app, model, stream=stream)
    # The key did go upstream, and the upstream's answer quoted it back.
    sent = upstream.last_request.headers
    assert canary in (sent.get("authorization", "") + sent.get("x-api-key", ""))
    assert r.status_code >= 400, r.text
    if path.endswith("wire"):
        assert r.status_code == CLIENT_STATUS[code], r.text
    # The upstream's words are still relayed, with the key masked out of them.
    assert "Incorrect API key provided" in r.json()["error"]["message"], r.text
    assert leaks(client_bytes(r), canary) == [], r.text


@pytest.mark.parametrize("path", sorted(PATHS))
def test_stream_error_event_echoing_the_key_is_redacted(
    app: Any, upstreams: dict[str, FakeUpstream], canary: str, path: str
) -> None:
    model = PATHS[path]
    upstream = upstreams[model]
    upstream.set_reply(content="Your order ships on Monday morning.")
    upstream.script([persistent(stream_error_echo(after_chunks=5))])
    r = chat(app, model, stream=True)
    assert r.status_code == 200, r.text
    frames = [f for f in r.content.split(b"\n\n") if f.strip()]
    errors = [f for f in frames if b'"error"' in f]
    assert errors and b"Incorrect API key provided" in errors[-1], r.text  # the break arrived
    for frame in frames:
        assert leaks(frame, canary) == [], frame
    assert leaks(client_bytes(r), canary) == []


def test_upstream_error_code_field_is_redacted(
    app: Any, fake_dllm: FakeUpstream, canary: str
) -> None:
    """The upstream's `code` is relayed as ours: it is upstream text like the message."""
    body = {"error": {"message": "bad key", "type": "invalid_request_error", "code": canary}}
    fake_dllm.script([persistent(status(400, body=body))])
    r = chat(app, "dllm-direct", stream=False)
    assert r.status_code == 400, r.text
    assert leaks(client_bytes(r), canary) == [], r.text


def test_plain_text_error_body_cut_anywhere_keeps_no_part_of_the_key(
    app: Any, fake_dllm: FakeUpstream, canary: str
) -> None:
    """A non-JSON error body quoting the key, at every offset around where a cut could fall:
    no cut may leave a piece of the key that neither its value nor its shape still matches."""
    for offset in range(150, 260, 7):
        text = "x" * offset + canary + " was refused. " + "y" * 600
        fake_dllm.script([status(401, body=text)])
        r = chat(app, "dllm-direct", stream=False)
        assert r.status_code == 502, r.text
        assert leaks(client_bytes(r), canary) == [], (offset, r.text)


def test_long_upstream_error_text_is_capped(app: Any, fake_dllm: FakeUpstream) -> None:
    essay = "The upstream explains at great length why it failed. " * 2000
    fake_dllm.script([persistent(status(500, body={"error": {"message": essay}}))])
    r = chat(app, "dllm-direct", stream=False)
    assert r.status_code == 502, r.text
    message = r.json()["error"]["message"]
    assert "The upstream explains" in message
    assert len(message) < 2000


def test_status_surfaces_hold_no_key_after_failures_and_a_rejected_reload(
    fresh_app: Any,
    tmp_path: Path,
    upstreams: dict[str, FakeUpstream],
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
    canary: str,
) -> None:
    """Every path has failed with the key in the upstream's words, and a reload that puts
    `${CANARY_OPENAI_KEY}` where a URL belongs was rejected with a problem quoting the value:
    /readyz shows the problem (still ready, still public by default), not the key; /v1/models,
    /metrics, the dashboard and the spend API hold no trace of it either."""
    for model, upstream in upstreams.items():
        upstream.script([persistent(echo_auth(401))])
        for stream in (False, True):
            assert chat(fresh_app, model, stream=stream).status_code >= 400
        upstream.reset_script()
    policy = write_policy(tmp_path, fake_dllm, fake_openai, fake_anthropic)
    policy.write_text(
        policy.read_text().replace(
            f"base_url: {fake_openai.openai_base}\n    transport",
            "base_url: ${CANARY_OPENAI_KEY}\n    transport",
        )
    )
    r = fresh_app.post("/admin/policy/reload", headers=BEARER)
    assert r.status_code == 422, r.text
    ready = fresh_app.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert any("base_url" in p for p in ready.json()["policy_errors"]), ready.text
    for url, headers in [
        ("/readyz", {}),
        ("/healthz", {}),
        ("/v1/models", {}),
        ("/metrics", {}),
        ("/dashboard", BEARER),
        ("/v1/spend/summary", BEARER),
        ("/v1/spend/escalations", BEARER),
    ]:
        r = fresh_app.get(url, headers=headers)
        assert r.status_code < 500, (url, r.status_code, r.text)
        assert leaks(client_bytes(r), canary) == [], (url, r.text)


# --- /readyz behind the admin key ---------------------------------------------------------------


@pytest.fixture
def admin_only(
    canary: str,
    tmp_path: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
) -> Iterator[Any]:
    policy = write_policy(tmp_path, fake_dllm, fake_openai, fake_anthropic)
    with running_app(
        policy, tmp_path, admin_key=ADMIN, preload_ar=False, readyz_admin_only=True
    ) as client:
        yield client


def test_readyz_admin_only_refuses_without_the_admin_key(admin_only: Any) -> None:
    for headers in ({}, {"authorization": "Bearer not-the-admin-key-at-all"}):
        r = admin_only.get("/readyz", headers=headers)
        assert r.status_code == 401, r.text
        error = r.json()["error"]
        assert error["type"] == "authentication_error"
        assert error["message"]
    assert admin_only.get("/healthz").status_code == 200
    r = admin_only.get("/readyz", headers=BEARER)
    assert r.status_code == 200, r.text
    assert r.json()["ready"] is True


def test_readyz_admin_only_without_an_admin_key_is_closed(
    canary: str,
    tmp_path: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
) -> None:
    """No admin key set: nobody can open /readyz (403 naming the setting); /healthz answers."""
    policy = write_policy(tmp_path, fake_dllm, fake_openai, fake_anthropic)
    with running_app(policy, tmp_path, preload_ar=False, readyz_admin_only=True) as client:
        r = client.get("/readyz", headers=BEARER)
        assert r.status_code == 403, r.text
        assert "STEPGATE_ADMIN_KEY" in r.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200


# --- through `stepgate serve` -------------------------------------------------------------------


@pytest.mark.e2e
def test_served_gateway_never_returns_the_key(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> None:
    policy = write_policy(tmp_path, fake_dllm, fake_openai, fake_anthropic)
    env = {name: SHORT for name in KEY_ENVS}
    env.update(STEPGATE_ADMIN_KEY=ADMIN, STEPGATE_PRELOAD_AR="false", STEPGATE_POLICY_POLL_S="0")
    # The first AR call imports litellm (seconds on a busy machine): a generous read timeout.
    with (
        serve(policy, tmp_path, env=env) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        seen: list[tuple[str, list[str]]] = []
        for model, upstream in (("dllm-direct", fake_dllm), ("gpt-native", fake_openai)):
            for stream in (False, True):
                upstream.script([echo_auth(401)])
                r = chat(client, model, stream=stream)
                assert r.status_code == 502, r.text
                seen.append((f"{model} 401 stream={stream}", leaks(client_bytes(r), SHORT)))
            upstream.set_reply(content="Your order ships on Monday morning.")
            upstream.script([stream_error_echo(after_chunks=2)])
            r = chat(client, model, stream=True)
            assert r.status_code == 200 and b'"error"' in r.content, r.text
            seen.append((f"{model} stream error", leaks(client_bytes(r), SHORT)))
        for url in ("/readyz", "/v1/models", "/metrics"):
            seen.append((url, leaks(client_bytes(client.get(url)), SHORT)))
        dashboard = client.get("/dashboard", headers=BEARER)
        seen.append(("/dashboard", leaks(client_bytes(dashboard), SHORT)))
    assert [(what, found) for what, found in seen if found] == []
