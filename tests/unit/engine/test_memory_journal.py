"""MemoryJournal: what is recorded is what is read back, and keeping it costs the collector little.

The journal keeps entries in a compact form rather than as the objects it was given; these tests
pin down that the difference is invisible to readers (every field, in order, per run) and that
the compact form does what it is for: a growing journal of plain entries does not grow the set
of objects every garbage collection of the process scans.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from reconciler.engine.journal import EventKind, JournalEntry, MemoryJournal, RunRecord

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
JOURNAL_MODULE = MemoryJournal.__module__


def _tracked_in(journal: MemoryJournal) -> int:
    """How many objects the journal holds (through its containers and its own objects) that
    the garbage collector tracks: what every full collection has to walk because of it."""
    gc.collect()  # the collector stops tracking a tuple of plain values when it first sees it
    seen: set[int] = set()
    stack: list[object] = [journal]
    tracked = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        tracked += gc.is_tracked(obj)
        if isinstance(obj, dict | list | tuple) or type(obj).__module__ == JOURNAL_MODULE:
            stack.extend(gc.get_referents(obj))
    return tracked


def _entries(run_id: str) -> list[JournalEntry]:
    return [
        JournalEntry(
            run_id=run_id, seq=1, at=AT, kind=EventKind.RUN_STARTED, detail={"reason": ""}
        ),
        JournalEntry(run_id=run_id, seq=2, at=AT, kind=EventKind.STATE_ENTERED, state="a"),
        JournalEntry(
            run_id=run_id,
            seq=3,
            at=AT,
            kind=EventKind.ACTION,
            state="a",
            outcome="PluginError",
            detail={"plugin": "x.y", "ok": False, "error": {"name": "PluginError"}},
        ),
        JournalEntry(
            run_id=run_id,
            seq=4,
            at=AT,
            kind=EventKind.TRANSITION,
            state="a",
            to_state="b",
            outcome="success",
            detail={"condition": "default", "outputs": {"first": {"value": [1, 2]}}},
        ),
    ]


async def test_entries_read_back_equal_what_was_recorded_in_order_per_run() -> None:
    journal = MemoryJournal()
    for run_id in ("r1", "r2"):
        await journal.run_started(RunRecord(id=run_id, workflow="wf"))
        for entry in _entries(run_id):
            await journal.record(entry)

    assert await journal.entries("r1") == _entries("r1")
    assert await journal.entries("r2") == _entries("r2")
    assert journal.log == {"r1": _entries("r1"), "r2": _entries("r2")}
    assert await journal.entries("unknown") == []
    [entry] = [e for e in await journal.entries("r1") if e.kind is EventKind.TRANSITION]
    assert type(entry.kind) is EventKind and type(entry.detail) is dict


async def test_a_transition_sets_the_runs_state_and_outputs() -> None:
    journal = MemoryJournal()
    await journal.run_started(RunRecord(id="r1", workflow="wf"))
    for entry in _entries("r1"):
        await journal.record(entry)

    run = await journal.get_run("r1")
    assert run is not None
    assert run.current_state == "b"
    assert run.outputs == {"first": {"value": [1, 2]}}


async def test_changing_an_entry_read_back_changes_nothing_the_journal_holds() -> None:
    journal = MemoryJournal()
    await journal.record(_entries("r1")[0])

    [read] = await journal.entries("r1")
    read.detail["reason"] = "changed"
    read.seq = 99

    assert await journal.entries("r1") == _entries("r1")[:1]


async def test_plain_entries_add_nothing_for_the_collector_to_scan() -> None:
    journal = MemoryJournal()
    await journal.run_started(RunRecord(id="r1", workflow="wf"))
    before = _tracked_in(journal)
    for seq in range(1, 2001):
        await journal.record(
            JournalEntry(
                run_id="r1",
                seq=seq,
                kind=EventKind.ACTION,
                state="s",
                outcome="success",
                detail={"plugin": "x.y", "index": 0, "attempt": 1, "ok": True, "duration": 0.1},
            )
        )

    # kept as entry objects, that was one more object per entry: 2,000
    assert _tracked_in(journal) - before < 10
    assert len(await journal.entries("r1")) == 2000


async def test_transitions_carrying_the_same_outputs_add_nothing_for_the_collector_either() -> None:
    journal = MemoryJournal()
    await journal.run_started(RunRecord(id="r1", workflow="wf"))
    outputs = {"first": {"value": [1, 2]}}
    before = _tracked_in(journal)
    for seq in range(1, 2001):
        await journal.record(
            JournalEntry(
                run_id="r1",
                seq=seq,
                kind=EventKind.TRANSITION,
                state=f"s{seq}",
                to_state=f"s{seq + 1}",
                outcome="success",
                detail={"condition": "default", "outputs": outputs},
            )
        )

    assert _tracked_in(journal) - before < 10  # the outputs, kept once
    read = await journal.entries("r1")
    assert [e.to_state for e in read] == [f"s{seq + 1}" for seq in range(1, 2001)]
    assert all(e.detail == {"condition": "default", "outputs": outputs} for e in read)
