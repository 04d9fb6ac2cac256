"""The controller's status book (reconciler/daemon/statuses.py) on a real SQLite store.

What it promises: a read after a write sees the write; a change of what a workflow *is* is
committed before ``put`` returns; a change of bookkeeping only (when it was last checked) is
written behind, in a batch, and ``close`` commits it; a batch the store refuses stays pending and
lands once the store takes writes again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.daemon.statuses import StatusBook, bookkeeping_changes
from reconciler.errors import StoreError
from reconciler.store import Health, Store, Sync, WorkflowStatusRecord
from tests.support.waiting import until_async

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.timeout(60)


def converged(name: str, *, at: datetime = T0) -> WorkflowStatusRecord:
    return WorkflowStatusRecord(
        name=name,
        sync=Sync.SYNCED,
        status=Health.CONVERGED,
        reason="InSync",
        message="observed state matches desired state",
        spec_digest="sha256:1",
        last_applied_revision="r1",
        observed_at=at,
        updated_at=at,
    )


def checked_again(record: WorkflowStatusRecord, *, after: timedelta) -> WorkflowStatusRecord:
    at = (record.observed_at or T0) + after
    return record.model_copy(update={"observed_at": at, "updated_at": at})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(str(tmp_path / "store.db"), data_dir=tmp_path)
    yield store
    await store.close()


async def loaded_book(
    store: Store,
    *,
    idle: Callable[[], bool] = lambda: True,
    delay: float = 60.0,
    max_delay: float = 60.0,
) -> StatusBook:
    """A single-process book, loaded; by default it never writes behind on its own."""
    book = StatusBook(store, idle=idle, delay=delay, max_delay=max_delay)
    await book.load()
    return book


async def stored_eventually(store: Store, record: WorkflowStatusRecord) -> None:
    """Until the store holds ``record`` (nobody waits on the book's writer here)."""

    async def stored() -> bool:
        return await store.get_status(record.name) == record

    await until_async(stored, 30, f"{record.name} to be written", interval=0.01)


def test_bookkeeping_changes_names_the_moved_timestamps_or_none_for_a_real_change() -> None:
    before = converged("wf")
    assert bookkeeping_changes(before, checked_again(before, after=timedelta(minutes=5))) == {
        "observed_at",
        "updated_at",
    }
    assert bookkeeping_changes(before, before.model_copy(update={"failures": 1})) is None
    assert bookkeeping_changes(before, before.model_copy(update={"sync": Sync.OUT_OF_SYNC})) is None
    assert bookkeeping_changes(None, before) is None  # a new row is never bookkeeping


async def test_get_after_put_returns_the_record_before_it_reaches_the_store(
    store: Store,
) -> None:
    await store.put_status(converged("wf"))
    book = await loaded_book(store)
    later = checked_again(converged("wf"), after=timedelta(minutes=5))

    await book.put(later)

    assert await book.get("wf") == later
    assert [r.name for r in await book.load()] == ["wf"]
    assert await store.get_status("wf") == converged("wf")  # written behind: not yet
    await book.close()


async def test_bookkeeping_writes_are_batched_and_committed_on_close(store: Store) -> None:
    names = [f"wf-{i}" for i in range(50)]
    await store.put_statuses([converged(n) for n in names])
    book = await loaded_book(store)

    for name in names:
        await book.put(checked_again(converged(name), after=timedelta(minutes=5)))
    assert all(r.observed_at == T0 for r in await store.list_statuses())

    await book.close()

    rows = await store.list_statuses()
    assert {r.observed_at for r in rows} == {T0 + timedelta(minutes=5)}
    assert {r.status for r in rows} == {Health.CONVERGED}


async def test_bookkeeping_writes_reach_the_store_by_themselves_when_the_book_is_idle(
    store: Store,
) -> None:
    await store.put_status(converged("wf"))
    book = await loaded_book(store, delay=0.01)
    later = checked_again(converged("wf"), after=timedelta(minutes=5))

    await book.put(later)

    await stored_eventually(store, later)
    await book.close()


async def test_a_change_of_health_is_committed_before_put_returns(store: Store) -> None:
    await store.put_status(converged("wf"))
    book = await loaded_book(store)
    failed = converged("wf").model_copy(
        update={"status": Health.DEGRADED, "failures": 1, "message": "run 1 failed"}
    )

    await book.put(failed)

    assert await store.get_status("wf") == failed
    await book.close()


async def test_a_change_put_without_waiting_is_committed_soon_after(store: Store) -> None:
    await store.put_status(converged("wf"))
    book = await loaded_book(store)
    running = converged("wf").model_copy(
        update={"status": Health.PROGRESSING, "last_run_id": "run-1"}
    )

    await book.put(running, wait=False)

    assert await book.get("wf") == running
    await stored_eventually(store, running)  # no idle wait: a real change goes first
    await book.close()


async def test_while_busy_a_real_change_is_committed_without_the_waiting_bookkeeping(
    store: Store,
) -> None:
    await store.put_statuses([converged("checked"), converged("failed")])
    book = await loaded_book(store, idle=lambda: False, delay=0.01)
    checked = checked_again(converged("checked"), after=timedelta(minutes=5))
    failed = converged("failed").model_copy(update={"status": Health.DEGRADED, "failures": 1})

    await book.put(checked)
    await book.put(failed)

    assert await store.get_status("failed") == failed
    assert await store.get_status("checked") == converged("checked")  # still waiting
    await book.close()
    assert await store.get_status("checked") == checked


async def test_a_checks_outcome_is_written_behind_even_for_a_new_workflow(store: Store) -> None:
    book = await loaded_book(store)
    found_in_sync = converged("new")

    await book.put(found_in_sync, durable=False)

    assert await book.get("new") == found_in_sync
    assert await store.get_status("new") is None  # a re-check would decide it again
    await book.close()
    assert await store.get_status("new") == found_in_sync


async def test_a_durable_record_stays_urgent_when_a_check_replaces_it_before_its_commit(
    store: Store,
) -> None:
    await store.put_status(converged("wf"))
    book = await loaded_book(store, idle=lambda: False)
    failed = converged("wf").model_copy(update={"status": Health.DEGRADED, "failures": 1})
    checked = checked_again(failed, after=timedelta(minutes=1))

    put_failed = asyncio.create_task(book.put(failed))
    await asyncio.sleep(0)  # the durable put is in, waiting for its commit
    await book.put(checked, durable=False)  # before the writer ran: replaces it in the book
    await asyncio.wait_for(put_failed, 30)  # still committed without waiting for idle

    stored = await store.get_status("wf")
    assert stored is not None and stored.status is Health.DEGRADED and stored.failures == 1
    await book.close()
    assert await store.get_status("wf") == checked


async def test_puts_made_together_are_committed_together(store: Store) -> None:
    book = await loaded_book(store)

    await asyncio.gather(*(book.put(converged(f"wf-{i}")) for i in range(20)))

    assert len(await store.list_statuses()) == 20
    await book.close()


async def test_delete_drops_the_row_and_any_pending_write(store: Store) -> None:
    await store.put_status(converged("wf"))
    book = await loaded_book(store)
    await book.put(checked_again(converged("wf"), after=timedelta(minutes=5)))

    assert await book.delete("wf") is True
    await book.close()

    assert await book.get("wf") is None
    assert await store.get_status("wf") is None


async def test_a_batch_the_store_refuses_stays_pending_and_lands_later(
    store: Store, tmp_path: Path
) -> None:
    await store.put_status(converged("wf"))
    book = await loaded_book(store)
    later = checked_again(converged("wf"), after=timedelta(minutes=5))
    await book.put(later)
    db = sqlite3.connect(tmp_path / "store.db")
    db.execute("ALTER TABLE workflow_status RENAME TO workflow_status_away")
    db.commit()

    with pytest.raises(StoreError):
        await book.flush()
    assert await book.get("wf") == later

    db.execute("ALTER TABLE workflow_status_away RENAME TO workflow_status")
    db.commit()
    db.close()
    await book.flush()

    assert await store.get_status("wf") == later
    await book.close()


async def test_a_shared_book_reads_rows_other_replicas_wrote_and_writes_through(
    store: Store, tmp_path: Path
) -> None:
    other = await Store.open(str(tmp_path / "store.db"), data_dir=tmp_path)
    try:
        book = StatusBook(store, shared=True, delay=60.0, max_delay=60.0)
        await book.load()
        await other.put_status(converged("written-elsewhere"))

        assert await book.get("written-elsewhere") == converged("written-elsewhere")

        later = checked_again(converged("written-elsewhere"), after=timedelta(minutes=5))
        await book.put(later)  # bookkeeping only, yet durable: the next holder must see it
        assert await other.get_status("written-elsewhere") == later
        await book.close()
    finally:
        await other.close()
