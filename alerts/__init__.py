"""Alerting as code: Prometheus rules generated from `telemetry.thresholds`, their unit tests,
and the Prometheus and Alertmanager configurations that load them."""
