"""The run journal in SQL: the engine's Journal protocol, durable across a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.engine.journal import (
    JOURNAL_ENTRIES,
    EventKind,
    JournalEntry,
    RunRecord,
    RunStatus,
)
from reconciler.errors import StoreError
from reconciler.store import Store

OpenStore = Callable[[], Awaitable[Store]]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def entry(run_id: str, seq: int, kind: EventKind, **fields: object) -> JournalEntry:
    return JOURNAL_ENTRIES.validate_python(
        {"run_id": run_id, "seq": seq, "kind": kind, "at": T0 + timedelta(seconds=seq), **fields}
    )


async def test_entries_come_back_in_seq_order_whatever_the_write_order(store: Store) -> None:
    await store.run_started(RunRecord(id="r1", workflow="wf", started_at=T0))
    written = [
        entry("r1", 3, EventKind.ACTION, state="apply", outcome="success", detail={"n": 3}),
        entry("r1", 1, EventKind.RUN_STARTED),
        entry("r1", 2, EventKind.STATE_ENTERED, state="apply"),
    ]
    for e in written:
        await store.record(e)

    got = await store.entries("r1")

    assert [e.seq for e in got] == [1, 2, 3]
    assert got[2] == written[0]
    assert await store.entries("other-run") == []


async def test_transition_moves_the_run_and_carries_its_outputs(store: Store) -> None:
    await store.run_started(RunRecord(id="r1", workflow="wf", revision="abc", started_at=T0))
    await store.record(entry("r1", 1, EventKind.STATE_ENTERED, state="start"))
    run = await store.get_run("r1")
    assert run is not None and run.current_state == "start" and run.outputs == {}

    await store.record(
        entry(
            "r1",
            2,
            EventKind.TRANSITION,
            state="start",
            to_state="apply",
            outcome="success",
            detail={"outputs": {"start": {"token_id": "t-1", "count": 2}}},
        )
    )
    run = await store.get_run("r1")
    assert run is not None
    assert run.current_state == "apply"
    assert run.outputs == {"start": {"token_id": "t-1", "count": 2}}

    # A transition without outputs moves the state and leaves the outputs alone.
    await store.record(entry("r1", 3, EventKind.TRANSITION, state="apply", to_state="verify"))
    run = await store.get_run("r1")
    assert run is not None and run.current_state == "verify"
    assert run.outputs == {"start": {"token_id": "t-1", "count": 2}}


async def test_run_finished_stores_status_error_and_outputs(store: Store) -> None:
    run = RunRecord(id="r1", workflow="wf", reason="drift", started_at=T0)
    await store.run_started(run)
    done = replace(
        run,
        status=RunStatus.FAILED,
        finished_at=T0 + timedelta(minutes=1),
        error="HTTP5xx: 503 from https://api.example",
        outputs={"apply": {"ok": False}},
        current_state="apply",
    )
    await store.run_finished(done)

    assert await store.get_run("r1") == done
    assert await store.get_run("missing") is None


async def test_a_duplicate_seq_is_refused_and_the_first_entry_kept(store: Store) -> None:
    await store.run_started(RunRecord(id="r1", workflow="wf"))
    await store.record(entry("r1", 1, EventKind.RUN_STARTED))
    with pytest.raises(StoreError):
        await store.record(entry("r1", 1, EventKind.CHECK, detail={"dup": True}))
    assert [e.kind for e in await store.entries("r1")] == [EventKind.RUN_STARTED]


async def test_an_entry_for_an_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.record(entry("ghost", 1, EventKind.RUN_STARTED))


async def test_interrupted_run_is_found_unfinished_after_a_crash(open_store: OpenStore) -> None:
    before = await open_store()
    await before.run_started(RunRecord(id="crashed", workflow="wf", started_at=T0))
    await before.run_started(RunRecord(id="done", workflow="wf", started_at=T0))
    await before.run_finished(
        RunRecord(id="done", workflow="wf", started_at=T0, status=RunStatus.SUCCEEDED)
    )
    await before.record(
        entry(
            "crashed",
            1,
            EventKind.TRANSITION,
            state="start",
            to_state="drain",
            detail={"outputs": {"start": {"node": "n1"}}},
        )
    )
    await before.close()  # the process dies here: run_finished never comes for "crashed"

    after = await open_store()
    unfinished = await after.unfinished_runs()

    assert [r.id for r in unfinished] == ["crashed"]
    assert unfinished[0].status is RunStatus.RUNNING
    assert unfinished[0].current_state == "drain"
    assert unfinished[0].outputs == {"start": {"node": "n1"}}
    assert [e.to_state for e in await after.entries("crashed")] == ["drain"]


async def test_list_runs_is_newest_first_per_workflow_and_pages_with_before(
    store: Store,
) -> None:
    for i in range(5):
        await store.run_started(
            RunRecord(id=f"a{i}", workflow="a", started_at=T0 + timedelta(minutes=i))
        )
    await store.run_started(RunRecord(id="b0", workflow="b", started_at=T0))

    assert [r.id for r in await store.list_runs()][:2] == ["a4", "a3"]
    assert len(await store.list_runs()) == 6
    page1 = await store.list_runs("a", limit=2)
    assert [r.id for r in page1] == ["a4", "a3"]
    page2 = await store.list_runs("a", limit=2, before=page1[-1].started_at)
    assert [r.id for r in page2] == ["a2", "a1"]
    assert [r.id for r in await store.list_runs("b")] == ["b0"]


async def test_concurrent_runs_journal_without_losing_entries(store: Store) -> None:
    runs = [f"r{i}" for i in range(8)]
    for run_id in runs:
        await store.run_started(RunRecord(id=run_id, workflow=f"wf-{run_id}"))

    async def journal(run_id: str) -> None:
        for seq in range(1, 11):
            await store.record(
                entry(run_id, seq, EventKind.TRANSITION, state=f"s{seq - 1}", to_state=f"s{seq}")
            )

    await asyncio.gather(*(journal(r) for r in runs))

    for run_id in runs:
        assert [e.seq for e in await store.entries(run_id)] == list(range(1, 11))
        run = await store.get_run(run_id)
        assert run is not None and run.current_state == "s10"


async def test_a_run_finished_entry_finishes_the_run_record_in_the_same_write(
    store: Store,
) -> None:
    # A process that dies between journaling a run's end and storing the rest of its record
    # must not leave the run looking unfinished: it would be resumed and finish a second time.
    await store.run_started(RunRecord(id="r1", workflow="wf", started_at=T0))
    await store.record(entry("r1", 1, EventKind.RUN_STARTED))
    await store.record(
        entry(
            "r1",
            2,
            EventKind.RUN_FINISHED,
            state="apply",
            outcome="failed",
            detail={"status": "failed", "error": "CommandFailed: exit 1", "changed": False},
        )
    )
    run = await store.get_run("r1")
    assert run is not None
    assert run.status is RunStatus.FAILED
    assert run.finished_at == T0 + timedelta(seconds=2)
    assert run.error == "CommandFailed: exit 1"
    assert await store.unfinished_runs() == []


async def test_a_run_resumed_entry_sets_the_attempt_before_the_run_finishes(
    store: Store,
) -> None:
    # The run_finished entry finishes the record before its last write: a resumed run's record
    # must already say which attempt it is, or it reads as finished by its first attempt.
    await store.run_started(RunRecord(id="r1", workflow="wf", started_at=T0))
    await store.record(entry("r1", 1, EventKind.RUN_STARTED))
    await store.record(entry("r1", 2, EventKind.RUN_RESUMED, detail={"attempt": 2}))
    resumed = await store.get_run("r1")
    assert resumed is not None and resumed.attempt == 2
    await store.record(
        entry("r1", 3, EventKind.RUN_FINISHED, outcome="succeeded", detail={"status": "succeeded"})
    )
    finished = await store.get_run("r1")
    assert finished is not None
    assert (finished.status, finished.attempt) == (RunStatus.SUCCEEDED, 2)
