"""docker-compose.yml is valid Compose (checked by the compose CLI) and wires what we ship."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_cmd() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    v1 = shutil.which("docker-compose")
    if v1:
        return [v1]
    pytest.fail("no compose CLI: install Debian's docker-compose (.ci/run does) to validate")


def test_compose_file_validates() -> None:
    cmd = [*compose_cmd(), "-f", str(ROOT / "docker-compose.yml"), "--profile", "gpu", "config"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert {
        "gateway",
        "postgres",
        "redis",
        "dllm",
        "otel-collector",
        "prometheus",
        "grafana",
    } <= set(services)


def test_compose_references_existing_files_and_gpu_profile() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert services["dllm"]["profiles"] == ["gpu"]
    assert "profiles" not in services["gateway"]
    env = services["gateway"]["environment"]
    assert env["STEPGATE_REDIS_URL"].startswith("redis://")
    assert env["STEPGATE_DATABASE_URL"].startswith("postgresql")
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert (ROOT / "Dockerfile").exists()
