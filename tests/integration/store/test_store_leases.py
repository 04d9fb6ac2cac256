"""Leases with fencing tokens: exclusive until expiry, taken over afterwards with a larger
token, and a write fenced by a lost lease is refused — journal writes, run outcomes and the
status rows a replica writes under a workflow's lease alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.engine.journal import EventKind, Journal, JournalEntry, RunRecord, RunStatus
from reconciler.errors import LeaseLost
from reconciler.store import Health, Lease, Store, WorkflowStatusRecord

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


async def test_a_free_lease_is_acquired_with_the_first_token(store: Store) -> None:
    lease = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    assert lease is not None
    assert (lease.name, lease.owner, lease.fencing_token) == ("wf/a", "replica-1", 1)
    assert lease.expires_at == T0 + TTL


async def test_a_held_lease_is_refused_to_others_until_it_expires(store: Store) -> None:
    first = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    assert first is not None

    assert await store.acquire("wf/a", "replica-2", ttl=TTL, now=T0 + TTL / 2) is None
    assert (
        await store.acquire("wf/a", "replica-2", ttl=TTL, now=T0 + TTL - timedelta(microseconds=1))
        is None
    )

    taken = await store.acquire("wf/a", "replica-2", ttl=TTL, now=T0 + TTL)
    assert taken is not None
    assert taken.owner == "replica-2"
    assert taken.fencing_token > first.fencing_token


async def test_other_names_are_independent(store: Store) -> None:
    a = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    b = await store.acquire("wf/b", "replica-2", ttl=TTL, now=T0)
    assert a is not None and b is not None
    assert b.fencing_token == 1


async def test_renewal_keeps_the_lease_past_its_first_expiry(store: Store) -> None:
    lease = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    assert lease is not None

    assert await store.renew(lease, now=T0 + timedelta(seconds=20)) is True
    assert lease.expires_at == T0 + timedelta(seconds=50)
    assert await store.acquire("wf/a", "replica-2", ttl=TTL, now=T0 + timedelta(seconds=40)) is None


async def test_renewal_fails_once_another_owner_took_over(store: Store) -> None:
    old = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    assert old is not None
    new = await store.acquire("wf/a", "replica-2", ttl=TTL, now=T0 + 2 * TTL)
    assert new is not None

    assert await store.renew(old, now=T0 + 2 * TTL) is False
    assert await store.release(old, now=T0 + 2 * TTL) is False
    # The stale holder's failed calls did not disturb the new owner.
    assert await store.acquire("wf/a", "replica-3", ttl=TTL, now=T0 + 2 * TTL + TTL / 2) is None


async def test_the_owner_reacquiring_a_held_lease_extends_it_and_keeps_its_token(
    store: Store,
) -> None:
    lease = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    again = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0 + timedelta(seconds=10))
    assert lease is not None and again is not None
    assert again.fencing_token == lease.fencing_token
    assert again.expires_at == T0 + timedelta(seconds=40)


async def test_release_frees_the_lease_at_once_and_tokens_keep_growing(store: Store) -> None:
    tokens = []
    for i in range(3):
        lease = await store.acquire("wf/a", f"replica-{i}", ttl=TTL, now=T0)
        assert lease is not None, f"replica-{i} should get the released lease"
        tokens.append(lease.fencing_token)
        assert await store.release(lease, now=T0) is True
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


async def test_a_write_fenced_by_a_lost_lease_is_refused_and_leaves_no_trace(
    store: Store,
) -> None:
    await store.run_started(RunRecord(id="r1", workflow="a"))
    old = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    assert old is not None
    await store.record(
        JournalEntry(run_id="r1", seq=1, kind=EventKind.TRANSITION, to_state="apply"), fence=old
    )

    new = await store.acquire("wf/a", "replica-2", ttl=TTL, now=T0 + 2 * TTL)
    assert new is not None

    with pytest.raises(LeaseLost, match="wf/a"):
        await store.record(
            JournalEntry(run_id="r1", seq=2, kind=EventKind.TRANSITION, to_state="rollback"),
            fence=old,
        )
    with pytest.raises(LeaseLost):
        await store.run_finished(
            RunRecord(id="r1", workflow="a", status=RunStatus.SUCCEEDED), fence=old
        )
    run = await store.get_run("r1")
    assert run is not None
    assert run.current_state == "apply" and run.status is RunStatus.RUNNING
    assert [e.seq for e in await store.entries("r1")] == [1]

    # The new holder writes fine.
    await store.record(
        JournalEntry(run_id="r1", seq=2, kind=EventKind.TRANSITION, to_state="verify"), fence=new
    )
    run = await store.get_run("r1")
    assert run is not None and run.current_state == "verify"


async def test_an_expired_lease_nobody_took_still_fences_writes(store: Store) -> None:
    await store.run_started(RunRecord(id="r1", workflow="a"))
    lease = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    assert lease is not None
    # Expired by the clock, but no other owner has a newer token: the write is safe.
    await store.record(JournalEntry(run_id="r1", seq=1, kind=EventKind.CHECK), fence=lease)
    assert len(await store.entries("r1")) == 1


async def test_racing_replicas_get_exactly_one_winner(store: Store) -> None:
    results = await asyncio.gather(
        *(store.acquire("leader", f"replica-{i}", ttl=TTL, now=T0) for i in range(6))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1

    later = T0 + 2 * TTL
    takeovers = await asyncio.gather(
        *(store.acquire("leader", f"replica-{i}", ttl=TTL, now=later) for i in range(6, 12))
    )
    new_winners = [r for r in takeovers if r is not None]
    assert len(new_winners) == 1
    assert new_winners[0].fencing_token == winners[0].fencing_token + 1


def test_a_lease_ttl_must_be_positive() -> None:
    from reconciler.store.leases import as_timedelta

    assert as_timedelta(1.5) == timedelta(seconds=1.5)
    with pytest.raises(ValueError, match="positive"):
        as_timedelta(0)


async def test_a_fenced_journal_stops_writing_once_the_lease_is_lost(store: Store) -> None:
    lease = await store.acquire("wf/a", "replica-1", ttl=TTL, now=T0)
    assert lease is not None
    journal = store.fenced(lease)
    assert isinstance(journal, Journal)
    await journal.run_started(RunRecord(id="r1", workflow="a"))
    await journal.record(JournalEntry(run_id="r1", seq=1, kind=EventKind.RUN_STARTED))

    assert await store.acquire("wf/a", "replica-2", ttl=TTL, now=T0 + 2 * TTL) is not None

    with pytest.raises(LeaseLost):
        await journal.record(JournalEntry(run_id="r1", seq=2, kind=EventKind.CHECK))
    with pytest.raises(LeaseLost):
        await journal.run_finished(RunRecord(id="r1", workflow="a", status=RunStatus.FAILED))
    # Reads still work, and show nothing of the refused writes.
    assert [e.seq for e in await journal.entries("r1")] == [1]
    assert [r.id for r in await journal.unfinished_runs()] == ["r1"]


async def taken_over(store: Store, name: str) -> tuple[Lease, Lease]:
    """``name``'s lease as replica-1 held it, and as replica-2 holds it since it took it over."""
    old = await store.acquire(name, "replica-1", ttl=TTL, now=T0)
    new = await store.acquire(name, "replica-2", ttl=TTL, now=T0 + 2 * TTL)
    assert old is not None and new is not None
    return old, new


