"""The API server's socket takes connections from the moment the daemon logs its address.

``reconciler run`` logs "API listening on ..." once the socket is bound, while uvicorn starts
accepting a moment later; a client (a readiness probe, a test) that connects in between must
wait in the backlog, not be refused.
"""

from __future__ import annotations

import socket

from fastapi import FastAPI

from reconciler.cli.serving import ApiServer


def test_a_connection_made_right_after_bind_is_not_refused() -> None:
    server = ApiServer(FastAPI(), listen="127.0.0.1:0")
    sock = server.bind()
    try:
        host, port = sock.getsockname()[:2]
        with socket.create_connection((host, port), timeout=5):
            pass  # accepted into the backlog before anything serves
    finally:
        sock.close()
