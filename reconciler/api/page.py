"""The web page at ``/``: a static single page that reads the JSON API and updates itself live.

It sits beside the API (:mod:`reconciler.api.app` mounts it) and, like the API, only reads the
store and enqueues syncs. Everything it needs (HTML, script, styles) ships inside the package and
is served by the daemon, so the page works with no internet access. The script inserts data
with ``textContent`` only, and the API it reads never carries a secret.

What users rely on: the page never passes old data off as current. While the daemon cannot
fetch its repository, a banner gives git's message (``/readyz``'s ``source``, every credential
masked by the daemon); when a refresh fails, the rows stay, dimmed, under "daemon unreachable,
data as of T" with the time of the last refresh that succeeded.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")


def mount_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
