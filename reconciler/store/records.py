"""The store's own value types: a lease and a command.

:class:`Lease` is what :meth:`Store.acquire` returns to a replica and what fenced writes carry;
:class:`Command` is a request the API accepted, as controllers read it back.
A workflow's status record is not the store's type but a shared one (:mod:`reconciler.status`);
run records and journal entries are the engine's own types (``reconciler/engine/journal.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


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


class CommandKind(StrEnum):
    """What the API was asked to do (the ``kind`` column of ``commands``)."""

    SYNC = "sync"
    SUSPEND = "suspend"
    RESUME = "resume"
    CANCEL = "cancel"
    APPROVE = "approve"


@dataclass(frozen=True, slots=True)
class Command:
    """One request the API accepted: ``target`` is a workflow name (sync, suspend, resume) or a
    run id (cancel, approve); ``handled_at`` is ``None`` until it has had its effect.
    ``payload`` is what the request carried beyond its target (an approval's verdict and
    comment, a sync's run inputs), already validated and redacted by whoever recorded it;
    ``None`` when it carried nothing."""

    id: int
    kind: CommandKind
    target: str
    requested_at: datetime
    requested_by: str
    handled_at: datetime | None
    payload: dict[str, Any] | None = None
