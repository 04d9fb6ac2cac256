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

import contextlib
import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import ConfigDict, TypeAdapter

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
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    RUN_FINISHED = "run_finished"


@dataclass(slots=True, kw_only=True)
class RunRecord:
    """One run of one workflow's machine.

    A plain dataclass (the engine reads and sets its fields on every transition): nothing is
    validated on construction or assignment. Data from outside the process (a store row, an API
    body) goes through :data:`RUN_RECORDS`, which validates it and refuses unknown keys; copies
    are made with :func:`dataclasses.replace` (or :func:`copy_run` for a deep one).

    ``reason`` says why it ran (drift, spec-change, manual, delete, test); ``error`` is the
    redacted error name and message of a failed run. ``document`` is the workflow document the
    run started with (the validated model as JSON, what the workflow file holds: secret
    references, never their values) when its caller gave one: whoever resumes the run resumes
    it with that spec, whatever git holds by then. ``None`` for a run started without one (a
    one-shot command, a child run, a run recorded before the store kept documents); a store may
    also drop it once the run has finished. ``started_at`` is the wall-clock instant the run's
    deadline counts from, also across a restart. ``requested_by`` (the names of the API tokens
    whose syncs a manual run answered) and ``cancelled_by`` (the token whose cancel was
    accepted) are written by the store, never by the engine: it leaves them ``None``.
    ``inputs`` are the inputs the run was started with beyond its spec (a run started with
    inputs through the API, a child run's ``with:``), after the run's redaction; ``None`` for a
    run started with none. A resumed run runs with them again.
    """

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    id: str
    workflow: str
    revision: str = ""
    parent_id: str | None = None
    reason: str = ""
    status: RunStatus = RunStatus.RUNNING
    current_state: str | None = None
    attempt: int = 1
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    document: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    requested_by: str | None = None
    cancelled_by: str | None = None


@dataclass(slots=True, kw_only=True)
class JournalEntry:
    """One event of a run. ``seq`` orders a run's entries and is unique within it.

    Built by the engine from its own well-typed values, so construction validates nothing; data
    from outside the process goes through :data:`JOURNAL_ENTRIES`. ``outcome`` is ``'success'``
    or the error name; ``at`` defaults to now (UTC).
    """

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    run_id: str
    seq: int
    at: datetime = field(default_factory=utcnow)
    kind: EventKind
    state: str | None = None
    to_state: str | None = None
    outcome: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


RUN_RECORDS: TypeAdapter[RunRecord] = TypeAdapter(RunRecord)
"""Validates a :class:`RunRecord` from a mapping (``validate_python``) and serialises one
(``dump_python(run, mode="json")``): what a store or the API uses at its edge."""

JOURNAL_ENTRIES: TypeAdapter[JournalEntry] = TypeAdapter(JournalEntry)
"""Validates and serialises a :class:`JournalEntry`, like :data:`RUN_RECORDS`."""


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


SINCE = "since"
"""The ``detail`` key of a ``state_entered`` entry written when a resumed run re-enters the state
it was in: the ISO instant the state was first entered, which its timers still count from."""


def entered_at(entries: Sequence[JournalEntry], state: str | None) -> datetime | None:
    """When an interrupted run entered ``state``, the state it is to resume in: the wall-clock
    instant its ``after`` waits and its timeout count from, read from the journal ``entries``.

    That is the ``at`` of the run's last ``state_entered`` entry, or, when that entry was written
    by an earlier resumption, the instant it carries over (``detail["since"]``), so the timers
    survive any number of restarts. ``None`` when the run has not entered ``state`` since its last
    transition (it stopped between leaving a state and entering the next): its timers start now.
    """
    if state is None:
        return None
    for entry in reversed(entries):
        kind = entry.kind
        if kind == EventKind.TRANSITION:
            return None
        if kind == EventKind.STATE_ENTERED:
            if entry.state != state:
                return None
            since = entry.detail.get(SINCE)
            if isinstance(since, str):
                with contextlib.suppress(ValueError):
                    return _aware(datetime.fromisoformat(since))
            return _aware(entry.at)
    return None


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


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
    """A deep copy of ``run``: its only mutable field is ``outputs`` (``document`` is shared:
    nothing changes it once the run has started)."""
    return dataclasses.replace(run, outputs=copy_data(run.outputs))


_Row = tuple[Any, ...]
"""How :class:`MemoryJournal` keeps an entry: the kind's value, ``seq``, ``at``, ``state``,
``to_state``, ``outcome``, then the ``detail`` keys and values, alternating (the run id is the
key of the log the row is in). A value that is not a string, number, boolean or ``None`` (the
outputs of a ``transition``, an error's details) is kept in the log's :attr:`_Log.held` list:
its key is written as the 1-tuple ``(key,)`` and its value as its index there."""

