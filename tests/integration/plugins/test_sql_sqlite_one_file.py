"""A workflow's SQLite connection reaches its own database file and no other.

``ATTACH DATABASE`` and ``VACUUM INTO`` name files inside SQL text, where the grants that check
the DSN never look: a committer could read or write the daemon's store or any file its user can.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from reconciler_plugins.sql import SqlExec, SqlExecRequest

from reconciler.errors import PathNotAllowed
from reconciler.grants import Grants
from tests.integration.plugins.conftest import ContextFactory


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A SQLite file standing for the daemon's store, in a data dir the grants deny."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "store.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("create table tokens (value text)")
        conn.execute("insert into tokens values ('daemon-only')")
    conn.close()
    return path


async def test_sql_exec_attach_of_the_daemons_store_is_refused(
    tmp_path: Path, store: Path, make_context: ContextFactory
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    context = make_context()
    context.workdir = work
    context.grants = Grants.for_daemon(
        workdir=work, file_roots=None, allow_env=[], deny=[store.parent]
    )
    plugin = SqlExec()
    try:
        with pytest.raises(PathNotAllowed, match="ATTACH"):
            await plugin.run(
                SqlExecRequest.model_validate(
                    {
                        "dsn": "sqlite:///mine.db",
                        "sql": [
                            f"attach database '{store}' as s",
                            "insert into s.tokens values ('written by a commit')",
                        ],
                    }
                ),
                context,
            )
    finally:
        await plugin.close()
    with sqlite3.connect(store) as conn:
        rows = conn.execute("select value from tokens").fetchall()
    conn.close()
    assert rows == [("daemon-only",)]


async def test_sql_exec_vacuum_into_a_path_outside_the_roots_writes_nothing(
    tmp_path: Path, make_context: ContextFactory
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside.db"
    context = make_context()
    context.workdir = work
    context.grants = Grants.for_daemon(workdir=work, file_roots=None, allow_env=[])
    plugin = SqlExec()
    try:
        with pytest.raises(PathNotAllowed, match="VACUUM INTO"):
            await plugin.run(
                SqlExecRequest.model_validate(
                    {
                        "dsn": "sqlite:///mine.db",
                        "sql": ["create table t (x int)", f"vacuum into '{outside}'"],
                    }
                ),
                context,
            )
    finally:
        await plugin.close()
    assert not outside.exists()
    assert sorted(os.listdir(tmp_path)) == ["work"]
