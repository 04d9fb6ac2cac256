"""The interactive API documentation at ``/docs`` (Swagger UI), off unless ``--api-docs``.

FastAPI's own ``/docs`` and ``/redoc`` load their scripts from a CDN and start them with an
inline script, on the daemon's origin, where the page keeps the API token: a compromised CDN
would get it. So :func:`reconciler.api.app.create_app` turns those off, and when the operator asks
for documentation (``api_docs``), :func:`mount_docs` serves Swagger UI from the files the
``fastapi-offline`` package ships (Swagger UI 5, which reads OpenAPI 3.1): the HTML and its
start-up script are ours (``apidocs/``; that package's own pages start Swagger UI with an inline
script), the bundle and stylesheet are the package's, and nothing is fetched from anywhere but
the daemon, so it works offline and under the strict Content-Security-Policy of
:mod:`reconciler.api.headers`. ``/openapi.json`` is served either way (the CLI and tests read
it); it describes routes, never a secret.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

PAGES = Path(__file__).with_name("apidocs")
SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))
"""Swagger UI's files (``swagger-ui-bundle.js``, ``swagger-ui.css``, ``favicon.png``)."""


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs``, its start-up script at ``/docs/init.js`` and its files
    under ``/docs/assets``."""
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(PAGES / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_script() -> FileResponse:
        return FileResponse(PAGES / "init.js", media_type="text/javascript")
