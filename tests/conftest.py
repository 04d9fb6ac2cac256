"""Shared test fixtures. Tests that need a server skip when it is absent, except under CI=true.

The suite runs in parallel (pytest-xdist, ``-n auto`` in ``pyproject.toml``, one module per
worker): the integration and end-to-end tests mostly wait for daemons, servers and time windows,
so :func:`pytest_xdist_auto_num_workers` gives them twice as many workers as there are cores. The
fast tier alone (``pytest tests/unit``) runs in one process: its tests are short and CPU-bound,
and every worker would first import the whole suite. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` or ``-n N``
overrides both.

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
UNIT = Path(__file__).parent / "unit"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Workers for ``-n auto``: none for the fast tier alone, else two per core."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    paths = [Path(arg.partition("::")[0]).resolve() for arg in config.args]
    if paths and all(path.is_relative_to(UNIT) for path in paths):
        return 0
    return 2 * len(os.sched_getaffinity(0))


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
