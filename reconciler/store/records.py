"""The store's value types: a workflow's status and a lease.

The planner (``reconciler/daemon``) builds a :class:`WorkflowStatusRecord` after deciding about a
workflow and hands it to :meth:`Store.put_status`; the API, the CLI and the metrics read them back
with :meth:`Store.get_status` / :meth:`Store.list_statuses`. :class:`Lease` is what
:meth:`Store.acquire` returns to a replica and what fenced writes carry. Run records and journal
entries are the engine's own types (``reconciler/engine/journal.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reconciler.clock import utcnow


class Sync(StrEnum):
    """Whether the observed state agrees with the desired state (Argo CD's sync status)."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class Health(StrEnum):
    """Where a workflow stands overall.

    ``Retired`` is only used in reports about a workflow removed from git; a retired workflow's
    row is deleted (:meth:`Store.delete_status`) while its runs stay.
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


class Lease(BaseModel):
    """A held lease. ``fencing_token`` grows with every new acquisition of the same name, so a
    write carrying an older token can be recognised and refused (:class:`LeaseLost`).

    :meth:`Store.renew` updates ``expires_at`` of the object it is given.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    owner: str
    fencing_token: int
    expires_at: datetime
    ttl_seconds: float

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)
