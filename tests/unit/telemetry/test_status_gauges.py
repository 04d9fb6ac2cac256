"""The per-workflow gauges DaemonMetrics keeps from each stored status."""

from __future__ import annotations

import uuid

from reconciler.store import Health, Sync, WorkflowStatusRecord
from reconciler.telemetry.instrument import DaemonMetrics
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
