"""The deploy/ observability files are well-formed and the dashboard queries metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.telemetry.metrics import Metrics
from tests.support.telemetry_builders import escalated_request, request

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_collector_pipelines_reference_defined_components() -> None:
    cfg = load_yaml(DEPLOY / "otel-collector.yaml")
    assert set(cfg["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    defined = {
        section: set(cfg.get(section) or {})
        for section in ("receivers", "processors", "exporters", "connectors")
    }
    pipelines = cfg["service"]["pipelines"]
    assert {"debug", "prometheus"} <= defined["exporters"]
    for pipeline in pipelines.values():
        for name in pipeline["receivers"]:
            assert name in defined["receivers"] | defined["connectors"]
        for name in pipeline.get("processors", []):
            assert name in defined["processors"]
        for name in pipeline["exporters"]:
            assert name in defined["exporters"] | defined["connectors"]
    assert "debug" in pipelines["traces"]["exporters"]
    assert "prometheus" in pipelines["metrics"]["exporters"]


def test_prometheus_scrapes_the_gateway() -> None:
    cfg = load_yaml(DEPLOY / "prometheus.yml")
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    gateway = jobs["stepgate"]
    assert gateway.get("metrics_path", "/metrics") == "/metrics"
    # Every replica, found through Docker's DNS (one A record each), not one picked at random.
    assert gateway["dns_sd_configs"][0]["names"] == ["gateway"]
    assert gateway["dns_sd_configs"][0]["port"] == 8080


def test_grafana_provisioning() -> None:
    ds = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = load_yaml(DEPLOY / "grafana/provisioning/dashboards/stepgate.yml")["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = orjson.loads((DEPLOY / "grafana/dashboards/stepgate.json").read_bytes())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}


def test_dashboard_queries_only_metrics_the_gateway_exports() -> None:
    dashboard = orjson.loads((DEPLOY / "grafana/dashboards/stepgate.json").read_bytes())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("cost per route", "escalation rate", "latency", "overhead"):
        assert topic in titles
    m = Metrics()
    m.observe_request(escalated_request(), overhead_ms=1, evidence="hint", classify_s=0.0001)
    m.observe_request(
        request(ttft_ms=5.0, disposition="draft"),
        overhead_ms=1,
        evidence="model",
        classify_s=0.0001,
    )
    m.set_backend_health("dllm", True)
    body = m.render()[0].decode()
    exported = set(re.findall(r"^(stepgate_\w+)", body, flags=re.MULTILINE))
    exported |= set(re.findall(r"^# TYPE (stepgate_\w+)", body, flags=re.MULTILINE))
    used = {name for e in exprs for name in re.findall(r"\bstepgate_\w+", e)}
    assert used, "the dashboard queries nothing"
    # Counters are exposed as <name>_total; histograms as <name>_bucket/_sum/_count.
    missing = sorted(
        n
        for n in used
        if n not in exported and not any(n == f"{e}_total" or n == f"{e}_bucket" for e in exported)
    )
    assert not missing, missing
