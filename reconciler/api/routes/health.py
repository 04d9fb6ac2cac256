"""``/healthz`` and ``/readyz``: the probes of the chart and of load balancers.

``/readyz`` is what keeps traffic (the page, the API, webhooks) away from a daemon that would
answer with stale or no data. It is 503, with the reason in plain words, when:

- the repository has not been loaded yet (with git's message when the fetch is failing);
- the repository has failed to fetch for more than :data:`SOURCE_FAILING_POLLS` poll intervals
  since its last success: the daemon keeps reconciling the last good revision, but commits
  pushed since are not applied, so the page and the API would lie about what git says;
- the store is not usable (it does not answer, its file or tables are gone).

A single failed fetch does not make the daemon unready: git servers hiccup, and the source
retries within seconds. The body's ``source`` says how fetching goes either way; the page shows
it as a banner. Every git message passes through the view masked (no credential of a URL).

Called by: :func:`reconciler.api.app.create_app`. Calls: the :class:`~reconciler.api.view.DaemonView`
(readiness, the source's last error and success, the store's health) and
:func:`~reconciler.telemetry.instrument.check_store`, which keeps ``reconciler_store_up`` to
what this probe sees.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from reconciler.api.models import Alive, Readiness, SourceHealth
from reconciler.api.view import DaemonView
from reconciler.clock import utcnow
from reconciler.telemetry.instrument import check_store

READY_TIMEOUT = 3.0
"""Seconds ``/readyz`` waits for the store (the chart's readiness probe gives up after 5)."""

SOURCE_FAILING_POLLS = 3
"""Poll intervals without a successful fetch (while fetches fail) before ``/readyz`` says 503."""


def source_problem(view: DaemonView, source: SourceHealth, now: datetime) -> str | None:
    """Why the repository makes the daemon unready, or None (see the module docstring)."""
    error, synced = source.error, source.last_success_at
    if error is None:
        return None
    if not view.is_ready():
        return f"the repository has not been loaded yet: {error}"
    poll = view.settings.poll_interval.total_seconds()
    if synced is not None and (now - synced).total_seconds() <= SOURCE_FAILING_POLLS * poll:
        return None
    since = f"since {synced.isoformat(timespec='seconds')}" if synced else "since the start"
    if source.signature_refused:
        return (
            f"no revision of the repository has been accepted {since} (over "
            f"{SOURCE_FAILING_POLLS} poll intervals of {poll:g} s): its head commit is not "
            f"signed by an allowed key, the last verified revision stays applied: {error}"
        )
    return (
        f"the repository has not been fetched {since} (over {SOURCE_FAILING_POLLS} poll "
        f"intervals of {poll:g} s); changes pushed since are not applied: {error}"
    )


def health_router(view: DaemonView) -> APIRouter:
    """The probes of the daemon behind ``view``; neither needs a token."""
    router = APIRouter(tags=["probes"])

    @router.get("/healthz", response_model=Alive, summary="The process is alive")
    async def healthz() -> Alive:
        return Alive()

    @router.get(
        "/readyz",
        response_model=Readiness,
        summary="Synced from git lately and the store usable (file present, tables there)",
        responses={503: {"model": Readiness}},
    )
    async def readyz() -> JSONResponse:
        reasons = []
        source = SourceHealth(
            error=view.source_error(),
            last_success_at=view.source_synced_at(),
            signature_refused=view.source_signature_refused(),
        )
        fetching = source_problem(view, source, utcnow())
        if fetching is not None:
            reasons.append(fetching)
        elif not view.is_ready():
            reasons.append("the repository has not been loaded yet")
        problem = await check_store(view.store_problem, within=READY_TIMEOUT)
        if problem is not None:
            reasons.append(problem)
        body = Readiness(
            ready=not reasons,
            reason="; ".join(reasons),
            revision=view.revision() or None,
            source=source,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503 if reasons else 200)

    return router
