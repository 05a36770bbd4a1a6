"""Prometheus metrics: values per request, bounded labels, exposition, multiprocess merge."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.telemetry.metrics import LabelLimits, Metrics
from tests.support.telemetry_builders import attempt, escalated_request, request


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


def test_one_request_counts_every_dimension() -> None:
    m = Metrics()
    m.observe_request(
        request(ttft_ms=12.0), overhead_ms=0.8, evidence="structure", classify_s=0.0002
    )
    labels = {"route": "cheap-structured", "backend": "dllm", "kind": "classify", "status": "200"}
    assert value(m, "stepgate_requests_total", **labels) == 1
    rb = {"route": "cheap-structured", "backend": "dllm"}
    assert value(m, "stepgate_request_duration_seconds_count", **rb) == 1
    assert value(m, "stepgate_request_duration_seconds_sum", **rb) == pytest.approx(0.045)
    assert value(m, "stepgate_time_to_first_token_seconds_sum", **rb) == pytest.approx(0.012)
    assert value(m, "stepgate_overhead_seconds_bucket", route="cheap-structured", le="0.001") == 1
    assert value(m, "stepgate_tokens_total", direction="in", **rb) == 120
    assert value(m, "stepgate_tokens_total", direction="out", **rb) == 8
    assert value(m, "stepgate_cost_usd_total", **rb) == pytest.approx(2e-6)
    assert value(m, "stepgate_baseline_cost_usd_total", **rb) == pytest.approx(1.5e-4)
    assert (
        value(m, "stepgate_routing_decisions_total", route="cheap-structured", evidence="structure")
        == 1
    )
    assert value(m, "stepgate_classifier_duration_seconds_count") == 1
    assert (
        value(m, "stepgate_backend_attempts_total", backend="dllm", role="primary", outcome="ok")
        == 1
    )
    assert value(m, "stepgate_escalations_total", route="cheap-structured", reason="none") == 0


def test_retries_escalations_and_errors_come_from_attempt_roles() -> None:
    m = Metrics()
    m.observe_request(escalated_request(), overhead_ms=1.0, evidence="hint", classify_s=0.0001)
    assert value(m, "stepgate_escalations_total", route="refunds", reason="low_confidence") == 1
    assert (
        value(m, "stepgate_retries_total", backend="dllm", error_class="provider_unavailable") == 1
    )
    assert (
        value(
            m, "stepgate_backend_errors_total", backend="dllm", error_class="provider_unavailable"
        )
        == 1
    )
    assert (
        value(m, "stepgate_fallbacks_total", backend="dllm", error_class="provider_unavailable")
        == 0
    )
    assert value(m, "stepgate_cost_usd_total", route="refunds", backend="ar-main") == pytest.approx(
        1e-3
    )
    assert value(m, "stepgate_cost_usd_total", route="refunds", backend="dllm") == pytest.approx(
        2e-6
    )
    # The request is counted once, under its final backend.
    assert (
        value(
            m,
            "stepgate_requests_total",
            route="refunds",
            backend="ar-main",
            kind="extract",
            status="200",
        )
        == 1
    )


def test_fallback_is_counted_against_the_backend_that_failed() -> None:
    failed = attempt(outcome="error", error_class="provider_timeout", cost_nanos=0)
    fallback = attempt(attempt=1, role="fallback", backend="ar-main", backend_type="litellm")
    m = Metrics()
    for _ in range(3):
        m.observe_request(request(failed, fallback), overhead_ms=1, evidence="model", classify_s=0)
    assert value(m, "stepgate_fallbacks_total", backend="dllm", error_class="provider_timeout") == 3
    assert (
        value(
            m,
            "stepgate_requests_total",
            route="cheap-structured",
            backend="ar-main",
            kind="classify",
            status="200",
        )
        == 3
    )


def test_unknown_prices_are_counted_not_summed() -> None:
    m = Metrics()
    m.observe_request(
        request(attempt(cost_nanos=None)), overhead_ms=1, evidence="model", classify_s=0
    )
    rb = {"route": "cheap-structured", "backend": "dllm"}
    assert value(m, "stepgate_cost_unknown_total", **rb) == 1
    assert value(m, "stepgate_cost_usd_total", **rb) == 0


def test_labels_stay_bounded_and_in_vocabulary() -> None:
    m = Metrics(limits=LabelLimits(routes={"refunds"}, backends={"dllm"}, code_cap=4))
    weird = attempt(outcome="error", error_class="Provider Exploded!", backend="evil")
    retry = attempt(attempt=1, role="retry")
    m.observe_request(
        request(
            weird,
            retry,
            route="req-123-abc",
            step_kind="poem",
            status=999,
            escalated=True,
            escalation_reason="confidence 0.41 < 0.6",
        ),
        overhead_ms=1,
        evidence="gut feeling",
        classify_s=0,
    )
    for i in range(10):
        m.observe_request(
            request(escalated=True, escalation_reason=f"reason_{i}", route="refunds"),
            overhead_ms=1,
            evidence="hint",
            classify_s=0,
        )
    got = samples(m)
    label_values = {v for (_, labels) in got for (_, v) in labels}
    assert "req-123-abc" not in label_values and "evil" not in label_values
    assert "poem" not in label_values and "gut feeling" not in label_values
    assert (
        value(
            m,
            "stepgate_requests_total",
            route="other",
            backend="dllm",
            kind="other",
            status="other",
        )
        == 1
    )
    assert (
        value(
            m, "stepgate_backend_errors_total", backend="other", error_class="gateway_unclassified"
        )
        == 1
    )
    assert value(m, "stepgate_routing_decisions_total", route="other", evidence="other") == 1
    reasons = {
        dict(labels)["reason"] for (name, labels) in got if name == "stepgate_escalations_total"
    }
    # Free text is "other"; at most code_cap distinct codes pass, the rest fold into "other".
    assert reasons == {"other", "reason_0", "reason_1", "reason_2", "reason_3"}


def test_policy_reload_narrows_route_labels() -> None:
    m = Metrics()
    m.observe_request(request(route="old-route"), overhead_ms=1, evidence="hint", classify_s=0)
    m.set_label_limits(routes={"refunds"}, backends={"dllm"})
    m.observe_request(request(route="old-route"), overhead_ms=1, evidence="hint", classify_s=0)
    assert value(m, "stepgate_routing_decisions_total", route="other", evidence="hint") == 1
    assert value(m, "stepgate_routing_decisions_total", route="old-route", evidence="hint") == 1


def test_error_class_family_is_preserved_when_malformed() -> None:
    m = Metrics()
    failed = attempt(outcome="error", error_class="provider_Weird-Thing")
    m.observe_request(request(failed), overhead_ms=1, evidence="hint", classify_s=0)
    assert (
        value(m, "stepgate_backend_errors_total", backend="dllm", error_class="provider_other") == 1
    )


def test_operational_gauges_and_counters() -> None:
    m = Metrics()
    m.set_backend_health("dllm", False)
    m.set_backend_health("ar-main", True)
    m.policy_generation(3)
    m.policy_reload_failed()
    m.set_spool_depth(17)
    m.store_error("rate_limit", "open")
    assert value(m, "stepgate_backend_up", backend="dllm") == 0
    assert value(m, "stepgate_backend_up", backend="ar-main") == 1
    assert value(m, "stepgate_policy_generation") == 3
    assert value(m, "stepgate_policy_reload_failures_total") == 1
    assert value(m, "stepgate_ledger_spool_depth") == 17
    assert value(m, "stepgate_store_errors_total", limit="rate_limit", mode="open") == 1


def test_two_apps_in_one_process_have_separate_registries() -> None:
    a, b = Metrics(), Metrics()
    a.policy_reload_failed()
    assert value(a, "stepgate_policy_reload_failures_total") == 1
    assert value(b, "stepgate_policy_reload_failures_total") == 0


def test_multiprocess_dir_without_env_at_import_is_refused(tmp_path: Path) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        pytest.skip("this test process runs in multiprocess mode")
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(multiproc_dir=tmp_path)


_WORKER = textwrap.dedent(
    """
    import sys
    from gateway.telemetry.metrics import Metrics
    from tests.support.telemetry_builders import request
    m = Metrics.from_env()
    for _ in range(int(sys.argv[1])):
        m.observe_request(request(), overhead_ms=1.0, evidence="hint", classify_s=0.0001)
    m.set_spool_depth(int(sys.argv[1]))
    m.policy_generation(int(sys.argv[1]))
    if len(sys.argv) > 2:
        sys.stdout.buffer.write(m.render()[0])
    """
)


def test_multiprocess_mode_merges_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    for n in ("2", "3"):
        subprocess.run([sys.executable, "-c", _WORKER, n], env=env, cwd=root, check=True)
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, "0", "render"],
        env=env,
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    got = {}
    for family in text_string_to_metric_families(out):
        for s in family.samples:
            got[(s.name, frozenset(s.labels.items()))] = s.value
    labels = frozenset(
        {
            "route": "cheap-structured",
            "backend": "dllm",
            "kind": "classify",
            "status": "200",
        }.items()
    )
    assert got[("stepgate_requests_total", labels)] == 5
    # Gauges: the exited workers' live values are still on disk until marked dead; max of gens.
    assert got[("stepgate_policy_generation", frozenset())] == 3


def test_fast_families_expose_what_prometheus_client_would() -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from gateway.telemetry.fastseries import CounterFamily, FamilyCollector, HistogramFamily

    buckets = (0.001, 0.01, 0.1, 1.0)
    observations = [0.0005, 0.001, 0.002, 0.01, 0.5, 3.0, 1.0]
    reference = CollectorRegistry()
    ref_h = Histogram("x_seconds", "doc", ("route",), registry=reference, buckets=buckets)
    ref_c = Counter("x_events", "doc", ("route",), registry=reference)
    fast = FamilyCollector()
    fast_h = HistogramFamily("x_seconds", "doc", ("route",), buckets)
    fast_c = CounterFamily("x_events", "doc", ("route",))
    fast.add(fast_h)
    fast.add(fast_c)
    ours = CollectorRegistry()
    ours.register(fast)
    for v in observations:
        ref_h.labels("r").observe(v)
        fast_h.labels("r").observe(v)
        ref_c.labels("r").inc(v)
        fast_c.labels("r").inc(v)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [line for line in text.splitlines() if "_created" not in line]

    assert lines(ours) == lines(reference)
