"""The daemon's HTTP API: FastAPI on the ``--listen`` port, next to the controller.

:func:`create_app` assembles the application from the routers of :mod:`reconciler.api.routes`
(one per resource), the webhooks (:mod:`reconciler.api.webhooks`), the web page
(:mod:`reconciler.api.page`) and ``/metrics`` (:data:`reconciler.telemetry.metrics.REGISTRY`),
and gives them their shared error handling. Every route sees the daemon only through a
:class:`~reconciler.api.view.DaemonView`: reads (statuses, specs, problems, runs, the journal,
readiness) and the steering seams (sync, suspend, resume, cancel; webhooks ask for a fetch).

Called by: ``reconciler run`` (:mod:`reconciler.cli.run`), which serves the app with uvicorn in
the controller's event loop; the remote CLI commands (:mod:`reconciler.cli.remote`) and the web
page are its clients.

Routes: ``/healthz``, ``/readyz``, ``/metrics``, ``/api/v1/workflows[/{name}[/graph]]``,
``/api/v1/runs[/{id}]``, ``POST /api/v1/workflows/{name}/sync|suspend|resume``,
``POST /api/v1/runs/{id}/cancel``, ``/hooks/github|gitlab|generic``; OpenAPI at
``/openapi.json``, Swagger UI at ``/docs`` only with ``api_docs`` (:mod:`reconciler.api.docs`,
local files). Every answer carries the security headers of :mod:`reconciler.api.headers`. Every
mutation needs the bearer token (:mod:`reconciler.api.auth`); reads need it when ``read_auth``
is ``token``. Every error is ``{"error": {"code", "message"}}``
(:class:`~reconciler.api.models.ErrorResponse`). Response bodies are the models of
:mod:`reconciler.api.models`; none carries a secret value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.api.auth import ApiError, Auth
from reconciler.api.docs import mount_docs
from reconciler.api.headers import SecurityHeaders
from reconciler.api.models import ErrorResponse
from reconciler.api.page import mount_page
from reconciler.api.routes.health import READY_TIMEOUT, health_router
from reconciler.api.routes.previews import previews_router
from reconciler.api.routes.runs import runs_router
from reconciler.api.routes.workflows import workflows_router
from reconciler.api.view import DaemonView
from reconciler.api.webhooks import hooks_router
from reconciler.errors import StoreError
from reconciler.telemetry.instrument import check_store
from reconciler.telemetry.metrics import REGISTRY
from reconciler.version import __version__

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


class _AsgiEndpoint:
    """An ASGI app served at one exact path (a mount would redirect ``/metrics`` to
    ``/metrics/``; Prometheus scrapes the former), after awaiting ``before`` if given."""

    def __init__(self, app: ASGIApp, before: Callable[[], Awaitable[object]] | None = None) -> None:
        self.app = app
        self.before = before

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.before is not None:
            await self.before()
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


def create_app(view: DaemonView) -> FastAPI:
    """The API of the daemon behind ``view`` (its settings give the token, read policy, webhook
    secret and whether ``/docs`` is served); ``reconciler run`` passes a
    :class:`~reconciler.daemon.view.ControllerView`."""
    settings = view.settings
    auth = Auth.of(
        settings.api_token,
        read_auth=settings.read_auth,
        listen=settings.listen,
        tokens_file=settings.api_tokens_file,
    )
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

    # Each scrape asks the store first, so reconciler_store_up says what /readyz would.
    store_check = partial(check_store, view.store_problem, within=READY_TIMEOUT)
    metrics = _AsgiEndpoint(make_asgi_app(registry=REGISTRY), before=store_check)
    app.router.routes.append(Route("/metrics", metrics))
    app.include_router(hooks_router(view))
    app.include_router(health_router(view))
    app.include_router(workflows_router(view, read=read, write=write))
    app.include_router(runs_router(view, read=read, write=write))
    app.include_router(previews_router(view, write=write))
    mount_page(app)
    if settings.api_docs:
        mount_docs(app)
    return app
