"""``reconciler_workflow_reason``: why each workflow has its status, as one series per workflow.

Alerts tell a failing probe (``ObserveFailed``) from a failed run (``RunFailed``) by it; both
are ``Degraded``. The label only ever holds one CamelCase word, never free text.
"""

from __future__ import annotations

import uuid

from reconciler.store import Health, Sync, WorkflowStatusRecord
from reconciler.telemetry.instrument import DaemonMetrics, reason_label
from reconciler.telemetry.metrics import REGISTRY


def reasons_of(workflow: str) -> dict[str, float]:
    """Every ``reconciler_workflow_reason`` series of ``workflow``: reason → value."""
    found: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "reconciler_workflow_reason" and (
                sample.labels["workflow"] == workflow
            ):
                found[sample.labels["reason"]] = sample.value
    return found


def test_the_reason_series_follows_the_status_and_goes_with_the_workflow() -> None:
    metrics = DaemonMetrics()
    name = f"reason-{uuid.uuid4().hex[:8]}"
    probing = WorkflowStatusRecord(
        name=name, status=Health.DEGRADED, sync=Sync.UNKNOWN, reason="ObserveFailed"
    )

    metrics.status_changed(probing)
    assert reasons_of(name) == {"ObserveFailed": 1}

    metrics.status_changed(probing.model_copy(update={"reason": "RunFailed"}))
    assert reasons_of(name) == {"RunFailed": 1}  # the old reason's series is gone

    metrics.workflow_removed(name)
    assert reasons_of(name) == {}


def test_a_reason_label_is_one_word_or_other() -> None:
    assert reason_label("ObserveFailed") == "ObserveFailed"
    assert reason_label("") == "None"
    assert reason_label("failed: password=hunter2") == "Other"
    assert reason_label("A" * 41) == "Other"
