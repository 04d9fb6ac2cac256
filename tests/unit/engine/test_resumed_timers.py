"""A resumed run's timers go on from where they were, counted from instants in its journal.

Each test writes the journal of a run interrupted at a known instant (explicit timestamps in a
:class:`MemoryJournal`, as a crashed process leaves it) and resumes it: an ``after`` wait, a
state timeout and the run deadline count from when the state was entered or the run started,
not from the resumption. Waits are an hour long, so a timer that started again from zero
shows up as the safety timeout, never as a measured duration.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from reconciler.clock import utcnow
from reconciler.config.models import Workflow
from reconciler.engine.journal import (
    SINCE,
    EventKind,
    JournalEntry,
    MemoryJournal,
    RunRecord,
    RunStatus,
    entered_at,
)
from reconciler.engine.runner import Engine, RunResult
from reconciler.plugin import PluginRegistry
from tests.support.waiting import until_async

END = {"done": {"end": "success"}, "late": {"end": "failure"}}
SAFETY = 20.0
"""Seconds a resumed run may take before the test fails: far below any timer here."""


async def interrupted(
    journal: MemoryJournal,
    *,
    state: str,
    entered: datetime,
    started: datetime | None = None,
) -> RunRecord:
    """The record a process killed in ``state`` leaves: the run started at ``started``, went
    from ``setup`` into ``state`` at ``entered``, and is still marked running."""
    started = started or entered
    record = RunRecord(id="r1", workflow="wf", revision="abc", started_at=started)
    await journal.run_started(record)
    written = [
        JournalEntry(run_id="r1", seq=1, at=started, kind=EventKind.RUN_STARTED),
        JournalEntry(run_id="r1", seq=2, at=started, kind=EventKind.STATE_ENTERED, state="setup"),
        JournalEntry(
            run_id="r1", seq=3, at=entered, kind=EventKind.TRANSITION, state="setup", to_state=state
        ),
        JournalEntry(run_id="r1", seq=4, at=entered, kind=EventKind.STATE_ENTERED, state=state),
    ]
    for entry in written:
        await journal.record(entry)
    found = await journal.get_run("r1")
    assert found is not None and found.current_state == state
    return found


async def resume(engine: Engine, workflow: Workflow, record: RunRecord) -> RunResult:
    return await asyncio.wait_for(engine.run(workflow, resume=record), SAFETY)


async def reentered(journal: MemoryJournal) -> None:
    """Until the resumed run has journaled entering its state again (after the 4 entries of
    :func:`interrupted`)."""

    async def found() -> bool:
        log = await journal.entries("r1")
        return any(e.kind is EventKind.STATE_ENTERED for e in log[4:])

    await until_async(found, SAFETY, "the resumed run to enter its state again", interval=0.01)


def waiting(wf: Any, *, after: str, **spec: Any) -> Workflow:
    return wf(
        {
            "setup": {"next": "wait"},
            "wait": {"transitions": [{"to": "done", "after": after}]},
            **END,
        },
        **spec,
    )


async def test_a_wait_that_ran_out_while_the_run_was_stopped_fires_at_once_on_resume(
    engine: Engine, journal: MemoryJournal, wf: Any, entries: Any
) -> None:
    w = waiting(wf, after="1h")
    record = await interrupted(journal, state="wait", entered=utcnow() - timedelta(hours=2))

    result = await resume(engine, w, record)

    assert result.ok and result.path == ["wait", "done"]
    left = [e for e in await entries("r1") if e.kind is EventKind.TRANSITION][-1]
    assert (left.state, left.to_state, left.detail["condition"]) == ("wait", "done", "after")


async def test_a_resumed_wait_lasts_only_what_is_left_of_it(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    # an hour-long wait with half a second left: started again from zero it would take an hour
    w = waiting(wf, after="1h")
    entered = utcnow() - timedelta(hours=1) + timedelta(seconds=0.5)
    record = await interrupted(journal, state="wait", entered=entered)

    result = await resume(engine, w, record)

    assert result.ok and result.path == ["wait", "done"]


async def test_a_wait_with_time_left_does_not_fire_early(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = waiting(wf, after="1h")
    record = await interrupted(journal, state="wait", entered=utcnow() - timedelta(minutes=59))
    task = asyncio.create_task(engine.run(w, resume=record))
    try:
        await reentered(journal)  # journaled before the wait begins: the wait is running
        await asyncio.sleep(0.2)  # time passing is the test: a minute is left, nothing fires
        assert not task.done()
        run = await journal.get_run("r1")
        assert run is not None and run.current_state == "wait"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_reentered_state_carries_its_first_entry_over_to_the_next_resumption(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = waiting(wf, after="1h")
    first_entry = utcnow() - timedelta(minutes=30)
    record = await interrupted(journal, state="wait", entered=first_entry)
    task = asyncio.create_task(engine.run(w, resume=record))
    await reentered(journal)
    task.cancel()  # a second crash, during the resumed wait
    await asyncio.gather(task, return_exceptions=True)

    log = await journal.entries("r1")
    reentry = [e for e in log if e.kind is EventKind.STATE_ENTERED][-1]
    assert reentry.state == "wait" and reentry.at > first_entry
    assert reentry.detail[SINCE] == first_entry.isoformat()
    assert entered_at(log, "wait") == first_entry


async def test_a_state_timeout_that_passed_while_stopped_routes_at_once_without_running_again(
    registry: PluginRegistry, engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "setup": {"next": "work"},
            "work": {
                "action": {"plugin": "test.sleep", "with": {"seconds": 3600}},
                "timeout": "1m",
                "transitions": [{"to": "done", "on": "success"}, {"to": "late", "on": "Timeout"}],
            },
            **END,
        }
    )
    record = await interrupted(journal, state="work", entered=utcnow() - timedelta(minutes=5))

    result = await resume(engine, w, record)

    assert result.path == ["work", "late"]
    assert result.run.error is not None and "timed out" in result.run.error
    assert registry.instance("test.sleep").in_flight == 0
    assert not registry.instance("test.sleep").started.is_set()


async def test_a_state_timeout_with_time_left_lets_the_actions_run_again(
    registry: PluginRegistry, engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "setup": {"next": "work"},
            "work": {
                "action": {"plugin": "test.echo", "with": {"value": 1}},
                "timeout": "1h",
                "transitions": [{"to": "done", "on": "success"}, {"to": "late", "on": "Timeout"}],
            },
            **END,
        }
    )
    record = await interrupted(journal, state="work", entered=utcnow() - timedelta(minutes=5))

    result = await resume(engine, w, record)

    assert result.ok and result.path == ["work", "done"]
    assert len(registry.instance("test.echo").calls) == 1


async def test_a_run_deadline_that_passed_while_stopped_fails_the_run_at_once(
    registry: PluginRegistry, engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "setup": {"next": "work"},
            "work": {"action": {"plugin": "test.echo"}, "next": "done"},
            **END,
        },
        timeout="10m",
    )
    now = utcnow()
    record = await interrupted(
        journal, state="work", entered=now - timedelta(minutes=1), started=now - timedelta(hours=1)
    )

    result = await resume(engine, w, record)

    assert result.run.status is RunStatus.FAILED
    assert result.run.error is not None and "run deadline of 600s passed" in result.run.error
    assert registry.instance("test.echo").calls == []


async def test_the_run_deadline_of_a_resumed_run_counts_from_when_it_started(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    # started 59 min 59.5 s ago with a 1 h deadline and an hour-long wait: the deadline wins
    w = waiting(wf, after="1h", timeout="1h")
    now = utcnow()
    record = await interrupted(
        journal,
        state="wait",
        entered=now - timedelta(minutes=1),
        started=now - timedelta(hours=1) + timedelta(seconds=0.5),
    )

    result = await resume(engine, w, record)

    assert result.run.status is RunStatus.FAILED
    assert result.run.error is not None and "run deadline" in result.run.error


def entry(seq: int, kind: EventKind, at: datetime, **fields: Any) -> JournalEntry:
    return JournalEntry(run_id="r1", seq=seq, at=at, kind=kind, **fields)


def test_entered_at_is_the_last_entry_into_the_state() -> None:
    t0 = utcnow()
    log = [
        entry(1, EventKind.STATE_ENTERED, t0, state="a"),
        entry(2, EventKind.TRANSITION, t0 + timedelta(seconds=1), state="a", to_state="b"),
        entry(3, EventKind.STATE_ENTERED, t0 + timedelta(seconds=1), state="b"),
        entry(4, EventKind.ACTION, t0 + timedelta(seconds=2), state="b"),
    ]
    assert entered_at(log, "b") == t0 + timedelta(seconds=1)


def test_entered_at_is_unknown_between_leaving_a_state_and_entering_the_next() -> None:
    t0 = utcnow()
    log = [
        entry(1, EventKind.STATE_ENTERED, t0, state="a"),
        entry(2, EventKind.TRANSITION, t0, state="a", to_state="b"),
    ]
    assert entered_at(log, "b") is None
    assert entered_at(log, None) is None
    assert entered_at([], "a") is None
