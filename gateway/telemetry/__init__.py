"""Observability: Prometheus metrics, OTel traces (GenAI conventions), JSON logs, redaction."""
