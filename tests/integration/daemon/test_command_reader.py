"""The controller reads the store's command log: a sync another process records runs here, once,
and a command that becomes visible after one with a higher id (a PostgreSQL sequence hands ids
out before commit) is still applied. In-process controller, real git, real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from reconciler.clock import utcnow
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.store import CommandKind, Health, Store
from tests.support.controller import eventually, running
from tests.support.repos import commit
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(60)


async def manual_runs(store: Store, name: str, count: int) -> list[RunRecord] | None:
    """The finished manual runs of ``name`` once there are ``count`` of them."""
    runs = [r for r in await store.list_runs(name) if r.reason == "manual"]
    finished = [r for r in runs if r.status is RunStatus.SUCCEEDED]
    return finished if len(finished) >= count else None


async def test_a_sync_another_process_recorded_runs_here_once(tmp_path: Path, repo: Path) -> None:
    put(repo, file_workflow("motd", tmp_path / "motd", "hi", keep=True))
    commit(repo)
    async with running(tmp_path, repo, command_interval="100ms") as (_controller, store):
        await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
        other = await Store.open(str(tmp_path / "data" / "reconciler.db"), data_dir=tmp_path)
        try:
            await other.request(CommandKind.SYNC, "motd", requested_by="another process")
        finally:
            await other.close()

        await until_async(lambda: manual_runs(store, "motd", 1), 20, "the manual run of motd")
        assert await store.unhandled_commands(CommandKind.SYNC) == []
        await asyncio.sleep(0.5)  # time passing is the test: five more polls start nothing
        runs = await store.list_runs("motd")
    assert [r.reason for r in runs].count("manual") == 1


async def test_a_command_visible_only_after_a_later_one_is_still_applied(
    tmp_path: Path, repo: Path
) -> None:
    for name in ("early", "late"):
        put(repo, file_workflow(name, tmp_path / name, "hi", keep=True))
    commit(repo)
    async with running(tmp_path, repo, command_interval="100ms") as (_controller, store):
        for name in ("early", "late"):
            await eventually(store, name, lambda s: s.status is Health.CONVERGED)

        def insert(command_id: int, target: str) -> None:
            with sqlite3.connect(tmp_path / "data" / "reconciler.db", timeout=60) as db:
                db.execute(
                    "INSERT INTO commands (id, kind, target, requested_at, requested_by) "
                    "VALUES (?, 'sync', ?, ?, 'a slow replica')",
                    (command_id, target, utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")),
                )

        insert(10, "late")
        await until_async(lambda: manual_runs(store, "late", 1), 20, "the manual run of late")
        insert(5, "early")  # committed after id 10 was read
        await until_async(lambda: manual_runs(store, "early", 1), 20, "the manual run of early")
