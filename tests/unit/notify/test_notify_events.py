"""Which events a workflow's status change means (reconciler/notify/events.py)."""

from __future__ import annotations

from typing import Any

from reconciler.config.notifications import EventType
from reconciler.notify.events import Event, status_events
from reconciler.status import Health, WorkflowStatusRecord


def record(
    status: Health, reason: str = "", run: str | None = None, **more: Any
) -> WorkflowStatusRecord:
    return WorkflowStatusRecord(name="app", status=status, reason=reason, last_run_id=run, **more)


def test_a_new_run_is_run_started_and_a_drift_run_is_drift_detected_too() -> None:
    old = record(Health.CONVERGED, "InSync", run="r1")
    assert status_events(old, record(Health.PROGRESSING, "SpecChanged", run="r2")) == [
        EventType.RUN_STARTED
    ]
    assert status_events(old, record(Health.PROGRESSING, "OutOfSync", run="r2")) == [
        EventType.RUN_STARTED,
        EventType.DRIFT_DETECTED,
    ]


def test_a_failed_run_is_run_failed_and_degraded_once() -> None:
    running = record(Health.PROGRESSING, "SpecChanged", run="r1")
    failed = record(Health.DEGRADED, "RunFailed", run="r1")
    assert status_events(running, failed) == [EventType.RUN_FAILED, EventType.DEGRADED]
    # the retry of a workflow already degraded fails again: no second status event
    again = record(Health.PROGRESSING, "Retrying", run="r2")
    assert status_events(failed, again) == [EventType.RUN_STARTED]
    assert status_events(again, record(Health.DEGRADED, "RunFailed", run="r2")) == [
        EventType.RUN_FAILED,
        EventType.DEGRADED,
    ]


def test_a_successful_drift_run_heals_the_drift_and_converges() -> None:
    running = record(Health.PROGRESSING, "OutOfSync", run="r1")
    done = record(Health.CONVERGED, "RunSucceeded", run="r1")
    assert status_events(running, done) == [
        EventType.RUN_SUCCEEDED,
        EventType.DRIFT_HEALED,
        EventType.CONVERGED,
    ]


def test_drift_remaining_after_a_run_counts_as_a_failed_run() -> None:
    running = record(Health.PROGRESSING, "OutOfSync", run="r1")
    remains = record(Health.DEGRADED, "DriftRemains", run="r1")
    assert status_events(running, remains) == [EventType.RUN_FAILED, EventType.DEGRADED]


def test_checks_that_change_nothing_mean_nothing() -> None:
    ok = record(Health.CONVERGED, "InSync", run="r1")
    assert status_events(ok, ok.model_copy(update={"message": "checked again"})) == []


def test_invalid_and_suspended_are_status_events() -> None:
    ok = record(Health.CONVERGED, "InSync", run="r1")
    assert status_events(ok, record(Health.INVALID, "InvalidSpec", run="r1")) == [EventType.INVALID]
    assert status_events(None, record(Health.SUSPENDED, "Suspended")) == [EventType.SUSPENDED]


def test_an_event_family_groups_what_replaces_each_other() -> None:
    def family(kind: EventType) -> str:
        return Event(kind, "app", "abc").family

    assert family(EventType.RUN_FAILED) == family(EventType.RUN_SUCCEEDED) == "run"
    assert family(EventType.RUN_STARTED) == "run.started"
    assert family(EventType.DRIFT_DETECTED) == family(EventType.DRIFT_HEALED) == "drift"
    assert Event(EventType.RUN_FAILED, "app", None).severity == "error"
    assert Event(EventType.RUN_SUCCEEDED, "app", None).severity == "info"
