"""``/api/v1/runs``: runs newest first, one run with its journal, cancelling, approving and
rejecting a run, and ``/api/v1/approvals``: the runs waiting at an approval gate.

Called by: :func:`reconciler.api.app.create_app`. Calls: the :class:`~reconciler.api.view.DaemonView`
(the store's runs and journal, ``cancel``, which reaches the run on whichever replica holds it).
Wherever a run id is taken, a unique prefix of at least :data:`MIN_PREFIX` hex digits names the
run too (the 8-character ids the log, ``reconciler status`` and the page show), as git and docker
take short ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from reconciler.api.auth import ApiError, requested_by
from reconciler.api.models import (
    Accepted,
    ApprovalBody,
    ApprovalList,
    ApprovalOut,
    ErrorResponse,
    JournalEntryOut,
    RunDetail,
    RunList,
    RunSummary,
    WaitingRun,
)
from reconciler.api.routes import CONFLICT
from reconciler.api.view import DaemonView
from reconciler.engine.approvals import pending_approval
from reconciler.engine.journal import RunRecord, RunStatus

MIN_PREFIX = 4
"""The shortest run id prefix looked up (as git's shortest abbreviation): fewer characters
would match too many runs to be of use."""
SHOWN_CANDIDATES = 5
"""How many of the runs an ambiguous prefix matches its error names."""
_HEX = frozenset("0123456789abcdef")
_REFUSAL_STATUS = {
    "not_found": 404,
    "not_an_approver": 403,
    "requester_cannot_approve": 403,
}
"""The HTTP status of a refused approval by its code; the others (the run is not waiting, it
was decided already) are 409 conflicts."""


def is_id_prefix(text: str) -> bool:
    """Whether ``text`` may abbreviate a run id: at least :data:`MIN_PREFIX` hex digits (run ids
    are lowercase hex; upper case is accepted, as git accepts it)."""
    return len(text) >= MIN_PREFIX and set(text.lower()) <= _HEX


def ambiguous_message(prefix: str, found: list[str]) -> str:
    """The 409's sentence: the prefix, the candidates (at most :data:`SHOWN_CANDIDATES`), and
    what to do."""
    shown = ", ".join(found[:SHOWN_CANDIDATES]) + (", ..." if len(found) > SHOWN_CANDIDATES else "")
    return f"run id prefix {prefix!r} is ambiguous: it matches {shown}; give more characters"


def runs_router(view: DaemonView, *, read: list[Any], write: list[Any]) -> APIRouter:
    """The run routes of the daemon behind ``view``; ``read`` and ``write`` are the auth
    dependencies of reads and of the cancel, approve and reject."""
    router = APIRouter()

    async def run_or_404(run_id: str) -> RunRecord:
        """The run ``run_id`` names: its whole id, or a unique prefix of it (404 when none
        matches, 409 ``ambiguous_id`` naming the candidates when several do)."""
        run = await view.get_run(run_id)
        if run is None and is_id_prefix(run_id):
            found = await view.run_ids_starting_with(run_id.lower(), limit=SHOWN_CANDIDATES + 1)
            if len(found) > 1:
                raise ApiError(409, "ambiguous_id", ambiguous_message(run_id, found))
            run = await view.get_run(found[0]) if found else None
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
        responses=CONFLICT,
    )
    async def get_run(run_id: str) -> RunDetail:
        run = await run_or_404(run_id)
        entries = await view.entries(run.id)
        pending = pending_approval(entries) if run.status is RunStatus.RUNNING else None
        return RunDetail(
            **RunSummary.of(run).model_dump(),
            outputs=run.outputs,
            journal=[JournalEntryOut.of(e) for e in entries],
            approval=ApprovalOut.of(pending, entries) if pending is not None else None,
        )

    @router.get(
        "/api/v1/approvals",
        response_model=ApprovalList,
        dependencies=read,
        tags=["runs"],
        summary="Runs waiting for an approval, oldest request first",
    )
    async def list_approvals() -> ApprovalList:
        waiting: list[WaitingRun] = []
        for run in await view.unfinished_runs():
            entries = await view.entries(run.id)
            pending = pending_approval(entries)
            if pending is not None:
                approval = ApprovalOut.of(pending, entries)
                waiting.append(WaitingRun(**RunSummary.of(run).model_dump(), approval=approval))
        waiting.sort(key=lambda w: w.approval.requested_at)
        return ApprovalList(runs=waiting)

    async def decide(
        run_id: str, request: Request, *, approved: bool, body: ApprovalBody | None
    ) -> Accepted:
        run = await run_or_404(run_id)
        refused = await view.decide(
            run.id,
            approved=approved,
            comment=body.comment if body is not None else "",
            requested_by=requested_by(request),
            seen=body.request if body is not None else None,
        )
        if refused is not None:
            raise ApiError(_REFUSAL_STATUS.get(refused.code, 409), refused.code, refused.message)
        verdict = "approval" if approved else "rejection"
        return Accepted(
            message=f"{verdict} of run {run.id} of workflow {run.workflow} recorded",
            workflow=run.workflow,
            run_id=run.id,
        )

    @router.post(
        "/api/v1/runs/{run_id}/approve",
        response_model=Accepted,
        status_code=202,
        dependencies=write,
        tags=["steering"],
        summary="Approve a run waiting at an approval gate",
        responses={**CONFLICT, 403: {"model": ErrorResponse}},
    )
    async def approve(run_id: str, request: Request, body: ApprovalBody | None = None) -> Accepted:
        return await decide(run_id, request, approved=True, body=body)

    @router.post(
        "/api/v1/runs/{run_id}/reject",
        response_model=Accepted,
        status_code=202,
        dependencies=write,
        tags=["steering"],
        summary="Reject a run waiting at an approval gate",
        responses={**CONFLICT, 403: {"model": ErrorResponse}},
    )
    async def reject(run_id: str, request: Request, body: ApprovalBody | None = None) -> Accepted:
        return await decide(run_id, request, approved=False, body=body)

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
            raise ApiError(409, "not_running", f"run {run.id} already {run.status.value}")
        # recorded in the store before the answer: the replica holding the run applies it
        if not await view.cancel(run.id, requested_by=requested_by(request)):
            raise ApiError(409, "not_running", f"run {run.id} has just finished")
        return Accepted(
            message=f"run {run.id} of workflow {run.workflow} is being cancelled",
            workflow=run.workflow,
            run_id=run.id,
        )

    return router
