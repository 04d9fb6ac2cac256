"""What the daemon tells the notifier: an :class:`Event`, and the pure rules that derive events
from two successive status records of a workflow.

The daemon has one narrow seam for notifications, an :class:`EventSink`: the reconciler hands it
every status record it stores (with the one stored before), the controller hands it changes of
the source's health. :func:`status_events` decides, without I/O, which events a status change
means; the sink (:class:`reconciler.notify.delivery.Notifier`) routes them to alerts.

Called by: :mod:`reconciler.daemon.reconcile` (through the sink), the notifier, tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.config.notifications import EventType, Severity, severity_of
from reconciler.status import Health, WorkflowStatusRecord

RUN_FAILED_REASONS = frozenset({"RunFailed", "DriftRemains"})
"""Status reasons after a run that count as the run failing (its end state did not converge)."""
DRIFT_REASON = "OutOfSync"
"""The status reason of a run started because the probe saw the live state differ."""

STATUS_EVENTS: Mapping[Health, EventType] = {
    Health.CONVERGED: EventType.CONVERGED,
    Health.DEGRADED: EventType.DEGRADED,
    Health.INVALID: EventType.INVALID,
    Health.SUSPENDED: EventType.SUSPENDED,
}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``workflow`` is ``None`` for the source's events;
    ``revision`` is the commit the workflow runs at (for commit statuses), when known."""

    type: EventType
    workflow: str | None
    revision: str | None
    status: str = ""
    reason: str = ""
    message: str = ""
    run: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return severity_of(self.type)

    @property
    def family(self) -> str:
        """Events of one family replace each other for deduplication: ``status``, ``run``
        (its outcome), ``run.started``, ``run.awaiting_approval``, ``drift``, ``source``."""
        if self.type in (EventType.RUN_STARTED, EventType.AWAITING_APPROVAL):
            return self.type.value
        return self.type.value.split(".", 1)[0]


class EventSink(Protocol):
    """Where the daemon puts what happened. Must never block nor raise."""

    @property
    def active(self) -> bool:
        """Whether anything listens (the daemon skips the work of telling it otherwise)."""
        ...

    def status_stored(
        self,
        old: WorkflowStatusRecord | None,
        new: WorkflowStatusRecord,
        *,
        labels: Mapping[str, str],
    ) -> None: ...

    def source_changed(self, *, failing: bool, revision: str | None, message: str) -> None: ...

    def approval_requested(
        self,
        *,
        workflow: str,
        run: str,
        revision: str,
        state: str,
        message: str,
        labels: Mapping[str, str],
    ) -> None:
        """A run of ``workflow`` waits at an approval gate in ``state`` (``message``: what the
        approver is asked, rendered and redacted)."""


def status_events(old: WorkflowStatusRecord | None, new: WorkflowStatusRecord) -> list[EventType]:
    """The events a workflow's status going from ``old`` to ``new`` means, in order.

    - ``run.started`` when a new run begins (a ``Progressing`` status with another run id);
      ``drift.detected`` too when that run is for drift (reason ``OutOfSync``);
    - ``run.succeeded``/``run.failed`` when the run ``old`` was progressing ends in ``new``
      (``RunFailed`` and ``DriftRemains`` are failures); ``drift.healed`` after a successful
      drift run;
    - ``status.<health>`` when the health changes to Converged, Degraded, Invalid or Suspended.
    """
    events: list[EventType] = []
    was = old.status if old is not None else None
    new_run = new.status is Health.PROGRESSING and (
        was is not Health.PROGRESSING or (old is not None and old.last_run_id != new.last_run_id)
    )
    if new_run:
        events.append(EventType.RUN_STARTED)
        if new.reason == DRIFT_REASON:
            events.append(EventType.DRIFT_DETECTED)
    ended = (
        old is not None
        and was is Health.PROGRESSING
        and new.status in (Health.CONVERGED, Health.DEGRADED)
        and new.last_run_id is not None
        and new.last_run_id == old.last_run_id
    )
    if ended:
        assert old is not None
        failed = new.reason in RUN_FAILED_REASONS or new.status is Health.DEGRADED
        events.append(EventType.RUN_FAILED if failed else EventType.RUN_SUCCEEDED)
        if not failed and old.reason == DRIFT_REASON:
            events.append(EventType.DRIFT_HEALED)
    if new.status is not was and new.status in STATUS_EVENTS:
        events.append(STATUS_EVENTS[new.status])
    return events
