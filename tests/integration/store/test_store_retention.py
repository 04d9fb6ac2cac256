"""Retention: exactly the runs beyond the limits go, with their journal; running runs and the
run a workflow's status points at always stay."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.store import Store, WorkflowStatusRecord, prune_periodically
from tests.support.waiting import until_async

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def add_run(
    store: Store,
    run_id: str,
    *,
    workflow: str = "wf",
    age: timedelta,
    status: RunStatus = RunStatus.SUCCEEDED,
) -> None:
    run = RunRecord(id=run_id, workflow=workflow, started_at=NOW - age)
    await store.run_started(run)
    await store.record(JournalEntry(run_id=run_id, seq=1, kind=EventKind.RUN_STARTED))
    if status is not RunStatus.RUNNING:
        await store.run_finished(
            replace(run, status=status, finished_at=NOW - age + timedelta(seconds=5))
        )


async def remaining(store: Store, workflow: str = "wf") -> list[str]:
    return [r.id for r in await store.list_runs(workflow, limit=1000)]


async def test_keep_runs_keeps_the_newest_n_per_workflow(store: Store) -> None:
    for i in range(6):
        await add_run(store, f"wf-{i}", age=timedelta(hours=6 - i))
    for i in range(2):
        await add_run(store, f"other-{i}", workflow="other", age=timedelta(hours=2 - i))

    removed = await store.prune(3, None, now=NOW)

    assert removed == 3
    assert await remaining(store) == ["wf-5", "wf-4", "wf-3"]
    assert await remaining(store, "other") == ["other-1", "other-0"]
    for gone in ("wf-0", "wf-1", "wf-2"):
        assert await store.entries(gone) == []
    assert len(await store.entries("wf-3")) == 1


async def test_pruning_one_workflow_leaves_the_others_alone(store: Store) -> None:
    for i in range(4):
        await add_run(store, f"wf-{i}", age=timedelta(hours=4 - i))
        await add_run(store, f"other-{i}", workflow="other", age=timedelta(hours=4 - i))

    removed = await store.prune(2, None, now=NOW, workflow="wf")

    assert removed == 2
    assert await remaining(store) == ["wf-3", "wf-2"]
    assert len(await remaining(store, "other")) == 4


async def test_keep_days_removes_runs_older_than_the_cutoff(store: Store) -> None:
    await add_run(store, "ancient", age=timedelta(days=40))
    await add_run(store, "old", age=timedelta(days=8))
    await add_run(store, "recent", age=timedelta(days=6, hours=23))
    await add_run(store, "new", age=timedelta(minutes=1))

    removed = await store.prune(None, 7, now=NOW)

    assert removed == 2
    assert await remaining(store) == ["new", "recent"]


async def test_a_run_breaking_either_limit_is_pruned(store: Store) -> None:
    await add_run(store, "old-but-recent-rank", age=timedelta(days=30))
    await add_run(store, "young-1", age=timedelta(hours=3))
    await add_run(store, "young-2", age=timedelta(hours=2))
    await add_run(store, "young-3", age=timedelta(hours=1))

    assert await store.prune(10, 7, now=NOW) == 1
    assert await remaining(store) == ["young-3", "young-2", "young-1"]
    assert await store.prune(2, 7, now=NOW) == 1
    assert await remaining(store) == ["young-3", "young-2"]


async def test_running_runs_and_the_status_last_run_are_never_pruned(store: Store) -> None:
    await add_run(store, "still-running", age=timedelta(days=90), status=RunStatus.RUNNING)
    await add_run(store, "referenced", age=timedelta(days=80), status=RunStatus.FAILED)
    await add_run(store, "unreferenced", age=timedelta(days=70))
    await store.put_status(WorkflowStatusRecord(name="wf", last_run_id="referenced"))

    removed = await store.prune(0, 1, now=NOW)

    assert removed == 1
    assert sorted(await remaining(store)) == ["referenced", "still-running"]
    assert [r.id for r in await store.unfinished_runs()] == ["still-running"]
    assert len(await store.entries("still-running")) == 1


async def test_running_runs_count_towards_keep_runs(store: Store) -> None:
    await add_run(store, "finished-old", age=timedelta(hours=2))
    await add_run(store, "running-new", age=timedelta(hours=1), status=RunStatus.RUNNING)

    assert await store.prune(1, None, now=NOW) == 1
    assert await remaining(store) == ["running-new"]


async def test_without_limits_nothing_is_pruned(store: Store) -> None:
    await add_run(store, "r", age=timedelta(days=1000))
    assert await store.prune(None, None, now=NOW) == 0
    assert await remaining(store) == ["r"]


async def test_pruning_twice_removes_nothing_more(store: Store) -> None:
    for i in range(4):
        await add_run(store, f"r{i}", age=timedelta(hours=4 - i))
    assert await store.prune(2, None, now=NOW) == 2
    assert await store.prune(2, None, now=NOW) == 0


async def test_negative_limits_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="keep_runs"):
        await store.prune(-1, None, now=NOW)


async def test_background_pruning_prunes_until_cancelled(store: Store) -> None:
    real_now = datetime.now(UTC)
    for i in range(3):
        run = RunRecord(id=f"r{i}", workflow="wf", started_at=real_now - timedelta(hours=3 - i))
        await store.run_started(replace(run, status=RunStatus.SUCCEEDED))

    task = asyncio.create_task(prune_periodically(store, 1, keep_days=None, interval=0.01))
    try:

        async def pruned() -> bool:
            return len(await remaining(store)) == 1

        await until_async(pruned, 10, "the prune to leave one run", interval=0.01)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await remaining(store) == ["r2"]
