"""A workflow's status: how it stands (:class:`Health`), whether it agrees with git
(:class:`Sync`), and the row that records both (:class:`WorkflowStatusRecord`).

Shared by the layers that decide, keep and show statuses, so it depends on none of them (only
pydantic): the planner (``reconciler/daemon/planner.py``) builds records, the status book
(``reconciler/daemon/statuses.py``) and the replicas hand them to the store
(``reconciler/store``, which also re-exports these names), the API and the metrics read them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.clock import utcnow

SUSPENDED_MANUALLY = "SuspendedManually"
"""The status reason of a workflow suspended through the API (the planner's ``Reason`` too)."""
SUSPENDED_MESSAGE = "suspended through the API; resume it to run again"
"""The status message of a workflow suspended through the API."""


class Sync(StrEnum):
    """Whether the observed state agrees with the desired state (Argo CD's sync status)."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class Health(StrEnum):
    """Where a workflow stands overall .

    ``Retired`` is only used in reports about a workflow removed from git; a retired workflow's
    row is deleted (``Store.delete_status``) while its runs stay.
    """

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    CONVERGED = "Converged"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    INVALID = "Invalid"
    RETIRED = "Retired"


class WorkflowStatusRecord(BaseModel):
    """One workflow's status row. Every timestamp is timezone-aware UTC when read back."""

    model_config = ConfigDict(extra="forbid")

    name: str
    sync: Sync = Sync.UNKNOWN
    status: Health = Health.PENDING
    reason: str = ""
    message: str = ""
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    spec_digest: str | None = None
    last_run_id: str | None = None
    last_success_at: datetime | None = None
    next_check_at: datetime | None = None
    failures: int = Field(0, ge=0, description="Consecutive failed runs; reset on success.")
    diff: Any = Field(None, description="JSON-able field diff between desired and observed.")
    observed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    suspended: bool = Field(
        False,
        description="Suspended through the API. Only a suspend or resume command changes it in "
        "the store; a status write keeps the stored value (and, while it is set, the row reads "
        "Suspended/SuspendedManually whatever the write said).",
    )
