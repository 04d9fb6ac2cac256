"""``POST /api/v1/previews``: what a branch or commit would do, before it is merged.

The daemon fetches the ref into its clone, loads and validates it with its own policy, runs
the read-only ``observe`` probes of the workflows the ref adds or changes, and compares with
its current target and statuses (:mod:`reconciler.daemon.preview`). No state runs and nothing
is written: no run, no journal entry, no status. It needs role ``operate``: although it changes
nothing, it makes the daemon fetch from the repository and probe live systems, work a
read-only token must not be able to cause at will.

Called by: :func:`reconciler.api.app.create_app`. Calls: :meth:`DaemonView.preview`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from reconciler.api.auth import ApiError
from reconciler.api.models import ErrorResponse, PreviewOut, PreviewRequest
from reconciler.api.view import DaemonView
from reconciler.errors import FetchFailed, PreviewUnavailable, RefNotFound

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 409, 502)
}


def previews_router(view: DaemonView, *, write: list[Any]) -> APIRouter:
    """The preview route of the daemon behind ``view`` (``write``: role ``operate``)."""
    router = APIRouter()

    @router.post(
        "/api/v1/previews",
        response_model=PreviewOut,
        dependencies=write,
        responses=_ERRORS,
        summary="Preview a branch or commit against the live systems (read-only)",
    )
    async def preview(body: PreviewRequest) -> PreviewOut:
        try:
            report = await view.preview(body.ref)
        except RefNotFound as exc:
            raise ApiError(404, "ref_not_found", str(exc)) from None
        except PreviewUnavailable as exc:
            raise ApiError(409, "preview_unavailable", str(exc)) from None
        except FetchFailed as exc:
            raise ApiError(502, "fetch_failed", str(exc)) from None
        return PreviewOut.model_validate(report.as_dict())

    return router
