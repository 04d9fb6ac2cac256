"""A run keeps the workflow document it started with until it ends, on SQLite and PostgreSQL.

The real engine journals into the store a run that waits in a state; its row holds the
workflow as validated from the file (secret references, never a resolved value), it comes
back equal to the workflow that started it, and it is dropped once the run finishes. A run
written by the schema before runs kept documents comes back without one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from reconciler.config.models import Workflow
from reconciler.config.snapshot import workflow_document
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.engine.runner import Engine
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry
from reconciler.store import Store
from reconciler.store.tables import RUNS
from tests.support.waiting import until_async

OpenStore = Callable[[], Awaitable[Store]]
CANARY = "pin-canary-3b91e07c5d"


def waiting_workflow() -> Workflow:
    """Reads a secret, then waits an hour in state ``wait``."""
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "pinned"},
            "spec": {
                "secrets": {"token": "env:RECONCILER_PIN_CANARY"},
                "inputs": {"greeting": "hello"},
                "start": "wait",
                "states": {
                    "wait": {"transitions": [{"to": "done", "after": "1h"}]},
                    "done": {"end": "success"},
                },
            },
        }
    )


async def raw_row(store: Store, run_id: str) -> dict[str, object]:
    """The run's row as the database holds it, every column."""
    engine = create_async_engine(store.url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().one()
            return dict(row)
    finally:
        await engine.dispose()


async def test_a_running_run_keeps_its_document_with_secret_references_only(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_PIN_CANARY", CANARY)
    workflow = waiting_workflow()
    engine = Engine(
        PluginRegistry(),
        journal=store,
        grants=Grants.local(tmp_path, allow_env=["RECONCILER_PIN_CANARY"]),
    )
    task = asyncio.create_task(
        engine.run(workflow, run_id="r1", revision="rev1", document=workflow_document(workflow))
    )
    try:

        async def waiting() -> RunRecord | None:
            run = await store.get_run("r1")
            return run if run is not None and run.current_state == "wait" else None

        run = await until_async(waiting, 20, "the run to wait in state wait", interval=0.02)
        assert run is not None and run.document is not None
        assert Workflow.model_validate(run.document) == workflow
        assert run.document["spec"]["secrets"] == {"token": "env:RECONCILER_PIN_CANARY"}
        [unfinished] = await store.unfinished_runs()
        assert unfinished.document == run.document
        [listed] = await store.list_runs("pinned")
        assert listed.id == "r1" and listed.document is None  # a page of runs carries no specs

        row = await raw_row(store, "r1")
        assert CANARY not in json.dumps(row, default=str)
        assert "env:RECONCILER_PIN_CANARY" in json.dumps(row["document"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    finished = await store.get_run("r1")
    assert finished is not None and finished.status is RunStatus.CANCELLED
    assert finished.document is None
    assert (await raw_row(store, "r1"))["document"] is None


async def test_a_run_recorded_before_runs_kept_documents_comes_back_without_one(
    open_store: OpenStore,
) -> None:
    from alembic import command

    from reconciler.store.migrate import alembic_config

    store = await open_store()
    await store.close()
    engine = create_async_engine(store.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0001"))
            await conn.execute(
                text(
                    "INSERT INTO runs (id, workflow, revision, reason, status, attempt, "
                    "started_at, outputs) VALUES ('old', 'wf', 'rev0', 'drift', 'running', 1, "
                    "'2026-12-01 10:00:00', '{}')"
                )
            )
    finally:
        await engine.dispose()

    upgraded = await open_store()
    [old] = await upgraded.unfinished_runs()
    assert old.id == "old" and old.status is RunStatus.RUNNING
    assert old.document is None
