"""Start `stepgate serve` as a subprocess on a free port and wait until it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(
    policy: Path,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    startup_s: float = 30.0,
) -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) of a running gateway; stop it afterwards."""
    port = free_port()
    full_env = {
        **os.environ,
        "STEPGATE_DATABASE_URL": f"sqlite:///{workdir}/ledger.db",
        "STEPGATE_SPOOL_DIR": str(workdir / "spool"),
        **(env or {}),
    }
    log = open(workdir / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--policy",
            str(policy),
            "--port",
            str(port),
            *args,
        ],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                log.flush()
                raise RuntimeError(
                    f"stepgate serve exited with {proc.returncode}:\n"
                    + (workdir / f"server-{port}.log").read_text()
                )
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("stepgate serve did not become healthy in time")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
