"""A replica that stops between a run's end and its workflow's status, and the replica that
claims the workflow next, on one real git repository and one real PostgreSQL schema.

The stopped replica is what it leaves in the store at that moment, written through the store
as its engine and status book write them, under its lease (expired, as a dead or paused
replica's is): the run's journal up to its ``run_finished`` entry (and, in the second case, the
run's finished record), and the ``Progressing`` status that points at the run (in the third
case not even that: the status book writes behind, and had not written it yet). The replica
that claims the workflow next is a real :class:`Controller`. Whichever of the writes the first
replica managed, the run counts once: it is not resumed to finish a second time, the workflow
does not run again at that revision, and its status becomes the run's outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.clock import utcnow
from reconciler.daemon.replicas import lease_name
from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.store import Health, Store, WorkflowStatusRecord
from tests.support import postgres
from tests.support.controller import running
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, put

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    with postgres.schema("unsettled") as name:
        opened = await Store.open(postgres.store_url(name), data_dir=tmp_path / "probe")
        try:
            yield opened
        finally:
            await opened.close()


async def leave_a_finished_run(
    store: Store, *, revision: str, record_too: bool, status_too: bool = True
) -> str:
    """What replica ``gone`` leaves when it stops right after journaling the end of its run of
    ``app`` (``record_too``: and after storing the run's finished record; not ``status_too``:
    before its status book wrote even the ``Progressing`` status): returns the run id."""
    long_ago = utcnow() - timedelta(minutes=5)
    lease = await store.acquire(lease_name("app"), "gone", ttl=timedelta(seconds=2), now=long_ago)
    assert lease is not None
    run = RunRecord(id=uuid.uuid4().hex, workflow="app", revision=revision, reason="spec-change")
    progressing = WorkflowStatusRecord(
        name="app",
        status=Health.PROGRESSING,
        last_run_id=run.id,
        last_attempted_revision=revision,
    )
    if status_too:
        await store.put_status(progressing, fence=lease)
    await store.run_started(run, fence=lease)
    journal = [
        JournalEntry(run_id=run.id, seq=1, kind=EventKind.RUN_STARTED),
        JournalEntry(run_id=run.id, seq=2, kind=EventKind.STATE_ENTERED, state="write"),
        JournalEntry(
            run_id=run.id, seq=3, kind=EventKind.TRANSITION, state="write", to_state="done"
        ),
        JournalEntry(
            run_id=run.id,
            seq=4,
            kind=EventKind.RUN_FINISHED,
            state="done",
            outcome="succeeded",
            detail={"status": "succeeded", "error": None, "changed": True},
        ),
    ]
    for entry in journal:
        await store.record(entry, fence=lease)
    if record_too:
        finished = replace(
            run, status=RunStatus.SUCCEEDED, current_state="done", finished_at=utcnow()
        )
        await store.run_finished(finished, fence=lease)
    return run.id


@pytest.mark.parametrize(
    ("record_too", "status_too"),
    [(False, True), (True, True), (True, False)],
    ids=[
        "stopped-after-the-run-finished-entry",
        "stopped-after-the-run-record",
        "stopped-before-any-status-was-written",
    ],
)
async def test_a_run_finished_by_a_replica_that_stopped_before_its_status_counts_once(
    tmp_path: Path, store: Store, record_too: bool, status_too: bool
) -> None:
    repo = init_repo(tmp_path / "repo")
    out = tmp_path / "out.txt"
    put(repo, file_workflow("app", out, "hello"))
    revision = commit(repo, "one workflow")
    run_id = await leave_a_finished_run(
        store, revision=revision, record_too=record_too, status_too=status_too
    )

    async with running(
        tmp_path,
        repo,
        data_dir=tmp_path / "data-next",
        store=str(store.url.render_as_string(hide_password=False)),
        replica_id="next",
        lease_ttl="2s",
    ) as (controller, _):

        async def settled() -> WorkflowStatusRecord | None:
            status = await store.get_status("app")
            return (
                status
                if status is not None and status.status not in (Health.PROGRESSING, Health.PENDING)
                else None
            )

        status = await until_async(settled, 30, "app's status to be settled", interval=0.05)
        assert status is not None
        assert controller.running == {}

    assert (status.status, status.reason) == (Health.CONVERGED, "RunSucceeded")
    assert status.last_run_id == run_id and status.last_applied_revision == revision
    assert [r.id for r in await store.list_runs("app")] == [run_id]  # not run again
    finished = [e for e in await store.entries(run_id) if e.kind is EventKind.RUN_FINISHED]
    assert len(finished) == 1  # not resumed to finish a second time
    assert not out.exists()  # the replica that claimed it next wrote nothing
