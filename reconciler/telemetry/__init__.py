"""Telemetry: structured logs (and, later, Prometheus metrics) for the daemon and the CLI."""
