"""Prometheus metrics: the one registry the daemon exposes on ``/metrics``.

Everything reconciler measures is registered on :data:`REGISTRY` (never on prometheus-client's
global default registry, so tests and several daemons in one process do not collide). Names carry
the ``reconciler_`` prefix and no label ever holds an unbounded value (no run ids, no error text).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from reconciler import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

BUILD_INFO = Gauge(
    "reconciler_build_info",
    "Always 1; the version label says which reconciler is running.",
    ["version"],
    registry=REGISTRY,
)
BUILD_INFO.labels(version=__version__).set(1)
