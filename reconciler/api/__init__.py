"""The daemon's HTTP API: FastAPI routes, bearer-token auth, webhooks.

:func:`create_app` (:mod:`reconciler.api.app`) builds the application over one
:class:`~reconciler.api.view.DaemonView` (the daemon's is
:class:`~reconciler.daemon.view.ControllerView`); ``reconciler run`` serves it with uvicorn in the
controller's event loop. The routes are split by resource in :mod:`reconciler.api.routes`.
Bodies are described once in :mod:`reconciler.api.models`; auth lives in
:mod:`reconciler.api.auth`, push webhooks in :mod:`reconciler.api.webhooks`, the security
headers of every answer in :mod:`reconciler.api.headers`, the optional ``/docs`` in
:mod:`reconciler.api.docs`.
"""

from reconciler.api.app import create_app

__all__ = ["create_app"]