_KINDS: dict[str, EventKind] = {kind.value: kind for kind in EventKind}


_HELD_KEYS: dict[Any, tuple[Any]] = {}


def _held_key(key: Any) -> tuple[Any]:
    """``(key,)``, the same tuple for the same few keys (an entry's detail has a handful; the
    caller looks in :data:`_HELD_KEYS` first): one allocation less per row, and a row is
    untracked at the first collection that sees it."""
    marker = (key,)
    if type(key) is str and len(_HELD_KEYS) < 256:
        _HELD_KEYS[key] = marker
    return marker


@dataclass(slots=True)
class _Log:
    """One run's entries in :class:`MemoryJournal`: the rows, and the values they refer to."""

    rows: list[_Row] = field(default_factory=list)
    held: list[Any] = field(default_factory=list)

    def append(self, entry: JournalEntry) -> None:
        # attribute by attribute: the interpreter's specialised slot loads beat attrgetter
        row: _Row = (
            entry.kind._value_,
            entry.seq,
            entry.at,
            entry.state,
            entry.to_state,
            entry.outcome,
        )
        detail = entry.detail
        if not detail:  # most entries
            self.rows.append(row)
            return
        held = self.held
        for key, value in detail.items():
            if type(value) in _IMMUTABLE and type(key) is str:
                row += (key, value)
            else:  # every transition carries the same outputs until they change: kept once
                if not held or held[-1] is not value:
                    held.append(value)
                row += (_HELD_KEYS.get(key) or _held_key(key), len(held) - 1)
        self.rows.append(row)

    def entry(self, run_id: str, row: _Row) -> JournalEntry:
        held = self.held
        detail: dict[Any, Any] = {}
        for key, value in zip(row[6::2], row[7::2], strict=True):
            if type(key) is tuple:
                detail[key[0]] = held[value]
            else:
                detail[key] = value
        return JournalEntry(
            run_id=run_id,
            kind=_KINDS[row[0]],
            seq=row[1],
            at=row[2],
            state=row[3],
            to_state=row[4],
            outcome=row[5],
            detail=detail,
        )

    def entries(self, run_id: str) -> list[JournalEntry]:
        return [self.entry(run_id, row) for row in self.rows]


class MemoryJournal:
    """A :class:`Journal` in memory, for one-shot commands and tests.

    Entries are kept as flat tuples of strings, numbers and instants (see :data:`_Row`), not
    as :class:`JournalEntry` objects, and rebuilt when read: each read builds new entries and
    ``detail`` dicts, whose values are the ones recorded (shared, as before). The garbage
    collector stops tracking a tuple that holds no container, so a growing journal adds almost
    nothing to the collections of the process it lives in: kept as entry objects, a run of a
    thousand transitions added three thousand objects to every later full collection, and in a
    loop of runs the collector took about half the engine's time (``bench/engine.py``).
    """

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self._logs: dict[str, _Log] = {}

    @property
    def log(self) -> dict[str, list[JournalEntry]]:
        """Every run's entries, in the order they were recorded (a copy, built on each read)."""
        return {run_id: log.entries(run_id) for run_id, log in self._logs.items()}

    async def run_started(self, run: RunRecord) -> None:
        self.runs[run.id] = copy_run(run)
        self._logs.setdefault(run.id, _Log())

    async def record(self, entry: JournalEntry) -> None:
        run_id = entry.run_id
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = _Log()
        log.append(entry)
        run = self.runs.get(run_id)
        if run is None:
            return
        kind = entry.kind
        # EventKind is a StrEnum: comparing with its values skips a lookup on the enum class,
        # which costs more than the rest of this branch (this runs twice per transition)
        if kind == "state_entered":
            run.current_state = entry.state
        elif kind == "transition":
            run.current_state = entry.to_state
            detail = entry.detail
            if "outputs" in detail:
                run.outputs = dict(detail["outputs"])

    async def run_finished(self, run: RunRecord) -> None:
        self.runs[run.id] = copy_run(run)

    async def get_run(self, run_id: str) -> RunRecord | None:
        run = self.runs.get(run_id)
        return copy_run(run) if run else None

    async def entries(self, run_id: str) -> list[JournalEntry]:
        log = self._logs.get(run_id)
        return log.entries(run_id) if log is not None else []

    async def unfinished_runs(self) -> list[RunRecord]:
        return [copy_run(r) for r in self.runs.values() if not r.status.finished]
