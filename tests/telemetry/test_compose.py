"""docker-compose.yml is valid Compose (checked by the compose CLI) and wires what we ship."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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


SECRETS = {
    "STEPGATE_ADMIN_KEY": "compose-test-admin-key-0123456789abcdef",
    "POSTGRES_PASSWORD": "compose-test-pg-password",
    "GRAFANA_ADMIN_PASSWORD": "compose-test-grafana-password",
}


def render(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`compose config` with only `env` (an empty env file, none of the developer's variables)."""
    empty = Path(tempfile.mkdtemp()) / "empty.env"
    empty.write_text("")
    cmd = [*compose_cmd(), "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(empty)]
    cmd += ["--profile", "gpu", "config"]
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST")}
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, timeout=60, env={**base, **env}
    )


def test_compose_file_validates() -> None:
    proc = render(SECRETS)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert {
        "gateway",
        "lb",
        "postgres",
        "redis",
        "dllm",
        "otel-collector",
        "prometheus",
        "grafana",
    } <= set(services)


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing: str) -> None:
    proc = render({k: v for k, v in SECRETS.items() if k != missing})
    assert proc.returncode != 0
    assert missing in proc.stderr


def test_replicas_are_reached_through_the_load_balancer_and_all_scraped() -> None:
    services = yaml.safe_load(render(SECRETS).stdout)["services"]
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] >= 2
    assert not gateway.get("ports"), "a fixed host port cannot serve two replicas"
    lb = services["lb"]
    published = {str(p.get("published", p) if isinstance(p, dict) else p) for p in lb["ports"]}
    assert any("8080" in p for p in published)
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in conf and "proxy_pass $gateway" in conf
    assert "proxy_buffering off" in conf  # streams pass through
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "stepgate")
    assert "static_configs" not in job
    assert job["dns_sd_configs"] == [
        {"names": ["gateway"], "type": "A", "port": 8080, "refresh_interval": "15s"}
    ]


def test_images_are_pinned_and_nothing_runs_with_a_default_secret() -> None:
    proc = render(SECRETS)
    services = yaml.safe_load(proc.stdout)["services"]
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            assert "build" in svc, name
            continue
        tag = image.rpartition(":")[2]
        assert ":" in image and tag not in ("latest", ""), f"{name}: {image} is not pinned"
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    env = services["gateway"]["environment"]
    assert env["STEPGATE_ADMIN_KEY"] == SECRETS["STEPGATE_ADMIN_KEY"]
    assert SECRETS["POSTGRES_PASSWORD"] in env["STEPGATE_DATABASE_URL"]
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text and "POSTGRES_PASSWORD: stepgate" not in text


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
