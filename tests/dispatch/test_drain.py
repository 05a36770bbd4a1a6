"""Graceful drain on SIGTERM, end to end: `stepgate serve` as a process, signalled mid-request.

In-flight streams and answers finish and are in the ledger after exit; new connections are
refused meanwhile; what outlives STEPGATE_DRAIN_S is cut with an answer (an in-band error
event, or a 503 before the first byte), recorded, and the process exits 0 soon after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from gateway.ledger.tables import attempts, requests
from gateway.settings import Settings
from tests.support.e2e_server import free_port
from tests.support.fakes.upstream import FakeUpstream

CLASSIFY = {"X-Step-Kind": "classify"}
# Classify steps stream from one fake, extract steps are answered by the other (no litellm:
# nothing to import at the first call); the timeouts are well past the slow answers below.
POLICY = """
version: 1
backends:
  streamer:
    type: dllm
    engine: vllm
    base_url: {streamer}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 30}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  answerer:
    type: dllm
    engine: vllm
    base_url: {answerer}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 30}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
baseline: answerer
request_timeout_s: 60
routes:
  - name: stream
    match: {{kind: [classify]}}
    target: streamer
  - name: answer
    target: answerer
default_route: answer
"""


@dataclass
class Gateway:
    url: str
    proc: subprocess.Popen[bytes]
    database: Path
    log: Path

    def terminate(self) -> float:
        """SIGTERM; the time it was sent."""
        self.proc.send_signal(signal.SIGTERM)
        return time.monotonic()

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the gateway did not exit within {timeout_s} s:\n{self.log.read_text()}")

    def rows(
        self, *, request_id: str | None = None, client_id: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A request's ledger row and its attempts, read after the process exited."""
        engine = sa.create_engine(f"sqlite:///{self.database}")
        which = (
            requests.c.request_id == request_id
            if client_id is None
            else requests.c.client_request_id == client_id
        )
        try:
            with engine.connect() as conn:
                req = conn.execute(sa.select(requests).where(which)).one_or_none()
                assert req is not None, f"{request_id or client_id} is not in the ledger"
                atts = conn.execute(
                    sa.select(attempts)
                    .where(attempts.c.request_id == req.request_id)
                    .order_by(attempts.c.attempt)
                ).all()
        finally:
            engine.dispose()
        return dict(req._mapping), [dict(a._mapping) for a in atts]


@contextmanager
def gateway(
    workdir: Path,
    streamer: FakeUpstream,
    answerer: FakeUpstream,
    *args: str,
    **env: str,
) -> Iterator[Gateway]:
    """`stepgate serve` on a free port; the test signals it, this only cleans up."""
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY.format(streamer=streamer.openai_base, answerer=answerer.openai_base))
    port = free_port()
    log = workdir / "server.log"
    database = workdir / "ledger.db"
    full_env = {
        **os.environ,
        "STEPGATE_DATABASE_URL": f"sqlite:///{database}",
        "STEPGATE_SPOOL_DIR": str(workdir / "spool"),
        "STEPGATE_POLICY_POLL_S": "0",
        **env,
    }
    command = [
        *(sys.executable, "-m", "gateway", "serve", "--policy", str(policy), "--port", str(port)),
        *args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not become healthy in time"
            time.sleep(0.05)
        yield Gateway(url, proc, database, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class Stream:
    """A streamed chat completion read on a thread; `started` is set at its first chunk."""

    url: str
    body: dict[str, Any]
    started: threading.Event = field(default_factory=threading.Event)
    events: list[str] = field(default_factory=list)
    request_id: str = ""
    error: BaseException | None = None
    ended_at: float = 0.0

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with (
                httpx.Client(timeout=30) as http,
                http.stream(
                    "POST", f"{self.url}/v1/chat/completions", json=self.body, headers=CLASSIFY
                ) as r,
            ):
                assert r.status_code == 200, r.read()
                self.request_id = r.headers["x-request-id"]
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line.removeprefix("data: "))
                        self.started.set()
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.started.set()

    def join(self, timeout_s: float) -> Stream:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the stream did not end"
        if self.error is not None:
            raise self.error
        return self

    @property
    def text(self) -> str:
        out = ""
        for event in self.events:
            if event != "[DONE]":
                for choice in orjson.loads(event).get("choices", []):
                    out += choice["delta"].get("content") or ""
        return out


@dataclass
class Call:
    """A non-streamed request sent on a thread."""

    send: Callable[[], httpx.Response]
    response: httpx.Response | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.response = self.send()
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout_s: float) -> httpx.Response:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the request did not end"
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


def completion(url: str, client_id: str) -> Call:
    """A non-streamed request, tagged with our own id (a 503 at the cut still names it)."""
    body = {"model": "auto", "messages": [{"role": "user", "content": "order id in: A-7 broke"}]}
    headers = {"x-client-request-id": client_id, "X-Step-Kind": "extract"}
    return Call(
        lambda: httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    )


