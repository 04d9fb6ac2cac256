"""The store's own value type: a lease.

:class:`Lease` is what :meth:`Store.acquire` returns to a replica and what fenced writes carry.
A workflow's status record is not the store's type but a shared one (:mod:`reconciler.status`);
run records and journal entries are the engine's own types (``reconciler/engine/journal.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

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
