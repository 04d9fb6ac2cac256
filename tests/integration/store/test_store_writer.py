"""The store's one writer (group commit), on SQLite and PostgreSQL: writes handed in without
waiting are committed in order with the next one waited for; in a batch, a write whose lease
was lost or that the database refuses fails alone; a run whose write failed unseen writes
nothing more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.engine.journal import EventKind, JournalEntry, RunRecord
from reconciler.errors import LeaseLost, StoreError
from reconciler.store import Store
from tests.integration.store.conftest import OpenStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=30)


def entry(run_id: str, seq: int, kind: EventKind = EventKind.STATE_ENTERED) -> JournalEntry:
    return JournalEntry(run_id=run_id, seq=seq, kind=kind, state=f"s{seq}")


async def test_a_waited_write_returns_once_it_and_every_write_before_it_are_committed(
    open_store: OpenStore,
) -> None:
    store, reader = await open_store(), await open_store()  # two processes' worth of pools
    await store.run_started(RunRecord(id="r1", workflow="wf"), wait=False)
    await store.record(entry("r1", 1, EventKind.RUN_STARTED), wait=False)
    await store.record(entry("r1", 2, EventKind.TRANSITION), wait=False)
    await store.record(entry("r1", 3))  # waited: a state_entered, as the daemon does

    # the other store reads committed rows only, through connections of its own
    assert [e.seq for e in await reader.entries("r1")] == [1, 2, 3]
    run = await reader.get_run("r1")
    assert run is not None and run.current_state == "s3"


async def test_a_write_whose_lease_was_lost_is_refused_alone_in_its_batch(store: Store) -> None:
    kept = await store.acquire("workflow:a", "replica-1", ttl=TTL, now=T0)
    lost = await store.acquire("workflow:b", "replica-1", ttl=TTL, now=T0)
    assert kept is not None and lost is not None
    await store.run_started(RunRecord(id="ra", workflow="a"))
    await store.run_started(RunRecord(id="rb", workflow="b"))
    assert await store.acquire("workflow:b", "replica-2", ttl=TTL, now=T0 + TTL) is not None

    results = await asyncio.gather(
        store.record(entry("ra", 1), fence=kept),
        store.record(entry("rb", 1), fence=lost),
        store.record(entry("ra", 2), fence=kept),
        return_exceptions=True,
    )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], LeaseLost)
    assert [e.seq for e in await store.entries("ra")] == [1, 2]
    assert await store.entries("rb") == []


async def test_an_entry_the_database_refuses_fails_alone_and_the_batch_is_committed(
    store: Store,
) -> None:
    await store.run_started(RunRecord(id="r1", workflow="wf"))
    await store.record(entry("r1", 1))

    results = await asyncio.gather(
        store.record(entry("r1", 1)),  # a duplicate (run_id, seq)
        store.record(entry("r1", 2)),
        store.record(entry("nobody", 1)),  # a run the store does not know
        store.record(entry("r1", 3)),
        return_exceptions=True,
    )

    assert isinstance(results[0], StoreError) and isinstance(results[2], StoreError)
    assert results[1] is None and results[3] is None
    assert [e.seq for e in await store.entries("r1")] == [1, 2, 3]


async def test_after_a_write_fails_unseen_its_run_writes_nothing_more(store: Store) -> None:
    await store.run_started(RunRecord(id="r1", workflow="wf"))
    await store.record(entry("r1", 1))
    await store.record(entry("r1", 1, EventKind.TRANSITION), wait=False)  # refused: duplicate
    await store.record(entry("r1", 2, EventKind.ACTION), wait=False)

    with pytest.raises(StoreError, match="refused the write"):
        await store.record(entry("r1", 3))  # the next waited write says so

    assert [e.seq for e in await store.entries("r1")] == [1]  # no gap: nothing after it
    await store.run_started(RunRecord(id="r2", workflow="wf"))  # other runs write on
    assert await store.get_run("r2") is not None


async def test_closing_the_store_commits_what_was_handed_in(open_store: OpenStore) -> None:
    store = await open_store()
    await store.run_started(RunRecord(id="r1", workflow="wf"), wait=False)
    await store.record(entry("r1", 1), wait=False)
    await store.close()

    again = await open_store()
    assert [e.seq for e in await again.entries("r1")] == [1]