def stream_body() -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": "billing or shipping?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/readyz", timeout=0.5)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.e2e
def test_sigterm_lets_in_flight_work_finish_and_refuses_new_connections(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    words = [f"w{i}" for i in range(20)]
    fake_dllm.set_reply(content=" ".join(words))
    fake_dllm.chunk_delay_s = 0.1  # ~2 s of stream, most of it after the signal
    fake_openai.set_reply(content="refund approved")
    fake_openai.latency_s = 1.5
    with gateway(tmp_path, fake_dllm, fake_openai, STEPGATE_DRAIN_S="10") as gw:
        stream = Stream(gw.url, stream_body())
        call = completion(gw.url, "drained-answer")
        assert stream.started.wait(10)
        wait_for(lambda: len(fake_openai.requests) == 1, 5, "the upstream to get the request")
        signalled = gw.terminate()

        # (b) the listener is closed at once; the stream is still running meanwhile.
        wait_for(lambda: refused(gw.url), 2, "new connections to be refused")
        assert not stream.ended_at

        # (a) the stream runs to its end: every chunk, the usage chunk, [DONE].
        stream.join(10)
        assert stream.text == " ".join(words)
        assert stream.events[-1] == "[DONE]"
        assert orjson.loads(stream.events[-2])["usage"]["completion_tokens"] == len(words)
        # (d) the answer that was being generated arrives.
        answer = call.join(10)
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "refund approved"

        assert gw.wait(10) == 0
        assert stream.ended_at - signalled > 1.0  # it really ran on after the signal
        req, atts = gw.rows(request_id=stream.request_id)
        assert (req["status"], req["stream"], req["error_class"]) == (200, True, None)
        assert [(a["backend"], a["outcome"]) for a in atts] == [("streamer", "ok")]
        assert atts[0]["completion_tokens"] == len(words)
        req, atts = gw.rows(client_id="drained-answer")
        assert (req["status"], req["stream"]) == (200, False)
        assert [(a["backend"], a["outcome"]) for a in atts] == [("answerer", "ok")]


@pytest.mark.e2e
def test_work_outliving_the_drain_deadline_is_cut_with_an_answer_and_recorded(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply(content=" ".join(f"w{i}" for i in range(200)))
    fake_dllm.chunk_delay_s = 0.1  # 20 s of stream
    fake_openai.latency_s = 20  # no answer before the deadline
    drain_s = 1
    with gateway(tmp_path, fake_dllm, fake_openai, STEPGATE_DRAIN_S=str(drain_s)) as gw:
        stream = Stream(gw.url, stream_body())
        call = completion(gw.url, "cut-answer")
        assert stream.started.wait(10)
        wait_for(lambda: len(fake_openai.requests) == 1, 5, "the upstream to get the request")
        time.sleep(0.3)
        signalled = gw.terminate()

        # (c) the stream ends at the deadline with the gateway's in-band error, not [DONE].
        stream.join(drain_s + 5)
        assert drain_s <= stream.ended_at - signalled < drain_s + 2
        assert "[DONE]" not in stream.events
        error = orjson.loads(stream.events[-1])["error"]
        assert error["code"] == "gateway_shutting_down"
        assert "STEPGATE_DRAIN_S" in error["message"]
        # A request with no byte of its answer yet gets a 503 it can retry elsewhere.
        cut = call.join(drain_s + 5)
        assert cut.status_code == 503
        assert cut.json()["error"]["code"] == "gateway_shutting_down"

        assert gw.wait(drain_s + 5) == 0
        assert time.monotonic() - signalled < drain_s + 4
        req, atts = gw.rows(request_id=stream.request_id)
        assert (req["status"], req["stream"]) == (499, True)
        assert [(a["backend"], a["outcome"]) for a in atts] == [("streamer", "cancelled")]
        # Billed for what was generated: at least the words that reached the client.
        assert atts[0]["completion_tokens"] >= len(stream.text.split()) > 5
        assert cut.headers["x-client-request-id"] == "cut-answer"
        req, atts = gw.rows(client_id="cut-answer")
        assert (req["status"], req["stream"]) == (499, False)
        assert [(a["backend"], a["outcome"]) for a in atts] == [("answerer", "cancelled")]
    log = gw.log.read_text()
    assert "Traceback" not in log


@pytest.mark.e2e
@pytest.mark.redis
def test_every_worker_drains_and_flushes_its_ledger(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    """With --workers the supervisor passes SIGTERM on to each worker, which drains (and cuts
    at the deadline) on its own and flushes its ledger before the supervisor exits."""
    fake_dllm.set_reply(content=" ".join(f"w{i}" for i in range(200)))
    fake_dllm.chunk_delay_s = 0.1  # 20 s of stream: cut at the deadline
    fake_openai.set_reply(content="refund approved")
    fake_openai.latency_s = 1.0  # answered within it
    drain_s = 2
    env = {"STEPGATE_DRAIN_S": str(drain_s), "STEPGATE_REDIS_URL": "redis://127.0.0.1:6379/14"}
    with gateway(tmp_path, fake_dllm, fake_openai, "--workers", "2", **env) as gw:
        streams = [Stream(gw.url, stream_body()) for _ in range(2)]
        calls = [completion(gw.url, f"answer-{i}") for i in range(4)]
        assert all(s.started.wait(10) for s in streams)
        wait_for(lambda: len(fake_openai.requests) == 4, 5, "the upstream to get the requests")
        signalled = gw.terminate()
        assert [c.join(10).status_code for c in calls] == [200] * 4
        for s in streams:
            s.join(drain_s + 5)
            assert orjson.loads(s.events[-1])["error"]["code"] == "gateway_shutting_down"
        assert gw.wait(drain_s + 8) == 0
        assert time.monotonic() - signalled < drain_s + 6
        for s in streams:
            req, atts = gw.rows(request_id=s.request_id)
            assert (req["status"], atts[0]["outcome"]) == (499, "cancelled")
        for i in range(4):
            req, _ = gw.rows(client_id=f"answer-{i}")
            assert req["status"] == 200
    workers = {
        line.split("[")[1] for line in gw.log.read_text().splitlines() if "Finished server" in line
    }
    assert len(workers) == 2


def test_drain_setting_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().drain_s == 25
    for value in ("-1", "3601", "soon"):
        monkeypatch.setenv("STEPGATE_DRAIN_S", value)
        with pytest.raises(ValidationError, match="drain_s"):
            Settings()
