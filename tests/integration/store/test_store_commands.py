"""The command log: what the API accepted is committed before it is answered, a suspension is
the status row's truth that no status write undoes, a manual run answers the syncs of its
workflow in its own transaction, and old commands are pruned. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from reconciler.clock import utcnow
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.errors import StoreError
from reconciler.status import SUSPENDED_MANUALLY, SUSPENDED_MESSAGE
from reconciler.store import CommandKind, Health, Store, Sync, WorkflowStatusRecord, resolve_url
from reconciler.store.migrate import alembic_config

OpenStore = Callable[[], Awaitable[Store]]


async def test_a_sync_is_committed_when_recorded_and_another_connection_reads_it_back(
    open_store: OpenStore,
) -> None:
    api, reader = await open_store(), await open_store()
    sync = await api.request(CommandKind.SYNC, "motd", requested_by="r1")
    cancel = await api.request(CommandKind.CANCEL, "run-1", requested_by="r1")

    read = await reader.commands_after(0)
    assert [(c.id, c.kind, c.target, c.requested_by) for c in read] == [
        (sync.id, CommandKind.SYNC, "motd", "r1"),
        (cancel.id, CommandKind.CANCEL, "run-1", "r1"),
    ]
    assert all(c.handled_at is None for c in read)
    assert await reader.commands_after(sync.id) == [read[1]]
    assert await reader.last_command_id() == cancel.id
    assert [c.id for c in await reader.unhandled_commands(CommandKind.SYNC)] == [sync.id]


async def test_a_suspension_is_recorded_only_with_its_status_row(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.request(CommandKind.SUSPEND, "motd", requested_by="r1")


async def test_only_a_manual_run_answers_the_syncs_of_its_workflow(store: Store) -> None:
    first = await store.request(CommandKind.SYNC, "motd", requested_by="r1")
    second = await store.request(CommandKind.SYNC, "motd", requested_by="r2")
    other = await store.request(CommandKind.SYNC, "other", requested_by="r1")

    await store.run_started(RunRecord(id="drift", workflow="motd", reason="drift"))
    assert len(await store.unhandled_commands(CommandKind.SYNC, target="motd")) == 2

    await store.run_started(
        RunRecord(id="manual", workflow="motd", reason="manual"), settles_syncs=True
    )
    assert await store.unhandled_commands(CommandKind.SYNC, target="motd") == []
    assert [c.id for c in await store.unhandled_commands(CommandKind.SYNC)] == [other.id]
    handled = {c.id: c.handled_at for c in await store.commands_after(0)}
    assert handled[first.id] is not None and handled[second.id] is not None


async def test_marking_commands_handled_counts_only_those_not_handled_yet(store: Store) -> None:
    one = await store.request(CommandKind.CANCEL, "run-1", requested_by="r1")
    two = await store.request(CommandKind.CANCEL, "run-2", requested_by="r1")
    assert await store.commands_handled([one.id]) == 1
    assert await store.commands_handled([one.id, two.id]) == 1
    assert await store.unhandled_commands(CommandKind.CANCEL) == []
    assert await store.settle_syncs("nothing") == 0


async def test_a_suspend_creates_the_status_row_of_a_workflow_that_has_none(store: Store) -> None:
    command, row = await store.request_suspension("new", suspended=True, requested_by="r1")
    assert command.kind is CommandKind.SUSPEND and command.handled_at is not None
    assert row is not None and row.suspended
    assert (row.status, row.reason, row.message) == (
        Health.SUSPENDED,
        SUSPENDED_MANUALLY,
        SUSPENDED_MESSAGE,
    )
    assert await store.get_status("new") == row


async def test_a_status_write_keeps_a_suspension_it_did_not_make(store: Store) -> None:
    await store.put_status(
        WorkflowStatusRecord(name="motd", status=Health.PROGRESSING, last_run_id="r-1")
    )
    await store.request_suspension("motd", suspended=True, requested_by="r1")

    # a replica that has not heard of the suspension stores its run's outcome
    finished = WorkflowStatusRecord(
        name="motd",
        sync=Sync.SYNCED,
        status=Health.CONVERGED,
        reason="RunSucceeded",
        message="run r-1 succeeded",
        last_run_id="r-1",
        last_applied_revision="abc",
    )
    await store.put_statuses([finished])
    await store.touch_statuses(
        [finished.model_copy(update={"message": "checked"})], fields={"message"}
    )

    row = await store.get_status("motd")
    assert row is not None and row.suspended
    assert (row.status, row.reason, row.message) == (
        Health.SUSPENDED,
        SUSPENDED_MANUALLY,
        SUSPENDED_MESSAGE,
    )
    assert (row.sync, row.last_applied_revision) == (Sync.SYNCED, "abc")  # the rest is written


async def test_a_resume_clears_the_suspension_and_status_writes_apply_again(store: Store) -> None:
    await store.request_suspension("motd", suspended=True, requested_by="r1")
    command, row = await store.request_suspension("motd", suspended=False, requested_by="r2")
    assert command.kind is CommandKind.RESUME
    assert row is not None and not row.suspended
    assert (row.status, row.reason) == (Health.PENDING, "")

    await store.put_status(WorkflowStatusRecord(name="motd", status=Health.CONVERGED))
    row = await store.get_status("motd")
    assert row is not None and row.status is Health.CONVERGED and not row.suspended


async def test_a_resume_of_a_workflow_not_suspended_changes_its_row_in_nothing(
    store: Store,
) -> None:
    await store.put_status(WorkflowStatusRecord(name="motd", status=Health.CONVERGED))
    _, row = await store.request_suspension("motd", suspended=False, requested_by="r1")
    assert row is not None and row.status is Health.CONVERGED and not row.suspended
    _, none = await store.request_suspension("unknown", suspended=False, requested_by="r1")
    assert none is None


async def test_the_pruning_pass_drops_old_handled_commands_and_keeps_the_rest(
    store: Store,
) -> None:
    now = utcnow()
    old = now - timedelta(days=2)
    handled_long_ago = await store.request(CommandKind.SYNC, "a", requested_by="r1", now=old)
    await store.commands_handled([handled_long_ago.id], now=old)
    waiting = await store.request(CommandKind.SYNC, "b", requested_by="r1", now=old)
    stale = await store.request(
        CommandKind.SYNC, "c", requested_by="r1", now=now - timedelta(days=8)
    )
    handled_now = await store.request(CommandKind.CANCEL, "run", requested_by="r1", now=now)
    await store.commands_handled([handled_now.id], now=now)

    await store.prune(None, None, now=now)

    kept = {c.id for c in await store.commands_after(0)}
    assert kept == {waiting.id, handled_now.id}
    assert stale.id not in kept


async def test_a_workflow_suspended_before_the_command_log_existed_stays_suspended(
    store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir(exist_ok=True)  # where the SQLite file goes
    engine = create_async_engine(resolve_url(store_url, data_dir=tmp_path / "data"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0001"))
            for name, reason in (("held", SUSPENDED_MANUALLY), ("free", "InSync")):
                await conn.execute(
                    text(
                        "INSERT INTO workflow_status (name, sync, status, reason, message, "
                        "failures, updated_at) VALUES (:name, 'Unknown', 'Suspended', :reason, "
                        "'', 0, :now)"
                    ),
                    {"name": name, "reason": reason, "now": utcnow()},
                )
    finally:
        await engine.dispose()

    store = await Store.open(store_url, data_dir=tmp_path / "data")
    try:
        rows = {r.name: r.suspended for r in await store.list_statuses()}
    finally:
        await store.close()
    assert rows == {"held": True, "free": False}


async def test_a_manual_run_records_who_asked_for_the_syncs_it_answers(store: Store) -> None:
    await store.request(CommandKind.SYNC, "web", requested_by="alice")
    await store.request(CommandKind.SYNC, "web", requested_by="ci-bot")
    await store.request(CommandKind.SYNC, "web", requested_by="alice")
    await store.request(CommandKind.SYNC, "other", requested_by="bob")

    await store.run_started(RunRecord(id="m1", workflow="web", reason="manual"), settles_syncs=True)
    run = await store.get_run("m1")

    assert run is not None and run.requested_by == "alice, ci-bot"
    # the engine's own writes of the record never erase it
    await store.run_finished(RunRecord(id="m1", workflow="web", status=RunStatus.SUCCEEDED))
    finished = await store.get_run("m1")
    assert finished is not None and finished.requested_by == "alice, ci-bot"
    assert [c.target for c in await store.unhandled_commands(CommandKind.SYNC)] == ["other"]


async def test_a_cancel_records_its_requester_on_the_run(store: Store) -> None:
    await store.run_started(RunRecord(id="r1", workflow="web"))
    await store.request(CommandKind.CANCEL, "r1", requested_by="ops-oncall")
    run = await store.get_run("r1")
    assert run is not None and run.cancelled_by == "ops-oncall"
    assert run.requested_by is None
