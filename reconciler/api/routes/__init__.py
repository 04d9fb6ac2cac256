"""The API's routes, one router per resource, assembled by :func:`reconciler.api.app.create_app`.

:mod:`~reconciler.api.routes.health` (``/healthz``, ``/readyz``),
:mod:`~reconciler.api.routes.workflows` (``/api/v1/workflows``: reads and steering),
:mod:`~reconciler.api.routes.runs` (``/api/v1/runs``: reads and cancel); the webhooks are in
:mod:`reconciler.api.webhooks`, the web page in :mod:`reconciler.api.page`. Every router reads the
daemon through a :class:`~reconciler.api.view.DaemonView` only.
"""

from __future__ import annotations

from typing import Any

from reconciler.api.models import ErrorResponse

CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorResponse}}
"""The ``responses`` entry of a route that may answer 409."""
