"""The per-workflow gauges DaemonMetrics keeps from each stored status."""

from __future__ import annotations

import uuid

from reconciler.store import Health, Sync, WorkflowStatusRecord
from reconciler.telemetry.instrument import STATUSES, DaemonMetrics
from reconciler.telemetry.metrics import REGISTRY


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_follow_each_status_and_come_back_after_a_retirement() -> None:
    metrics = DaemonMetrics()
    name = f"gauges-{uuid.uuid4().hex[:8]}"
    ok = WorkflowStatusRecord(name=name, status=Health.CONVERGED, sync=Sync.SYNCED)

    metrics.status_changed(ok)
    metrics.status_changed(ok.model_copy(update={"message": "checked again"}))
    assert gauge("reconciler_workflow_status", workflow=name, status="Converged") == 1
    assert gauge("reconciler_workflow_in_sync", workflow=name) == 1

    metrics.status_changed(
        ok.model_copy(update={"status": Health.DEGRADED, "sync": Sync.OUT_OF_SYNC})
    )
    assert gauge("reconciler_workflow_status", workflow=name, status="Converged") == 0
    assert gauge("reconciler_workflow_status", workflow=name, status="Degraded") == 1
    assert gauge("reconciler_workflow_in_sync", workflow=name) == 0

    metrics.workflow_removed(name)
    assert gauge("reconciler_workflow_status", workflow=name, status="Degraded") is None
    metrics.status_changed(ok)  # the same status as before the retirement: shown again
    assert gauge("reconciler_workflow_status", workflow=name, status="Converged") == 1
    metrics.workflow_removed(name)


def test_one_status_series_is_1_whatever_the_path_and_an_unknown_sync_hides_its_series() -> None:
    metrics = DaemonMetrics()
    name = f"path-{uuid.uuid4().hex[:8]}"
    record = WorkflowStatusRecord(name=name, status=Health.PENDING, sync=Sync.UNKNOWN)
    path = [
        (Health.PROGRESSING, Sync.UNKNOWN),
        (Health.CONVERGED, Sync.SYNCED),
        (Health.DEGRADED, Sync.OUT_OF_SYNC),
        (Health.PROGRESSING, Sync.UNKNOWN),
        (Health.CONVERGED, Sync.SYNCED),
    ]
    metrics.status_changed(record)
    for status, sync in path:
        metrics.status_changed(record.model_copy(update={"status": status, "sync": sync}))
        shown = {
            h.value: gauge("reconciler_workflow_status", workflow=name, status=h.value)
            for h in STATUSES
        }
        assert shown == {h.value: (1 if h is status else 0) for h in STATUSES}
        in_sync = gauge("reconciler_workflow_in_sync", workflow=name)
        assert in_sync == (None if sync is Sync.UNKNOWN else (1 if sync is Sync.SYNCED else 0))
    metrics.workflow_removed(name)