async def test_a_status_fenced_by_a_lost_lease_is_refused_and_the_new_holders_status_stays(
    store: Store,
) -> None:
    old, new = await taken_over(store, "workflow:a")
    mine = WorkflowStatusRecord(name="a", status=Health.CONVERGED, last_run_id="new-run")
    await store.put_status(mine, fence=new)
    stale = WorkflowStatusRecord(name="a", status=Health.PROGRESSING, last_run_id="old-run")
    with pytest.raises(LeaseLost, match="workflow:a"):
        await store.put_status(stale, fence=old)
    assert await store.touch_statuses([stale], fields={"last_run_id"}, fences={"a": old}) == {"a"}
    row = await store.get_status("a")
    assert row is not None and (row.status, row.last_run_id) == (Health.CONVERGED, "new-run")


async def test_a_batch_of_statuses_leaves_out_only_those_whose_lease_was_lost(
    store: Store,
) -> None:
    lost, _ = await taken_over(store, "workflow:a")
    held = await store.acquire("workflow:b", "replica-1", ttl=TTL, now=T0)
    assert held is not None
    batch = [
        WorkflowStatusRecord(name="a", status=Health.PROGRESSING),
        WorkflowStatusRecord(name="b", status=Health.PROGRESSING),
        WorkflowStatusRecord(name="c", status=Health.PENDING),  # no lease: never refused
    ]
    refused = await store.put_statuses(batch, fences={"a": lost, "b": held})
    assert refused == {"a"}
    assert {r.name for r in await store.list_statuses()} == {"b", "c"}


async def test_a_retirement_fenced_by_a_lost_lease_deletes_nothing(store: Store) -> None:
    old, new = await taken_over(store, "workflow:a")
    await store.put_status(WorkflowStatusRecord(name="a"), fence=new)
    with pytest.raises(LeaseLost):
        await store.delete_status("a", fence=old)
    assert await store.get_status("a") is not None
    assert await store.delete_status("a", fence=new) is True
