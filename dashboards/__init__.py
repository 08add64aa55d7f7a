"""Grafana dashboards of the service, written in Python and committed as generated JSON."""
