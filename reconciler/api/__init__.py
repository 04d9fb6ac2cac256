"""The daemon's HTTP API: FastAPI routes, bearer-token auth, webhooks (DESIGN §6).

:func:`create_app` (:mod:`reconciler.api.app`) builds the application for one
:class:`~reconciler.daemon.controller.Controller`; ``reconciler run`` serves it with uvicorn in the
controller's event loop. Bodies are described once in :mod:`reconciler.api.models`; auth lives in
:mod:`reconciler.api.auth`, push webhooks in :mod:`reconciler.api.webhooks`, the security headers
of every answer in :mod:`reconciler.api.headers`, the optional ``/docs`` in
:mod:`reconciler.api.docs`.
"""

from reconciler.api.app import create_app

__all__ = ["create_app"]
