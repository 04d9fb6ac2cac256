"""The daemon's HTTP API: FastAPI routes, bearer-token auth, webhooks.

:func:`~reconciler.api.app.create_app` builds the application over one
:class:`~reconciler.api.view.DaemonView` (the daemon's is
:class:`~reconciler.daemon.view.ControllerView`); ``reconciler run`` serves it with uvicorn in the
controller's event loop. The routes are split by resource in :mod:`reconciler.api.routes`.
Bodies are described once in :mod:`reconciler.api.models`; auth lives in
:mod:`reconciler.api.auth`, push webhooks in :mod:`reconciler.api.webhooks`, the security
headers of every answer in :mod:`reconciler.api.headers`, the optional ``/docs`` in
:mod:`reconciler.api.docs`.

The package imports nothing by itself: the command-line client reads the API's bodies
(:mod:`reconciler.api.models`) without loading FastAPI.
"""
