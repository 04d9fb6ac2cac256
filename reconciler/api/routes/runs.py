"""``/api/v1/runs``: runs newest first, one run with its journal, and cancelling a run.

Called by: :func:`reconciler.api.app.create_app`. Calls: the :class:`~reconciler.api.view.DaemonView`
(the store's runs and journal, ``cancel``, which reaches the run on whichever replica holds it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from reconciler.api.auth import ApiError, requested_by
from reconciler.api.models import Accepted, JournalEntryOut, RunDetail, RunList, RunSummary
from reconciler.api.routes import CONFLICT
from reconciler.api.view import DaemonView
from reconciler.engine.journal import RunRecord, RunStatus


def runs_router(view: DaemonView, *, read: list[Any], write: list[Any]) -> APIRouter:
    """The run routes of the daemon behind ``view``; ``read`` and ``write`` are the auth
    dependencies of reads and of the cancel."""
    router = APIRouter()

    async def run_or_404(run_id: str) -> RunRecord:
        run = await view.get_run(run_id)
        if run is None:
            raise ApiError(404, "not_found", f"no run with id {run_id!r}")
        return run

    @router.get(
        "/api/v1/runs",
        response_model=RunList,
        dependencies=read,
        tags=["runs"],
        summary="Runs, newest first",
    )
    async def list_runs(
        workflow: Annotated[str | None, Query(description="Only this workflow's runs.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[
            datetime | None, Query(description="Only runs started before this.")
        ] = None,
    ) -> RunList:
        runs = await view.list_runs(workflow, limit=limit, before=before)
        more = len(runs) == limit
        return RunList(
            runs=[RunSummary.of(r) for r in runs],
            next_before=runs[-1].started_at if runs and more else None,
        )

    @router.get(
        "/api/v1/runs/{run_id}",
        response_model=RunDetail,
        dependencies=read,
        tags=["runs"],
        summary="One run with its transition journal",
    )
    async def get_run(run_id: str) -> RunDetail:
        run = await run_or_404(run_id)
        entries = await view.entries(run_id)
        return RunDetail(
            **RunSummary.of(run).model_dump(),
            outputs=run.outputs,
            journal=[JournalEntryOut.of(e) for e in entries],
        )

    @router.post(
        "/api/v1/runs/{run_id}/cancel",
        response_model=Accepted,
        status_code=202,
        dependencies=write,
        tags=["steering"],
        summary="Cancel a run in progress",
        responses=CONFLICT,
    )
    async def cancel(run_id: str, request: Request) -> Accepted:
        run = await run_or_404(run_id)
        if run.status is not RunStatus.RUNNING:
            raise ApiError(409, "not_running", f"run {run_id} already {run.status.value}")
        # recorded in the store before the answer: the replica holding the run applies it
        if not await view.cancel(run_id, requested_by=requested_by(request)):
            raise ApiError(409, "not_running", f"run {run_id} has just finished")
        return Accepted(
            message=f"run {run_id} of workflow {run.workflow} is being cancelled",
            workflow=run.workflow,
            run_id=run_id,
        )

    return router
