"""The run journal: what the engine records, and the interface a store implements.

The engine (``engine/runner.py``) writes a :class:`RunRecord` when a run starts, one
:class:`JournalEntry` per event, and the final status; every ``transition`` entry is written
*before* the next state starts, which is what lets an interrupted run resume in the state it was
in (``RunRecord.current_state`` plus the ``outputs`` carried in the last transition entry).

:class:`MemoryJournal` serves one-shot commands and tests; the daemon's store
(``reconciler/store``) implements the same :class:`Journal` protocol in SQL. Everything written
here has already been through the run's redaction, so no secret value reaches a journal.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from reconciler.clock import utcnow


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self is not RunStatus.RUNNING


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    CHECK = "check"
    STATE_ENTERED = "state_entered"
    ACTION = "action"
    TRANSITION = "transition"
    RUN_FINISHED = "run_finished"


# Looking a member up on an enum class is slow next to a module global (the hot path needs these)
_STATE_ENTERED = EventKind.STATE_ENTERED
_TRANSITION = EventKind.TRANSITION


class RunRecord(BaseModel):
    """One run of one workflow's machine."""

    model_config = ConfigDict(extra="forbid")

    id: str
    workflow: str
    revision: str = ""
    parent_id: str | None = None
    reason: str = Field("", description="Why it ran: drift, spec-change, manual, delete, test.")
    status: RunStatus = RunStatus.RUNNING
    current_state: str | None = None
    attempt: int = 1
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    error: str | None = Field(None, description="Redacted error name and message of a failed run.")
    outputs: dict[str, Any] = Field(default_factory=dict)


class JournalEntry(BaseModel):
    """One event of a run. ``seq`` orders a run's entries and is unique within it."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    seq: int
    at: datetime = Field(default_factory=utcnow)
    kind: EventKind
    state: str | None = None
    to_state: str | None = None
    outcome: str | None = Field(None, description="'success' or the error name.")
    detail: dict[str, Any] = Field(default_factory=dict)


_ENTRY_FIELDS_SET = frozenset(("run_id", "seq", "kind", "state", "to_state", "outcome", "detail"))
_set_attr = object.__setattr__
_new = object.__new__  # what JournalEntry.__new__ is, minus the metaclass lookup


def trusted_entry(
    run_id: str,
    seq: int,
    *,
    kind: EventKind,
    state: str | None,
    to_state: str | None,
    outcome: str | None,
    detail: dict[str, Any],
) -> JournalEntry:
    """A :class:`JournalEntry` built from the engine's own, already well-typed values.

    The engine writes one entry per event, so this skips pydantic validation (which would only
    re-check what the type annotations of this function already guarantee). The result equals
    ``JournalEntry(run_id=..., seq=..., kind=..., ...)`` field for field, ``model_fields_set``
    included (``at`` is the default, taken now).
    """
    entry = _new(JournalEntry)
    _set_attr(
        entry,
        "__dict__",
        {
            "run_id": run_id,
            "seq": seq,
            "at": datetime.now(UTC),
            "kind": kind,
            "state": state,
            "to_state": to_state,
            "outcome": outcome,
            "detail": detail,
        },
    )
    _set_attr(entry, "__pydantic_fields_set__", set(_ENTRY_FIELDS_SET))
    _set_attr(entry, "__pydantic_extra__", None)
    _set_attr(entry, "__pydantic_private__", None)
    return entry


@runtime_checkable
class Journal(Protocol):
    """Where runs are recorded. Implementations must make each call durable before returning."""

    async def run_started(self, run: RunRecord) -> None: ...

    async def record(self, entry: JournalEntry) -> None:
        """Append an entry; for ``transition`` entries also update the run's current state and
        outputs (``entry.to_state`` and ``entry.detail['outputs']``)."""

    async def run_finished(self, run: RunRecord) -> None:
        """Store the final status, ``finished_at``, error and outputs of ``run``."""

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def entries(self, run_id: str) -> list[JournalEntry]: ...

    async def unfinished_runs(self) -> list[RunRecord]:
        """Runs still marked running: after a crash these are resumed."""


def copy_data(value: Any) -> Any:
    """A deep copy of JSON-like data: dicts and lists are rebuilt, str/int/float/bool/None
    shared (immutable), anything else goes through :func:`copy.deepcopy`.

    Much faster than ``deepcopy`` on the outputs of a big ``foreach`` (no memo, no dispatch).
    """
    kind = type(value)
    if kind is dict:
        return {k: copy_data(v) for k, v in value.items()}
    if kind is list:
        return [copy_data(v) for v in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def copy_run(run: RunRecord) -> RunRecord:
    """``run.model_copy(deep=True)``: its only mutable field is ``outputs``."""
    copied = run.model_copy()
    copied.__dict__["outputs"] = copy_data(run.outputs)
    return copied


class MemoryJournal:
    """A :class:`Journal` in memory, for one-shot commands and tests."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.log: dict[str, list[JournalEntry]] = {}

    async def run_started(self, run: RunRecord) -> None:
        self.runs[run.id] = copy_run(run)
        self.log.setdefault(run.id, [])

    async def record(self, entry: JournalEntry) -> None:
        run_id = entry.run_id
        log = self.log.get(run_id)
        if log is None:
            log = self.log[run_id] = []
        log.append(entry)
        run = self.runs.get(run_id)
        if run is None:
            return
        kind = entry.kind
        # What `run.current_state = ...` does for a model without validate_assignment, minus
        # pydantic's __setattr__ dispatch: this runs twice per transition.
        if kind is _STATE_ENTERED:
            run.__dict__["current_state"] = entry.state
            run.__pydantic_fields_set__.add("current_state")
        elif kind is _TRANSITION:
            fields = run.__dict__
            fields["current_state"] = entry.to_state
            run.__pydantic_fields_set__.add("current_state")
            detail = entry.detail
            if "outputs" in detail:
                fields["outputs"] = dict(detail["outputs"])
                run.__pydantic_fields_set__.add("outputs")

    async def run_finished(self, run: RunRecord) -> None:
        self.runs[run.id] = copy_run(run)

    async def get_run(self, run_id: str) -> RunRecord | None:
        run = self.runs.get(run_id)
        return copy_run(run) if run else None

    async def entries(self, run_id: str) -> list[JournalEntry]:
        return list(self.log.get(run_id, []))

    async def unfinished_runs(self) -> list[RunRecord]:
        return [copy_run(r) for r in self.runs.values() if not r.status.finished]
