"""Shared test fixtures. Tests that need a server skip when it is absent, except under CI=true.

``repo`` is an empty git repository (branch ``main``) at ``tmp_path / "repo"`` for tests that
commit workflows and point a source, controller or daemon at it; a module that needs another kind
of repository defines its own ``repo``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.support.repos import init_repo

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


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository on branch ``main`` at ``tmp_path / "repo"``."""
    return init_repo(tmp_path / "repo")
