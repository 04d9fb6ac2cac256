"""Security headers on every answer of the daemon's HTTP endpoint (page, API, probes, metrics).

The page (:mod:`reconciler.api.page`) keeps the API token the operator types in the browser's
session storage, on the daemon's origin: a script from anywhere else, or the page framed by
another site, could take it or click for the user. :class:`SecurityHeaders` wraps the whole
ASGI application (so no route can forget them) and adds:

* ``Content-Security-Policy``: :data:`CONTENT_SECURITY_POLICY`, scripts, styles and every fetch
  from the daemon's own origin only, no inline script or style, no plugins, no framing, no
  ``<base>`` rewriting, forms posting only to the daemon;
* ``X-Frame-Options: DENY`` (framing, for browsers older than ``frame-ancestors``);
* ``X-Content-Type-Options: nosniff`` (a JSON answer is never run as a script);
* ``Referrer-Policy: no-referrer`` (links out of the page carry no URL of the daemon).

What callers may rely on: every HTTP response carries the four headers; a route that sets one
of them itself keeps its own value (the middleware only adds what is missing).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The page and the API docs need nothing else: their scripts and styles are files served by
the daemon; ``data:`` images are the icons inside the API docs' stylesheet."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
