"""The daemon's HTTP API (DESIGN §6): FastAPI on the ``--listen`` port, next to the controller.

A window onto the whole flow (sources → snapshot → planner → queue → runner → store): reads come
from the :class:`~reconciler.store.Store` (statuses, runs, the journal) and the controller's
current snapshot (specs, problems); steering goes through the
:class:`~reconciler.daemon.controller.Controller`'s seams (``request_sync``, ``suspend``,
``resume``, ``cancel``); webhooks (:mod:`reconciler.api.webhooks`) poke the source; ``/metrics``
serves :data:`reconciler.telemetry.metrics.REGISTRY`. ``reconciler run``
(:mod:`reconciler.cli.run`) serves :func:`create_app` with uvicorn in the controller's event loop;
the remote CLI commands (:mod:`reconciler.cli.remote`) and the web page are its clients.

Routes: ``/healthz``, ``/readyz``, ``/metrics``, ``/api/v1/workflows[/{name}[/graph]]``,
``/api/v1/runs[/{id}]``, ``POST /api/v1/workflows/{name}/sync|suspend|resume``,
``POST /api/v1/runs/{id}/cancel``, ``/hooks/github|gitlab|generic``; OpenAPI at
``/openapi.json``, Swagger UI at ``/docs`` only with ``api_docs`` (:mod:`reconciler.api.docs`,
local files). Every answer carries the security headers of :mod:`reconciler.api.headers`. Every mutation needs the bearer token (:mod:`reconciler.api.auth`); reads need
it when ``read_auth`` is ``token``. Every error is ``{"error": {"code", "message"}}``
(:class:`~reconciler.api.models.ErrorResponse`). Response bodies are the models of
:mod:`reconciler.api.models`; none carries a secret value.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import make_asgi_app
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler import __version__
from reconciler.api.auth import ApiError, Auth
from reconciler.api.docs import mount_docs
from reconciler.api.headers import SecurityHeaders
from reconciler.api.models import (
    Accepted,
    Alive,
    ErrorResponse,
    JournalEntryOut,
    ProblemOut,
    Readiness,
    RunDetail,
    RunList,
    RunSummary,
    SpecSummary,
    WorkflowDetail,
    WorkflowList,
    WorkflowSummary,
)
from reconciler.api.page import mount_page
from reconciler.api.webhooks import hooks_router
from reconciler.config.models import Workflow
from reconciler.daemon.controller import Controller
from reconciler.engine.graph import build_diagram, to_dot, to_mermaid
from reconciler.engine.journal import EventKind, RunStatus
from reconciler.errors import StoreError
from reconciler.status import Health, WorkflowStatusRecord
from reconciler.telemetry.metrics import REGISTRY

log = structlog.get_logger("reconciler.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_request",
    503: "unavailable",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 422, 503)
}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorResponse}}
READY_TIMEOUT = 3.0
"""Seconds ``/readyz`` waits for the store (the chart's readiness probe gives up after 5)."""


class _AsgiEndpoint:
    """An ASGI app served at one exact path (a mount would redirect ``/metrics`` to
    ``/metrics/``; Prometheus scrapes the former)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse.model_validate({"error": {"code": code, "message": message}})
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def create_app(controller: Controller) -> FastAPI:
    """The API of ``controller`` (its settings give the token, read policy and webhook secret)."""
    settings = controller.settings
    auth = Auth.of(settings.api_token, read_auth=settings.read_auth, listen=settings.listen)
    app = FastAPI(
        title="reconciler",
        version=__version__,
        description="GitOps reconciliation daemon: workflows, runs and their journal; steering.",
        responses=_ERRORS,
        # FastAPI's documentation pages load scripts from a CDN; reconciler.api.docs is local.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.add_middleware(SecurityHeaders)
    read = [Depends(auth.require_read)]
    write = [Depends(auth.require_write)]

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StoreError)
    async def _store_down(_request: Request, exc: StoreError) -> JSONResponse:
        log.warning(f"API request failed: {exc}")
        return _error(503, "store_unavailable", "the store cannot be read right now; retry later")

    app.router.routes.append(Route("/metrics", _AsgiEndpoint(make_asgi_app(registry=REGISTRY))))
    app.include_router(hooks_router(controller))

    # -- helpers -------------------------------------------------------------------------------

    def known(name: str) -> bool:
        target = controller.target
        return name in target.valid or name in target.invalid or name in target.removed

    def workflow_model(name: str) -> Workflow | None:
        lw = controller.target.valid.get(name)
        if lw is None and controller.snapshot is not None:
            lw = controller.snapshot.workflows.get(name)
        return lw.workflow if lw is not None else None

    def running_run(name: str) -> str | None:
        return next((rid for rid, wf in controller.running.items() if wf == name), None)

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
            "suspended": name in controller.suspended,
            "running_run_id": running_run(name),
            "updated_at": status.updated_at if status is not None else None,
        }

    async def status_of(name: str) -> WorkflowStatusRecord | None:
        status = await controller.statuses.get(name)
        if status is None and not known(name):
            raise ApiError(404, "not_found", f"no workflow named {name!r}")
        return status

    async def run_or_404(run_id: str) -> Any:
        run = await controller.store.get_run(run_id)
        if run is None:
            raise ApiError(404, "not_found", f"no run with id {run_id!r}")
        return run

    # -- probes --------------------------------------------------------------------------------

    @app.get("/healthz", response_model=Alive, tags=["probes"], summary="The process is alive")
    async def healthz() -> Alive:
        return Alive()

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["probes"],
        summary="Synced from git once and the store usable (file present, tables there)",
        responses={503: {"model": Readiness}},
    )
    async def readyz() -> JSONResponse:
        reasons = []
        if not controller.ready.is_set():
            reasons.append("the repository has not been loaded yet")
        try:
            problem = await asyncio.wait_for(controller.store.problem(), READY_TIMEOUT)
        except TimeoutError:
            problem = f"the store did not answer within {READY_TIMEOUT:g} s"
        if problem is not None:
            reasons.append(problem)
        body = Readiness(
            ready=not reasons,
            reason="; ".join(reasons),
            revision=controller.target.revision or None,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503 if reasons else 200)

    # -- workflows -----------------------------------------------------------------------------

    @app.get(
        "/api/v1/workflows",
        response_model=WorkflowList,
        dependencies=read,
        tags=["workflows"],
        summary="Every workflow with its status",
    )
    async def list_workflows() -> WorkflowList:
        statuses = {st.name: st for st in await controller.statuses.load()}
        target = controller.target
        names = sorted(set(statuses) | set(target.valid) | set(target.invalid))
        return WorkflowList(
            revision=target.revision,
            workflows=[
                WorkflowSummary(**summary_fields(name, statuses.get(name))) for name in names
            ],
        )

    @app.get(
        "/api/v1/workflows/{name}",
        response_model=WorkflowDetail,
        dependencies=read,
        tags=["workflows"],
        summary="One workflow: status, field diff, spec summary, problems",
    )
    async def get_workflow(name: str) -> WorkflowDetail:
        status = await status_of(name)
        lw = controller.target.valid.get(name)
        if lw is None and controller.snapshot is not None:
            lw = controller.snapshot.workflows.get(name)
        spec = SpecSummary.of(lw.workflow, file=lw.path, line=lw.line) if lw is not None else None
        problems = [ProblemOut.of(p) for p in controller.target.invalid.get(name, [])]
        return WorkflowDetail(
            **summary_fields(name, status),
            diff=status.diff if status is not None else None,
            observed_at=status.observed_at if status is not None else None,
            spec=spec,
            problems=problems,
        )

    @app.get(
        "/api/v1/workflows/{name}/graph",
        response_class=Response,
        dependencies=read,
        tags=["workflows"],
        summary="State diagram (Mermaid or DOT), the current state highlighted",
        responses={
            **_CONFLICT,
            200: {
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                }
            },
        },
    )
    async def get_graph(
        name: str,
        format: Annotated[
            Literal["mermaid", "dot", "json"],
            Query(description="mermaid, dot, or json (nodes and edges, as the web page draws)"),
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
        run_id = run or running_run(name)
        if run_id is None and status is not None and status.status is Health.PROGRESSING:
            run_id = status.last_run_id
        current: str | None = None
        visited: list[str] = []
        if run_id is not None:
            record = await controller.store.get_run(run_id)
            if record is None and run is not None:
                raise ApiError(404, "not_found", f"no run with id {run!r}")
            if record is not None and record.workflow == name:
                entries = await controller.store.entries(record.id)
                visited = [
                    e.state for e in entries if e.kind is EventKind.STATE_ENTERED and e.state
                ]
                if record.status is RunStatus.RUNNING:
                    current = record.current_state
                    for e in entries:  # read after the record: may be a step ahead of it
                        if e.kind is EventKind.STATE_ENTERED:
                            current = e.state
                        elif e.kind is EventKind.TRANSITION:
                            current = e.to_state
        if format == "json":
            diagram = build_diagram(workflow, current=current, visited=visited)
            return JSONResponse(dataclasses.asdict(diagram))
        render = to_dot if format == "dot" else to_mermaid
        return PlainTextResponse(render(workflow, current=current, visited=visited))

    async def steerable(name: str) -> None:
        if not known(name):
            raise ApiError(404, "not_found", f"no workflow named {name!r}")
        if name in controller.target.removed:
            raise ApiError(
                409, "removed", f"workflow {name!r} was removed from git and is being retired"
            )

    @app.post(
        "/api/v1/workflows/{name}/sync",
        response_model=Accepted,
        status_code=202,
        dependencies=write,
        tags=["steering"],
        summary="Queue a sync now (runs even when in sync)",
        responses=_CONFLICT,
    )
    async def sync(name: str) -> Accepted:
        await steerable(name)
        if name in controller.suspended:
            raise ApiError(
                409, "suspended", f"workflow {name!r} is suspended; resume it before syncing"
            )
        workflow = workflow_model(name)
        if workflow is not None and workflow.spec.suspend:
            raise ApiError(
                409, "suspended", f"workflow {name!r} is suspended in its spec (suspend: true)"
            )
        running = running_run(name)
        if running is not None:
            raise ApiError(
                409,
                "already_running",
                f"workflow {name!r} is already running (run {running}); wait or cancel it",
            )
        controller.request_sync(name)
        return Accepted(message=f"sync of workflow {name} queued", workflow=name)

    @app.post(
        "/api/v1/workflows/{name}/suspend",
        response_model=Accepted,
        dependencies=write,
        tags=["steering"],
        summary="Start no more runs of this workflow until resumed",
        responses=_CONFLICT,
    )
    async def suspend(name: str) -> Accepted:
        await steerable(name)
        await controller.suspend(name)
        running = running_run(name)
        more = f"; run {running} continues (cancel it to stop it)" if running else ""
        return Accepted(message=f"workflow {name} suspended{more}", workflow=name)

    @app.post(
        "/api/v1/workflows/{name}/resume",
        response_model=Accepted,
        dependencies=write,
        tags=["steering"],
        summary="Undo a suspend and check the workflow now",
        responses=_CONFLICT,
    )
    async def resume(name: str) -> Accepted:
        await steerable(name)
        await controller.resume(name)
        return Accepted(message=f"workflow {name} resumed; checking it now", workflow=name)

    # -- runs ----------------------------------------------------------------------------------

    @app.get(
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
        runs = await controller.store.list_runs(workflow, limit=limit, before=before)
        more = len(runs) == limit
        return RunList(
            runs=[RunSummary.of(r) for r in runs],
            next_before=runs[-1].started_at if runs and more else None,
        )

    @app.get(
        "/api/v1/runs/{run_id}",
        response_model=RunDetail,
        dependencies=read,
        tags=["runs"],
        summary="One run with its transition journal",
    )
    async def get_run(run_id: str) -> RunDetail:
        run = await run_or_404(run_id)
        entries = await controller.store.entries(run_id)
        return RunDetail(
            **RunSummary.of(run).model_dump(),
            outputs=run.outputs,
            journal=[JournalEntryOut.of(e) for e in entries],
        )

    @app.post(
        "/api/v1/runs/{run_id}/cancel",
        response_model=Accepted,
        status_code=202,
        dependencies=write,
        tags=["steering"],
        summary="Cancel a run in progress",
        responses=_CONFLICT,
    )
    async def cancel(run_id: str) -> Accepted:
        workflow = controller.running.get(run_id)
        if workflow is None:  # not (or no longer) running here: say why
            run = await run_or_404(run_id)
            if run.status is not RunStatus.RUNNING:
                raise ApiError(409, "not_running", f"run {run_id} already {run.status.value}")
            raise ApiError(409, "not_running", f"run {run_id} is not in progress in this daemon")
        if not controller.cancel(run_id):
            raise ApiError(409, "not_running", f"run {run_id} has just finished")
        return Accepted(
            message=f"run {run_id} of workflow {workflow} is being cancelled",
            workflow=workflow,
            run_id=run_id,
        )

    mount_page(app)
    if settings.api_docs:
        mount_docs(app)
    return app
