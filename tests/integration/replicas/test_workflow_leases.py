"""WorkflowLeases in-process on the real PostgreSQL (a schema per test) and a real SQLite file.

Two :class:`WorkflowLeases` with different owners stand for two replicas sharing one store: at
most one of them holds a workflow at a time, the holder's journal writes are fenced by its lease,
and a holder that lost its lease is stopped with :class:`LeaseLost` and cannot write any more.
On SQLite there are no leases, but only one daemon may use the file.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.daemon.replicas import WorkflowLeases, current_fence, lease_name
from reconciler.daemon.statuses import StatusBook
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.errors import LeaseLost, StoreError
from reconciler.store import Health, Store, WorkflowStatusRecord
from tests.support import postgres

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


@pytest.fixture
async def pg_store(tmp_path: Path) -> AsyncIterator[Store]:
    with postgres.schema("leases_test") as name:
        store = await Store.open(postgres.store_url(name), data_dir=tmp_path)
        try:
            yield store
        finally:
            await store.close()


def a_run(workflow: str) -> RunRecord:
    return RunRecord(id=uuid.uuid4().hex, workflow=workflow, revision="r1", reason="test")


async def test_only_one_replica_holds_a_workflow_and_its_writes_carry_the_lease(
    pg_store: Store,
) -> None:
    one = WorkflowLeases(pg_store, owner="one", ttl=timedelta(seconds=30))
    two = WorkflowLeases(pg_store, owner="two", ttl=timedelta(seconds=30))
    assert one.shared and two.shared
    assert current_fence() is None
    async with one.hold("app") as claimed:
        assert claimed
        fence = current_fence()
        assert fence is not None
        assert (fence.name, fence.owner) == (lease_name("app"), "one")
        assert one.held == {"app"}
        await pg_store.run_started(a_run("app"), fence=fence)
        async with two.hold("app") as other:
            assert not other  # held elsewhere: skip
        async with two.hold("db") as other:
            assert other  # other workflows are free
    assert current_fence() is None and one.held == frozenset()
    async with two.hold("app") as claimed:  # released at once, no waiting for expiry
        assert claimed
        taken = current_fence()
        assert taken is not None and taken.fencing_token > fence.fencing_token


async def test_a_restarted_replica_with_the_same_name_reclaims_its_leases_at_once(
    pg_store: Store,
) -> None:
    # the first process claimed the workflow, then died without releasing it
    held = await pg_store.acquire(lease_name("app"), "ops-1", ttl=timedelta(seconds=30))
    assert held is not None
    after = WorkflowLeases(pg_store, owner="ops-1", ttl=timedelta(seconds=30))
    stranger = WorkflowLeases(pg_store, owner="ops-2", ttl=timedelta(seconds=30))
    async with stranger.hold("app") as claimed:
        assert not claimed
    async with after.hold("app") as claimed:
        assert claimed
        again = current_fence()
        assert again is not None and again.fencing_token == held.fencing_token


async def test_a_replica_whose_lease_was_taken_over_cannot_write_and_stops(
    pg_store: Store,
) -> None:
    slow = WorkflowLeases(pg_store, owner="slow", ttl=timedelta(seconds=0.5))
    fast = WorkflowLeases(pg_store, owner="fast", ttl=timedelta(seconds=30))
    run = a_run("app")
    with pytest.raises(LeaseLost, match="no longer held"):
        async with slow.hold("app") as claimed:
            assert claimed
            await pg_store.run_started(run, fence=current_fence())
            await asyncio.sleep(0.7)  # paused past its TTL without renewing
            async with fast.hold("app") as took_over:
                assert took_over
                done = replace(run, status=RunStatus.SUCCEEDED)
                await pg_store.run_finished(done, fence=current_fence())
            # back under the slow replica's stale lease: its late write is refused
            late = replace(run, status=RunStatus.FAILED)
            await pg_store.run_finished(late, fence=current_fence())
    record = await pg_store.get_run(run.id)
    assert record is not None and record.status is RunStatus.SUCCEEDED
    assert slow.held == frozenset()


async def test_a_status_decided_under_a_lease_taken_over_meanwhile_is_not_written(
    pg_store: Store,
) -> None:
    slow = WorkflowLeases(pg_store, owner="slow", ttl=timedelta(seconds=0.5))
    fast = WorkflowLeases(pg_store, owner="fast", ttl=timedelta(seconds=30))
    slow_book = StatusBook(pg_store, shared=True)
    fast_book = StatusBook(pg_store, shared=True)
    try:
        with pytest.raises(LeaseLost, match="no longer held"):
            async with slow.hold("app") as claimed:
                assert claimed
                fence = current_fence()
                running = WorkflowStatusRecord(name="app", status=Health.PROGRESSING)
                await slow_book.put(running, fence=fence)
                await asyncio.sleep(0.7)  # paused past its TTL without renewing
                async with fast.hold("app") as took_over:
                    assert took_over
                    done = WorkflowStatusRecord(name="app", status=Health.CONVERGED)
                    await fast_book.put(done, fence=current_fence())
                # back under the slow replica's stale lease: its outcome is refused
                failed = WorkflowStatusRecord(name="app", status=Health.DEGRADED)
                await slow_book.put(failed, fence=fence)
        # a write that does not wait is dropped the same way, never retried
        await slow_book.put(running, fence=fence, wait=False)
        await slow_book.flush()
        row = await pg_store.get_status("app")
        assert row is not None and row.status is Health.CONVERGED
        assert await slow_book.get("app") == row  # nothing of it left pending
    finally:
        await slow_book.close()
        await fast_book.close()


async def test_renewal_keeps_a_lease_and_a_failed_renewal_cancels_the_holder(
    pg_store: Store,
) -> None:
    mine = WorkflowLeases(pg_store, owner="mine", ttl=timedelta(seconds=0.6))
    thief = WorkflowLeases(pg_store, owner="thief", ttl=timedelta(seconds=30))
    entered = asyncio.Event()

    async def hold_forever() -> None:
        async with mine.hold("app") as claimed:
            assert claimed
            entered.set()
            await asyncio.sleep(3600)  # holds on until the failed renewal cancels it

    keeper = asyncio.create_task(mine.maintain(on_orphans=lambda names: None, busy=list))
    holder = asyncio.create_task(hold_forever())
    await entered.wait()
    await asyncio.sleep(1.0)  # longer than the TTL: renewals keep it
    async with thief.hold("app") as claimed:
        assert not claimed
    keeper.cancel()
    await asyncio.gather(keeper, return_exceptions=True)
    await asyncio.sleep(0.7)  # now it expires; the thief takes it
    async with thief.hold("app") as claimed:
        assert claimed
        await mine.renew_all()  # the holder's renewal fails: its task is cancelled
        with pytest.raises(LeaseLost, match="taken over by another replica"):
            await holder
    assert mine.held == frozenset()


async def test_a_replica_behind_on_git_leaves_workflows_reconciled_at_a_newer_revision(
    pg_store: Store,
) -> None:
    leases = WorkflowLeases(pg_store, owner="behind")
    loaded = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    leases.revision_loaded("rev1", at=loaded)
    later = WorkflowStatusRecord(
        name="app", last_attempted_revision="rev2", updated_at=loaded + timedelta(seconds=1)
    )
    assert leases.ahead_of_us(later) == "rev2"
    # written before this replica loaded its revision: an older one, which it may replace
    assert leases.ahead_of_us(later.model_copy(update={"updated_at": loaded})) is None
    assert leases.ahead_of_us(later.model_copy(update={"last_attempted_revision": "rev1"})) is None
    assert leases.ahead_of_us(None) is None
    leases.revision_loaded("rev2", at=loaded + timedelta(seconds=2))
    assert leases.ahead_of_us(later) is None


async def test_a_workflow_converged_elsewhere_since_this_replica_loaded_the_revision_is_left(
    pg_store: Store,
) -> None:
    leases = WorkflowLeases(pg_store, owner="late")
    loaded = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    leases.revision_loaded("rev1", at=loaded)
    done = WorkflowStatusRecord(
        name="app",
        status=Health.CONVERGED,
        last_applied_revision="rev1",
        spec_digest="d1",
        updated_at=loaded + timedelta(seconds=1),
    )
    assert leases.converged_here_since(done, revision="rev1", digest="d1")
    assert not leases.converged_here_since(done, revision="rev1", digest="d2")  # spec differs
    assert not leases.converged_here_since(  # converged before: look again, as after a restart
        done.model_copy(update={"updated_at": loaded - timedelta(seconds=1)}),
        revision="rev1",
        digest="d1",
    )
    assert not leases.converged_here_since(
        done.model_copy(update={"status": Health.DEGRADED}), revision="rev1", digest="d1"
    )


async def test_a_drift_check_is_left_out_when_another_replica_looked_within_half_the_interval(
    pg_store: Store,
) -> None:
    leases = WorkflowLeases(pg_store, owner="r2")
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    status = WorkflowStatusRecord(name="app", observed_at=now - timedelta(minutes=2))
    assert leases.checked_recently(status, interval=timedelta(minutes=5), now=now)
    assert not leases.checked_recently(status, interval=timedelta(minutes=4), now=now)
    assert not leases.checked_recently(status, interval=None, now=now)  # cron: always check
    assert not leases.checked_recently(None, interval=timedelta(minutes=5), now=now)
    never_observed = status.model_copy(update={"observed_at": None, "updated_at": now})
    assert not leases.checked_recently(never_observed, interval=timedelta(minutes=5), now=now)


async def test_on_sqlite_there_are_no_leases_but_one_daemon_per_file(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "store.db"), data_dir=tmp_path)
    other_store = await Store.open(str(tmp_path / "store.db"), data_dir=tmp_path)
    try:
        first = WorkflowLeases(store, owner="first")
        second = WorkflowLeases(other_store, owner="second")
        assert not first.shared
        first.start()
        with pytest.raises(StoreError, match="already using the SQLite store"):
            second.start()
        async with first.hold("app") as claimed:
            assert claimed and current_fence() is None
        await first.stop()
        second.start()  # free once the first daemon stopped
        await second.stop()
    finally:
        await store.close()
        await other_store.close()
