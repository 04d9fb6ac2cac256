"""One-shot commands import only what they use: never the daemon's server, web or database stack.

Every command starts a new Python process, so what it imports is most of what it costs. The
daemon (``reconciler run``) needs FastAPI, uvicorn and SQLAlchemy; ``validate``, ``graph``,
``--help`` and the API client commands do not, and must not pay for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.workflows import file_workflow, put

DAEMON_STACK = {
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "psycopg",
    "git",
}
"""Packages only the daemon (and ``plan``/``apply`` with a store, ``plan --ref``) may import:
its server and database stack, and gitpython."""

PLUGIN_CLIENTS = {"sqlalchemy"}
"""What loading the built-in plugins still imports: the ``sql.*`` plugins validate a DSN with
SQLAlchemy's URL parser. Commands that read workflows load the plugins (their schemas)."""

PROBE = """
import json, sys
sys.argv = ["reconciler", *json.loads(sys.argv[1])]
from reconciler.cli import main
try:
    main()
except SystemExit:
    pass
print("\\nIMPORTED " + json.dumps(sorted({m.partition(".")[0] for m in sys.modules})))
"""


def imported_by(*args: str, cwd: Path) -> set[str]:
    """The top-level packages a ``reconciler`` command line imports, run to its end."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    marker = done.stdout.rpartition("\nIMPORTED ")[2]
    assert marker, (done.stdout, done.stderr)
    return set(json.loads(marker))


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["--help"], set()),
        (["--version"], set()),
        (["graph", "web.yaml"], set()),
        (["status", "--server", "http://127.0.0.1:9"], set()),
        (["validate", "web.yaml"], PLUGIN_CLIENTS),
        (["plan", "web.yaml"], PLUGIN_CLIENTS),
        (["schema"], PLUGIN_CLIENTS),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_one_shot_command_imports_nothing_of_the_daemons_stack(
    tmp_path: Path, args: list[str], allowed: set[str]
) -> None:
    put(tmp_path, file_workflow("web", tmp_path / "web.conf", "listen 80\n"))
    assert sorted(imported_by(*args, cwd=tmp_path) & (DAEMON_STACK - allowed)) == []


def test_the_daemon_command_does_import_its_stack_so_the_check_above_can_fail(
    tmp_path: Path,
) -> None:
    imported = imported_by(
        "run", "--listen", "not-an-address", "--repo", str(tmp_path), cwd=tmp_path
    )
    assert {"fastapi", "uvicorn", "sqlalchemy", "git"} <= imported
