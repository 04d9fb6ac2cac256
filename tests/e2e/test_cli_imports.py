"""One-shot commands import only what they use: never the daemon's server, web or database stack.

Every command starts a new Python process, so what it imports is most of what it costs. The
daemon (``reconciler run``) needs FastAPI, uvicorn and SQLAlchemy; ``validate``, ``apply``,
``--help``, the API client commands and every other one-shot command do not, and must not pay
for them. Commands import a command module only when it runs and a plugin only when a workflow
uses it, so reading workflows that only use ``file.*`` imports no plugin's client library
either (NATS, Redis, SQLAlchemy, hvac).
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

PLUGIN_CLIENTS = {"sqlalchemy", "nats", "redis", "hvac", "requests"}
"""What the built-in plugins import (the ``sql.*`` plugins validate a DSN with SQLAlchemy's URL
parser; ``vault.*`` use hvac, which uses requests): only commands that load every plugin
(``schema``, ``plugins``) may import them, or a workflow that uses one of those plugins."""

COMMAND_MODULES = {
    "reconciler.cli.converge",
    "reconciler.cli.graph",
    "reconciler.cli.plugins",
    "reconciler.cli.remote",
    "reconciler.cli.run",
    "reconciler.cli.schema",
    "reconciler.cli.secrets",
    "reconciler.cli.test",
    "reconciler.cli.tokens",
    "reconciler.cli.validate",
}
"""The modules of the commands: each one imported only when its command runs, or a command
that runs uses its helpers (``plan``/``apply`` read files as ``validate`` does)."""

SERVER = ("--server", "http://127.0.0.1:9", "--token", "not-a-daemon")
"""A client command's way to a daemon that is not there: it fails at once, after its imports."""

PROBE = """
import json, sys
sys.argv = ["reconciler", *json.loads(sys.argv[1])]
from reconciler.cli import main
try:
    main()
except SystemExit:
    pass
print("\\nIMPORTED " + json.dumps(sorted({m.partition(".")[0] for m in sys.modules})))
print("\\nMODULES " + json.dumps(sorted(m for m in sys.modules if m.startswith("reconciler.cli."))))
"""


def run_probe(*args: str, cwd: Path) -> tuple[set[str], set[str]]:
    """The top-level packages a ``reconciler`` command line imports, run to its end, and the
    modules of ``reconciler.cli`` it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    rest, _, modules = done.stdout.rpartition("\nMODULES ")
    packages = rest.rpartition("\nIMPORTED ")[2]
    assert packages and modules, (done.stdout, done.stderr)
    return set(json.loads(packages)), set(json.loads(modules))


def imported_by(*args: str, cwd: Path) -> set[str]:
    """The top-level packages a ``reconciler`` command line imports, run to its end."""
    return run_probe(*args, cwd=cwd)[0]


ONE_SHOT = [
    (["--help"], set(), set()),
    (["--version"], set(), set()),
    (["validate", "web.yaml"], set(), {"validate"}),
    (["plan", "web.yaml"], set(), {"converge", "validate"}),
    (["apply", "web.yaml"], set(), {"converge", "validate"}),
    (["test", "web.yaml"], set(), {"test", "converge", "validate"}),
    (["graph", "web.yaml"], set(), {"graph"}),
    (["graph", "web.yaml", "--format", "dot"], set(), {"graph"}),
    (["schema"], PLUGIN_CLIENTS, {"schema"}),
    (["plugins"], PLUGIN_CLIENTS, {"plugins"}),
    (["plugins", "file.write"], set(), {"plugins"}),
    (["validate", "--help"], set(), {"validate"}),
    (["status", *SERVER], set(), {"remote"}),
    (["status", "web", *SERVER], set(), {"remote"}),
    (["runs", *SERVER], set(), {"remote"}),
    (["sync", "web", *SERVER], set(), {"remote"}),
    (["suspend", "web", *SERVER], set(), {"remote"}),
    (["resume", "web", *SERVER], set(), {"remote"}),
    (["cancel", "0123abcd", *SERVER], set(), {"remote"}),
    (["approve", "0123abcd", *SERVER], set(), {"remote"}),
    (["approvals", *SERVER], set(), {"remote"}),
    (["secrets", "encrypt", "--key", "k"], {"hvac", "requests"}, {"secrets"}),
    (["tokens", "hash", "-n", "ci"], set(), {"tokens"}),
]
"""Every one-shot and client command: its words, what it may import beyond the rule, and the
command modules it imports (its own, and those whose helpers it uses)."""


@pytest.mark.parametrize(
    ("args", "allowed", "commands"),
    ONE_SHOT,
    ids=[" ".join(args) for args, _, _ in ONE_SHOT],
)
def test_a_one_shot_command_imports_nothing_of_the_daemons_stack(
    tmp_path: Path, args: list[str], allowed: set[str], commands: set[str]
) -> None:
    put(tmp_path, file_workflow("web", tmp_path / "web.conf", "listen 80\n", keep=True))
    packages, modules = run_probe(*args, cwd=tmp_path)
    assert sorted(packages & (DAEMON_STACK | PLUGIN_CLIENTS) - allowed) == []
    assert {m for m in modules if m in COMMAND_MODULES} == {
        f"reconciler.cli.{name}" for name in commands
    }


SQL_WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: report}
spec:
  start: count
  states:
    count:
      action: {plugin: sql.query, with: {dsn: "sqlite:///report.db", query: "select 1"}}
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
"""


def test_a_workflow_using_a_plugin_imports_that_plugins_client_library(tmp_path: Path) -> None:
    (tmp_path / "report.yaml").write_text(SQL_WORKFLOW)
    put(tmp_path, file_workflow("web", tmp_path / "web.conf", "listen 80\n"))
    packages = imported_by("validate", "report.yaml", "web.yaml", cwd=tmp_path)
    assert "sqlalchemy" in packages
    assert not {"nats", "redis", "hvac"} & packages


def test_the_daemon_command_does_import_its_stack_so_the_check_above_can_fail(
    tmp_path: Path,
) -> None:
    imported = imported_by(
        "run", "--listen", "not-an-address", "--repo", str(tmp_path), cwd=tmp_path
    )
    assert {"fastapi", "uvicorn", "sqlalchemy", "git"} <= imported
