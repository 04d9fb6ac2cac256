"""``/healthz`` and ``/readyz``: the probes of the chart and of load balancers.

Called by: :func:`reconciler.api.create_app`. Calls: the :class:`~reconciler.api.view.DaemonView`
(readiness and the store's health) through
:func:`~reconciler.telemetry.instrument.check_store`, which keeps ``reconciler_store_up`` to what
this probe sees.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from reconciler.api.models import Alive, Readiness
from reconciler.api.view import DaemonView
from reconciler.telemetry.instrument import check_store

READY_TIMEOUT = 3.0
"""Seconds ``/readyz`` waits for the store (the chart's readiness probe gives up after 5)."""


def health_router(view: DaemonView) -> APIRouter:
    """The probes of the daemon behind ``view``; neither needs a token."""
    router = APIRouter(tags=["probes"])

    @router.get("/healthz", response_model=Alive, summary="The process is alive")
    async def healthz() -> Alive:
        return Alive()

    @router.get(
        "/readyz",
        response_model=Readiness,
        summary="Synced from git once and the store usable (file present, tables there)",
        responses={503: {"model": Readiness}},
    )
    async def readyz() -> JSONResponse:
        reasons = []
        if not view.is_ready():
            reasons.append("the repository has not been loaded yet")
        problem = await check_store(view.store_problem, within=READY_TIMEOUT)
        if problem is not None:
            reasons.append(problem)
        body = Readiness(
            ready=not reasons,
            reason="; ".join(reasons),
            revision=view.revision() or None,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503 if reasons else 200)

    return router
