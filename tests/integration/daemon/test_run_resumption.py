"""An interrupted run resumes with the spec it started with, in-process on a real repository and
a real SQLite store: a run stopped while in a state that the next commit renames finishes in
that state, at its own revision, and the new revision runs afterwards. A run recorded without its
document (as before the store kept one), or with one that no longer loads, resumes with the spec
git holds, as it always did. A run whose cancel was accepted before it stopped is not resumed
at all: it ends cancelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.store import CommandKind, Health, Store
from reconciler.store.tables import RUNS
from tests.support.controller import eventually, running
from tests.support.repos import commit
from tests.support.waiting import until_async

pytestmark = pytest.mark.timeout(60)


def slow(state: str, out: Path) -> dict[str, Any]:
    """Waits 1.5 s in ``state``, then writes ``state`` to ``out``."""
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": "slow"},
        "spec": {
            "start": state,
            "states": {
                state: {"transitions": [{"to": "write", "after": "1500ms"}]},
                "write": {
                    "action": {
                        "plugin": "file.write",
                        "with": {"path": str(out), "content": state},
                    },
                    "next": "done",
                },
                "done": {"end": "success"},
            },
        },
    }


def put(repo: Path, document: dict[str, Any]) -> str:
    (repo / "slow.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return commit(repo)


async def stopped_in(tmp_path: Path, repo: Path, state: str) -> RunRecord:
    """Run the controller until a run of ``slow`` is in ``state``, then stop it (the run stays
    resumable) and return that run as stored."""
    async with running(tmp_path, repo, grace_period="50ms") as (_controller, store):

        async def waiting() -> RunRecord | None:
            runs = await store.list_runs("slow")
            return runs[0] if runs and runs[0].current_state == state else None

        run = await until_async(waiting, 20, f"the run to reach state {state}")
    assert run is not None
    store = await Store.open(None, data_dir=tmp_path / "data")
    try:
        stored = await store.get_run(run.id)
    finally:
        await store.close()
    assert stored is not None and stored.status is RunStatus.RUNNING
    return stored


async def finished(store: Store, run_id: str) -> tuple[RunRecord, list[JournalEntry]]:
    async def ended() -> RunRecord | None:
        run = await store.get_run(run_id)
        return run if run is not None and run.status.finished else None

    run = await until_async(ended, 20, f"run {run_id} to end")
    assert run is not None
    return run, await store.entries(run_id)


def entered(entries: list[JournalEntry]) -> list[str | None]:
    return [e.state for e in entries if e.kind is EventKind.STATE_ENTERED]


async def test_resumed_run_keeps_the_spec_it_started_with_through_a_renamed_state(
    tmp_path: Path, repo: Path
) -> None:
    out = tmp_path / "out"
    first = put(repo, slow("hold", out))
    run = await stopped_in(tmp_path, repo, "hold")
    assert run.document is not None and run.revision == first
    second = put(repo, slow("linger", out))  # the state the run is in is gone at this revision

    async with running(tmp_path, repo) as (_controller, store):
        resumed, entries = await finished(store, run.id)
        status = await eventually(
            store,
            "slow",
            lambda s: s.status is Health.CONVERGED and s.last_applied_revision == second,
        )
        assert status.last_run_id is not None
        newer, newer_entries = await finished(store, status.last_run_id)

    assert resumed.status is RunStatus.SUCCEEDED, resumed.error
    assert resumed.revision == first and resumed.document is None  # dropped once it ended
    assert entered(entries) == ["hold", "hold", "write", "done"]
    assert newer.id != run.id and newer.revision == second and newer.reason == "spec-change"
    assert entered(newer_entries) == ["linger", "write", "done"]
    assert out.read_text() == "linger"


@pytest.mark.parametrize(
    "document",
    [None, {"apiVersion": "reconciler/v1", "kind": "Workflow"}],
    ids=["recorded-before-documents", "document-that-no-longer-loads"],
)
async def test_a_run_without_a_usable_document_resumes_with_the_current_spec(
    tmp_path: Path, repo: Path, document: dict[str, Any] | None
) -> None:
    out = tmp_path / "out"
    put(repo, slow("hold", out))
    run = await stopped_in(tmp_path, repo, "hold")
    database = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'reconciler.db'}")
    try:  # as a run recorded before runs kept their document
        async with database.begin() as conn:
            await conn.execute(update(RUNS).where(RUNS.c.id == run.id).values(document=document))
    finally:
        await database.dispose()
    put(repo, slow("linger", out))

    async with running(tmp_path, repo) as (_controller, store):
        resumed, _entries = await finished(store, run.id)

    assert resumed.status is RunStatus.FAILED
    assert resumed.error is not None and "unknown state 'hold'" in resumed.error


async def test_a_run_cancelled_before_it_stopped_ends_cancelled_without_resuming(
    tmp_path: Path, repo: Path
) -> None:
    out = tmp_path / "out"
    put(repo, slow("hold", out))
    run = await stopped_in(tmp_path, repo, "hold")
    store = await Store.open(None, data_dir=tmp_path / "data")
    try:  # the API accepted a cancel, and the daemon stopped before applying it
        await store.request(CommandKind.CANCEL, run.id, requested_by="ops")
    finally:
        await store.close()

    async with running(tmp_path, repo) as (_controller, store):
        cancelled, entries = await finished(store, run.id)

    assert cancelled.status is RunStatus.CANCELLED and cancelled.cancelled_by == "ops"
    assert EventKind.RUN_RESUMED not in [e.kind for e in entries]
    assert not out.exists()
