"""``/api/v1/workflows``: every workflow with its status, one workflow in detail, its state
diagram, and the steering of a workflow (sync, a run with inputs, suspend, resume).

Called by: :func:`reconciler.api.app.create_app`. Calls: the :class:`~reconciler.api.view.DaemonView`
(specs, problems and statuses; the runs in progress; ``request_sync``, ``suspend``, ``resume``)
and the diagram renderers of :mod:`reconciler.engine.graph`.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from reconciler.api.auth import ApiError, requested_by
from reconciler.api.etag import NOT_MODIFIED, conditional_json
from reconciler.api.graphviz import GraphvizUnavailable, dot_to_svg
from reconciler.api.models import (
    Accepted,
    ErrorResponse,
    ProblemOut,
    RunAccepted,
    RunRequest,
    SpecSummary,
    WindowOut,
    WorkflowDetail,
    WorkflowList,
    WorkflowSummary,
)
from reconciler.api.routes import CONFLICT
from reconciler.api.view import DaemonView
from reconciler.config.models import Workflow
from reconciler.engine.graph import build_diagram, to_dot, to_mermaid
from reconciler.engine.journal import EventKind, RunStatus
from reconciler.errors import InputRejected
from reconciler.status import Health, WorkflowStatusRecord


def workflows_router(view: DaemonView, *, read: list[Any], write: list[Any]) -> APIRouter:
    """The workflow routes of the daemon behind ``view``; ``read`` and ``write`` are the auth
    dependencies of reads and of steering."""
    router = APIRouter()

    def workflow_model(name: str) -> Workflow | None:
        lw = view.spec(name)
        return lw.workflow if lw is not None else None

    def summary_fields(name: str, status: WorkflowStatusRecord | None) -> dict[str, Any]:
        st = status or WorkflowStatusRecord(name=name)
        workflow = workflow_model(name)
        return {
            "name": name,
            "status": st.status,
            "sync": st.sync,
            "reason": st.reason,
            "message": st.message,
            "revision": st.last_applied_revision,
            "last_attempted_revision": st.last_attempted_revision,
            "last_run_id": st.last_run_id,
            "last_success_at": st.last_success_at,
            "next_check_at": st.next_check_at,
            "failures": st.failures,
            "labels": dict(workflow.metadata.labels) if workflow is not None else {},
            "suspended": view.is_suspended(name) or st.suspended,
            "running_run_id": view.running_run(name),
            "updated_at": status.updated_at if status is not None else None,
            "window": WindowOut.of(verdict) if (verdict := view.window(name)) else None,
        }

    async def status_of(name: str) -> WorkflowStatusRecord | None:
        status = await view.status(name)
        if status is None and not view.is_known(name):
            raise ApiError(404, "not_found", f"no workflow named {name!r}")
        return status

    async def current_and_visited(
        name: str, run_id: str, *, asked: bool
    ) -> tuple[str | None, list[str]]:
        """The state run ``run_id`` of ``name`` is in (None once it ended) and the states it
        entered; 404 when the caller ``asked`` for a run the store does not have."""
        record = await view.get_run(run_id)
        if record is None and asked:
            raise ApiError(404, "not_found", f"no run with id {run_id!r}")
        if record is None or record.workflow != name:
            return None, []
        entries = await view.entries(record.id)
        visited = [e.state for e in entries if e.kind is EventKind.STATE_ENTERED and e.state]
        current: str | None = None
        if record.status is RunStatus.RUNNING:
            current = record.current_state
            for e in entries:  # read after the record: may be a step ahead of it
                if e.kind is EventKind.STATE_ENTERED:
                    current = e.state
                elif e.kind is EventKind.TRANSITION:
                    current = e.to_state
        return current, visited

    @router.get(
        "/api/v1/workflows",
        response_model=WorkflowList,
        dependencies=read,
        tags=["workflows"],
        summary="Every workflow with its status",
        responses=NOT_MODIFIED,
    )
    async def list_workflows(request: Request) -> Response:
        statuses = {st.name: st for st in await view.statuses()}
        names = sorted(set(statuses) | view.listed())
        listed = WorkflowList(
            revision=view.revision(),
            workflows=[
                WorkflowSummary(**summary_fields(name, statuses.get(name))) for name in names
            ],
        )
        return conditional_json(request, listed)

    @router.get(
        "/api/v1/workflows/{name}",
        response_model=WorkflowDetail,
        dependencies=read,
        tags=["workflows"],
        summary="One workflow: status, field diff, spec summary, problems",
        responses=NOT_MODIFIED,
    )
    async def get_workflow(name: str, request: Request) -> Response:
        status = await status_of(name)
        lw = view.spec(name)
        spec = SpecSummary.of(lw.workflow, file=lw.path, line=lw.line) if lw is not None else None
        problems = [ProblemOut.of(p) for p in view.problems(name)]
        detail = WorkflowDetail(
            **summary_fields(name, status),
            diff=status.diff if status is not None else None,
            observed_at=status.observed_at if status is not None else None,
            spec=spec,
            problems=problems,
        )
        return conditional_json(request, detail)

    @router.get(
        "/api/v1/workflows/{name}/graph",
        response_class=Response,
        dependencies=read,
        tags=["workflows"],
        summary="State diagram (Mermaid, DOT or SVG), the current state highlighted",
        responses={
            **CONFLICT,
            200: {
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                    "image/svg+xml": {"schema": {"type": "string"}},
                }
            },
            503: {"model": ErrorResponse, "description": "svg: Graphviz unavailable or failed"},
        },
    )
    async def get_graph(
        name: str,
        format: Annotated[
            Literal["mermaid", "dot", "json", "svg"],
            Query(
                description="mermaid, dot, json (nodes and edges), or svg (dot's drawing; "
                "503 graphviz_unavailable without Graphviz)"
            ),
        ] = "mermaid",
        run: Annotated[
            str | None, Query(description="Highlight this run (default: the one running).")
        ] = None,
    ) -> Response:
        status = await status_of(name)
        workflow = workflow_model(name)
        if workflow is None:
            raise ApiError(
                409, "invalid_workflow", f"workflow {name!r} does not parse; it has no diagram"
            )
        run_id = run or view.running_run(name)
        if run_id is None and status is not None and status.status is Health.PROGRESSING:
            run_id = status.last_run_id
        current: str | None = None
        visited: list[str] = []
        if run_id is not None:
            current, visited = await current_and_visited(name, run_id, asked=run is not None)
        if format == "json":
            diagram = build_diagram(workflow, current=current, visited=visited)
            return JSONResponse(dataclasses.asdict(diagram))
        if format == "svg":
            try:
                svg = await dot_to_svg(to_dot(workflow, current=current, visited=visited))
            except GraphvizUnavailable as err:
                raise ApiError(503, "graphviz_unavailable", str(err)) from None
            return Response(svg, media_type="image/svg+xml")
        render = to_dot if format == "dot" else to_mermaid
        return PlainTextResponse(render(workflow, current=current, visited=visited))

    async def steerable(name: str) -> None:
        if not view.is_known(name):
            raise ApiError(404, "not_found", f"no workflow named {name!r}")
        if view.is_removed(name):
            raise ApiError(
                409, "removed", f"workflow {name!r} was removed from git and is being retired"
            )

    @router.post(
        "/api/v1/workflows/{name}/sync",
        response_model=Accepted,
        status_code=202,
        dependencies=write,
        tags=["steering"],
        summary="Queue a sync now (runs even when in sync)",
        responses=CONFLICT,
    )
    async def sync(name: str, request: Request) -> Accepted:
        await sync_allowed(name)
        if not await view.request_sync(name, requested_by=requested_by(request)):
            raise ApiError(404, "not_found", f"no workflow named {name!r}")
        return Accepted(message=f"sync of workflow {name} queued", workflow=name)

    @router.post(
        "/api/v1/workflows/{name}/runs",
        response_model=RunAccepted,
        status_code=202,
        dependencies=write,
        tags=["steering"],
        summary="Start a run with inputs (a manual sync whose run has these inputs)",
        responses={**CONFLICT, 422: {"model": ErrorResponse}, 429: {"model": ErrorResponse}},
    )
    async def start_run(
        name: str, request: Request, body: Annotated[RunRequest | None, Body()] = None
    ) -> RunAccepted:
        """Unlike a plain sync, this is not refused while the workflow runs: each distinct set
        of inputs gets a run of its own, so the request waits for the run in progress."""
        await sync_allowed(name, while_running=True)
        body = body or RunRequest()
        if body.inputs and view.problems(name):
            raise ApiError(
                409,
                "invalid",
                f"workflow {name!r} is invalid in git; its parameters are not known until it "
                "is fixed",
            )
        try:
            known = await view.request_sync(
                name, requested_by=requested_by(request), inputs=body.inputs
            )
        except InputRejected as exc:
            status = 429 if exc.code == "too_many_waiting_runs" else 422
            raise ApiError(status, exc.code, str(exc)) from None
        if not known:
            raise ApiError(404, "not_found", f"no workflow named {name!r}")
        shown = f" with inputs {', '.join(sorted(body.inputs))}" if body.inputs else ""
        return RunAccepted(
            message=f"run of workflow {name}{shown} queued", workflow=name, inputs=body.inputs
        )

    async def sync_allowed(name: str, *, while_running: bool = False) -> None:
        """Refuse a sync (or a run with inputs) of a workflow that cannot run now (or, unless
        ``while_running``, that runs now)."""
        await steerable(name)
        if view.is_suspended(name):
            raise ApiError(
                409, "suspended", f"workflow {name!r} is suspended; resume it before syncing"
            )
        workflow = workflow_model(name)
        if workflow is not None and workflow.spec.suspend:
            raise ApiError(
                409, "suspended", f"workflow {name!r} is suspended in its spec (suspend: true)"
            )
        window = view.window(name)
        if window is not None and window.blocked and not window.manual_sync:
            raise ApiError(
                409,
                "window_closed",
                f"workflow {name!r} may not run now: {window.describe()}; a manual sync runs "
                "while it is blocked only if every window blocking it says manualSync: true",
            )
        running = view.running_run(name)
        if running is not None and not while_running:
            raise ApiError(
                409,
                "already_running",
                f"workflow {name!r} is already running (run {running}); wait or cancel it",
            )

    @router.post(
        "/api/v1/workflows/{name}/suspend",
        response_model=Accepted,
        dependencies=write,
        tags=["steering"],
        summary="Start no more runs of this workflow until resumed",
        responses=CONFLICT,
    )
    async def suspend(name: str, request: Request) -> Accepted:
        await steerable(name)
        await view.suspend(name, requested_by=requested_by(request))
        running = view.running_run(name)
        more = f"; run {running} continues (cancel it to stop it)" if running else ""
        return Accepted(message=f"workflow {name} suspended{more}", workflow=name)

    @router.post(
        "/api/v1/workflows/{name}/resume",
        response_model=Accepted,
        dependencies=write,
        tags=["steering"],
        summary="Undo a suspend and check the workflow now",
        responses=CONFLICT,
    )
    async def resume(name: str, request: Request) -> Accepted:
        await steerable(name)
        await view.resume(name, requested_by=requested_by(request))
        return Accepted(message=f"workflow {name} resumed; checking it now", workflow=name)

    return router
