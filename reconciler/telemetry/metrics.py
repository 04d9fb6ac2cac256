"""Prometheus metrics: the one registry the daemon exposes on ``/metrics`` (``docs/operations.md`` lists them).

Everything reconciler measures is registered on :data:`REGISTRY` (never on prometheus-client's
global default registry, so tests and several daemons in one process do not collide). Names carry
the ``reconciler_`` prefix and no label ever holds an unbounded value: no run ids, no error text,
no paths outside the repository. ``workflow``, ``file`` and (on notifications) ``provider`` are
bounded by the repository, ``plugin`` by the installed plugins, ``result``/``status``/``reason``/
``outcome`` by fixed vocabularies (a status reason that is not one CamelCase word is shown as
``Other``) and
``revision`` (on ``snapshot_info`` only) by the one current revision.

This module only *declares* the metrics. They are fed from the flow by
:mod:`reconciler.telemetry.instrument` (a journal wrapper the engine writes through, a resolver
wrapper, and hooks the daemon's controller calls); the engine itself knows nothing of Prometheus.
Values that already live elsewhere (queue depth, fetch counters of the source) are read at scrape
time through :data:`LIVE` rather than copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from reconciler.version import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RUN_RESULTS: tuple[str, ...] = ("succeeded", "failed", "cancelled")
"""Values of ``result`` on ``reconciler_runs_total`` (a finished run's status)."""

FETCH_RESULTS: tuple[str, ...] = ("success", "failure")
"""Values of ``result`` on ``reconciler_git_fetch_total``."""

SECRET_REASONS: tuple[str, ...] = (
    "missing",
    "not_allowed",
    "forbidden",
    "auth",
    "sealed",
    "unreachable",
    "invalid",
    "unreadable",
    "not_configured",
    "unsupported",
    "error",
)
"""Values of ``reason`` on ``reconciler_secret_errors_total``: ``missing`` (variable, file or
Vault path absent), ``forbidden`` (policy), ``auth`` (Vault token expired, login failed),
``sealed``, ``unreachable`` (Vault), ``invalid`` (bad reference, undecryptable ciphertext),
``unreadable`` (file), ``not_configured`` (``vault:`` without Vault), ``unsupported``
(unknown scheme), ``error`` (anything else)."""

SECRET_PROVIDERS: tuple[str, ...] = ("env", "file", "vault", "transit", "unknown")
"""Values of ``provider`` on ``reconciler_secret_errors_total`` (the reference's scheme)."""

_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_RUN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

BUILD_INFO = Gauge(
    "reconciler_build_info",
    "Always 1; the version label says which reconciler is running.",
    ["version"],
    registry=REGISTRY,
)
BUILD_INFO.labels(version=__version__).set(1)

WORKFLOW_STATUS = Gauge(
    "reconciler_workflow_status",
    "1 for the workflow's current status (Pending, Progressing, Converged, Degraded, "
    "Suspended, Invalid), 0 for the others.",
    ["workflow", "status"],
    registry=REGISTRY,
)
WORKFLOW_REASON = Gauge(
    "reconciler_workflow_reason",
    "Always 1; the reason label is why the workflow has its current status (RunFailed, "
    "ObserveFailed, InvalidSpec, InSync, ...). One series per workflow.",
    ["workflow", "reason"],
    registry=REGISTRY,
)
_REASON_SHOWN: dict[str, str] = {}
"""Workflow → the reason its one :data:`WORKFLOW_REASON` series carries, so a new reason
removes exactly the old series (a scan of every workflow's series per status change made a
pass over 10,000 workflows quadratic)."""


def show_reason(workflow: str, reason: str) -> None:
    """Make ``reason`` the one :data:`WORKFLOW_REASON` series of ``workflow``."""
    old = _REASON_SHOWN.get(workflow)
    if old is not None and old != reason:
        with contextlib.suppress(KeyError):
            WORKFLOW_REASON.remove(workflow, old)
    WORKFLOW_REASON.labels(workflow=workflow, reason=reason).set(1)
    _REASON_SHOWN[workflow] = reason


def hide_sync(workflow: str) -> None:
    """Drop the :data:`WORKFLOW_IN_SYNC` series of ``workflow`` (its sync is unknown)."""
    with contextlib.suppress(KeyError):
        WORKFLOW_IN_SYNC.remove(workflow)


WORKFLOW_IN_SYNC = Gauge(
    "reconciler_workflow_in_sync",
    "1 when the observed state matches the desired state, 0 when it drifted; absent while "
    "unknown (no probe, or not observed yet).",
    ["workflow"],
    registry=REGISTRY,
)
WORKFLOW_LAST_SUCCESS = Gauge(
    "reconciler_workflow_last_success_timestamp_seconds",
    "Unix time the workflow's last successful run finished.",
    ["workflow"],
    registry=REGISTRY,
)
RUNS = Counter(
    "reconciler_runs_total",
    "Finished runs, by workflow and result (succeeded, failed, cancelled).",
    ["workflow", "result"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "reconciler_run_duration_seconds",
    "Wall-clock time of finished runs (a resumed run counts from its resumption).",
    ["workflow"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
ACTION_DURATION = Histogram(
    "reconciler_action_duration_seconds",
    "Time of each action attempt, by plugin and result ('success' or the error name).",
    ["plugin", "result"],
    buckets=_SECONDS_BUCKETS,
    registry=REGISTRY,
)
ACTION_RETRIES = Counter(
    "reconciler_action_retries_total",
    "Action attempts beyond the first, by plugin.",
    ["plugin"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "reconciler_transitions_total",
    "State transitions taken, by workflow.",
    ["workflow"],
    registry=REGISTRY,
)
RUNS_IN_PROGRESS = Gauge(
    "reconciler_runs_in_progress",
    "Runs started (or resumed) and not finished yet.",
    registry=REGISTRY,
)
RUNS_AWAITING_APPROVAL = Gauge(
    "reconciler_runs_awaiting_approval",
    "Runs in this process waiting at an approval gate for someone to approve or reject them.",
    registry=REGISTRY,
)
SNAPSHOT_INFO = Gauge(
    "reconciler_snapshot_info",
    "Always 1; the revision label names the revision the daemon currently works from.",
    ["revision"],
    registry=REGISTRY,
)
CONFIG_ERRORS = Gauge(
    "reconciler_config_errors",
    "Errors found in a workflow file of the current revision (the series goes when fixed).",
    ["file"],
    registry=REGISTRY,
)
STORE_UP = Gauge(
    "reconciler_store_up",
    "1 when the store is usable (what /readyz checks: it answers, its file and tables are "
    "there), 0 when not; checked at each scrape.",
    registry=REGISTRY,
)
STORE_UP.set(1)
SECRET_ERRORS = Counter(
    "reconciler_secret_errors_total",
    "Secret references that could not be resolved, by provider and reason.",
    ["provider", "reason"],
    registry=REGISTRY,
)
# Every (provider, reason) starts at 0, so increase() sees the very first error.
for _provider in SECRET_PROVIDERS:
    for _reason in SECRET_REASONS:
        SECRET_ERRORS.labels(provider=_provider, reason=_reason)

NOTIFICATION_OUTCOMES: tuple[str, ...] = (
    "sent",
    "failed",
    "dropped",
    "rate_limited",
    "deduplicated",
    "refused",
)
"""Values of ``outcome`` on ``reconciler_notifications_total``."""

NOTIFICATIONS = Counter(
    "reconciler_notifications_total",
    "Notifications by provider (a Provider document's name) and outcome: sent, failed (the "
    "provider answered an error or could not be reached, after retries), dropped (the queue was "
    "full, or the daemon stopped), rate_limited, deduplicated (a repeat of the last event), "
    "refused (the operator's --notify-hosts/--notify-provider-types do not allow it).",
    ["provider", "outcome"],
    registry=REGISTRY,
)


@dataclass
class FetchStats:
    """What :class:`LiveCollector` reads from the source at scrape time."""

    ok: int
    failed: int
    last_success_at: datetime | None
    signature_refused: bool = False


class LiveCollector(Collector):
    """Metrics read at scrape time from the running daemon's objects, not copied into gauges.

    ``queue_depth`` and ``fetch_stats`` are set by
    :meth:`reconciler.telemetry.instrument.DaemonMetrics.watch_queue` / ``watch_source``.
    Before a daemon is wired, the queue depth and fetch counters read 0 and the last successful
    fetch reads 0 (never), so alert expressions always find a series.
    """

    def __init__(self) -> None:
        self.queue_depth: Callable[[], int] | None = None
        self.fetch_stats: Callable[[], FetchStats] | None = None
        self.window_blocked: Callable[[], Mapping[str, bool]] | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families(FetchStats(0, 0, None), depth=0, blocked={})

    def collect(self) -> Iterable[Metric]:
        stats = self.fetch_stats() if self.fetch_stats is not None else FetchStats(0, 0, None)
        depth = self.queue_depth() if self.queue_depth is not None else 0
        blocked = self.window_blocked() if self.window_blocked is not None else {}
        return self._families(stats, depth=depth, blocked=blocked)

    @staticmethod
    def _families(stats: FetchStats, *, depth: int, blocked: Mapping[str, bool]) -> list[Metric]:
        fetches = CounterMetricFamily(
            "reconciler_git_fetch",
            "Fetches of the repository (or reads of the directory), by result.",
            labels=["result"],
        )
        fetches.add_metric(["success"], stats.ok)
        fetches.add_metric(["failure"], stats.failed)
        last = stats.last_success_at.timestamp() if stats.last_success_at is not None else 0.0
        windows = GaugeMetricFamily(
            "reconciler_workflow_window_blocked",
            "1 while a change window keeps the workflow's runs from starting (an open deny "
            "window, or no allow window open), 0 while they may start. Only workflows a "
            "window applies to have a series.",
            labels=["workflow"],
        )
        for name, is_blocked in sorted(blocked.items()):
            windows.add_metric([name], 1.0 if is_blocked else 0.0)
        return [
            windows,
            fetches,
            GaugeMetricFamily(
                "reconciler_git_last_fetch_success_timestamp_seconds",
                "Unix time of the last successful fetch; 0 before the first one.",
                value=last,
            ),
            GaugeMetricFamily(
                "reconciler_git_signature_refused",
                "1 while the head commit of the tracked branch is refused because it is not "
                "signed by an allowed key (--verify-signatures); the last verified revision "
                "stays applied. 0 otherwise.",
                value=1.0 if stats.signature_refused else 0.0,
            ),
            GaugeMetricFamily(
                "reconciler_queue_depth",
                "Workflows waiting in the work queue to be reconciled now.",
                value=depth,
            ),
        ]


LIVE = LiveCollector()
REGISTRY.register(LIVE)

PER_WORKFLOW: tuple[Gauge | Counter | Histogram, ...] = (
    WORKFLOW_STATUS,
    WORKFLOW_REASON,
    WORKFLOW_IN_SYNC,
    WORKFLOW_LAST_SUCCESS,
    RUNS,
    RUN_DURATION,
    TRANSITIONS,
)
"""Metrics with a ``workflow`` label: their series go when the workflow is retired."""


def remove_series(metric: Gauge | Counter | Histogram, **match: str) -> None:
    """Remove every series of ``metric`` whose labels include all of ``match``."""
    if metric is WORKFLOW_REASON and "workflow" in match:
        _REASON_SHOWN.pop(match["workflow"], None)
    names = metric._labelnames
    wanted = {names.index(k): v for k, v in match.items()}
    for family in metric.collect():
        seen: set[tuple[str, ...]] = set()
        for sample in family.samples:
            values = tuple(sample.labels.get(n, "") for n in names)
            if values in seen or any(values[i] != v for i, v in wanted.items()):
                continue
            seen.add(values)
            with contextlib.suppress(KeyError):
                metric.remove(*values)
