"""Shared test fixtures. Tests that need a server skip when it is absent, except under CI=true."""

from __future__ import annotations

import os
import socket

import pytest

IN_CI = os.environ.get("CI") == "true"


def require_server(host: str, port: int, what: str) -> None:
    """Skip (or fail under CI=true) unless ``host:port`` accepts connections."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{what} is not reachable at {host}:{port} ({exc})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
