"""``sql.query`` and ``sql.exec`` against a real PostgreSQL (127.0.0.1:5432, db ``test``) and SQLite.

Each PostgreSQL test works in its own schema (dropped afterwards); roles get unique names.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from reconciler_plugins._common import AuthenticationFailed
from reconciler_plugins.sql import (
    InvalidSQL,
    SQLError,
    SqlExec,
    SqlExecRequest,
    SqlQuery,
    SqlQueryRequest,
)

from reconciler.errors import Conflict, ConnectionFailed, NotFound, PathNotAllowed, Timeout
from reconciler.grants import Grants
from tests.conftest import require_server
from tests.integration.plugins.conftest import CANARY, ContextFactory
from tests.support.waiting import until_async

PG = "postgresql://postgres@127.0.0.1:5432/test"
PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
async def pg(unique: str) -> AsyncIterator[str]:
    """A fresh schema ``s_<unique>`` with table ``items(id int primary key, name text)``."""
    require_server("127.0.0.1", 5432, "PostgreSQL")
    schema = f"s_{unique}"
    async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as conn:
        await conn.execute(f"create schema {schema}")
        await conn.execute(f"create table {schema}.items (id int primary key, name text)")
    try:
        yield schema
    finally:
        async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as conn:
            await conn.execute(f"drop schema {schema} cascade")


async def pg_rows(sql: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as conn:
        cur = await conn.execute(sql)
        return await cur.fetchall()


def exec_request(**fields: Any) -> SqlExecRequest:
    return SqlExecRequest.model_validate(fields)


def query_request(**fields: Any) -> SqlQueryRequest:
    return SqlQueryRequest.model_validate(fields)


# ------------------------------------------------------------------------------ success paths


async def test_exec_then_query_with_bound_parameters_on_postgresql(
    pg: str, make_context: ContextFactory
) -> None:
    plugin, query = SqlExec(), SqlQuery()
    try:
        hostile = "x'); drop table items; --"
        first = await plugin.run(
            exec_request(
                dsn=PG,
                sql=[
                    f"insert into {pg}.items values (1, :a)",
                    f"insert into {pg}.items values (2, :b)",
                ],
                params={"a": "one", "b": hostile},
            ),
            make_context(),
        )
        assert (first.changed, first.row_counts) == (True, [1, 1])

        answer = await query.run(
            query_request(
                dsn=PG,
                query=f"select id, name from {pg}.items where id >= :low order by id",
                params={"low": 1},
            ),
            make_context(),
        )
        assert answer.rows == [{"id": 1, "name": "one"}, {"id": 2, "name": hostile}]
        assert (answer.row_count, answer.columns, answer.changed) == (2, ["id", "name"], False)
    finally:
        await plugin.close()
        await query.close()


async def test_second_run_of_a_converging_update_reports_nothing_changed(
    pg: str, make_context: ContextFactory
) -> None:
    await pg_rows(f"insert into {pg}.items values (1, 'old') returning id")
    plugin = SqlExec()
    request = exec_request(
        dsn=PG,
        sql=f"update {pg}.items set name = :name where id = 1 and name is distinct from :name",
        params={"name": "new"},
    )
    try:
        first = await plugin.run(request, make_context())
        second = await plugin.run(request, make_context())
    finally:
        await plugin.close()
    assert (first.changed, first.row_counts) == (True, [1])
    assert (second.changed, second.row_counts) == (False, [0])


async def test_unless_guard_skips_the_statements(pg: str, make_context: ContextFactory) -> None:
    plugin = SqlExec()
    request = exec_request(
        dsn=PG,
        unless=f"select 1 from {pg}.items where id = :id",
        sql=f"insert into {pg}.items values (:id, 'created')",
        params={"id": 7},
    )
    try:
        first = await plugin.run(request, make_context())
        second = await plugin.run(request, make_context())
    finally:
        await plugin.close()
    assert (first.changed, first.skipped) == (True, False)
    assert (second.changed, second.skipped) == (False, True)
    assert await pg_rows(f"select id from {pg}.items") == [(7,)]


async def test_a_role_password_is_a_bound_parameter_and_never_shown(
    unique: str, make_context: ContextFactory
) -> None:
    require_server("127.0.0.1", 5432, "PostgreSQL")
    role = f"r_{unique}"
    plugin = SqlExec()
    request = exec_request(
        dsn=PG, sql=f"create role {role} login password :pw", params={"pw": CANARY + "'q"}
    )
    try:
        created = await plugin.run(request, make_context())
        assert created.changed
        with pytest.raises(Conflict) as caught:
            await plugin.run(request, make_context())
        assert CANARY not in str(caught.value) and CANARY not in repr(caught.value.details)
        # the role can log in with exactly that password
        async with await psycopg.AsyncConnection.connect(
            f"host=127.0.0.1 dbname=test user={role}", password=CANARY + "'q"
        ) as conn:
            cur = await conn.execute("select current_user")
            assert await cur.fetchone() == (role,)
    finally:
        await plugin.run(exec_request(dsn=PG, sql=f"drop role if exists {role}"), make_context())
        await plugin.close()


async def test_sqlite_paths_are_relative_to_the_workdir(
    tmp_path: Path, make_context: ContextFactory
) -> None:
    plugin, query = SqlExec(), SqlQuery()
    try:
        await plugin.run(
            exec_request(
                dsn="sqlite:///state.db",
                sql=[
                    "create table kv (k text primary key, v text)",
                    "insert into kv values ('a', :v)",
                ],
                params={"v": "1"},
            ),
            make_context(),
        )
        answer = await query.run(
            query_request(dsn="sqlite:///state.db", query="select k, v from kv"), make_context()
        )
    finally:
        await plugin.close()
        await query.close()
    assert (tmp_path / "state.db").is_file()
    assert answer.rows == [{"k": "a", "v": "1"}]


@pytest.mark.parametrize(
    "dsn",
    [
        "sqlite:///../outside.db",
        "sqlite:///{outside}",
        "sqlite:///file:../outside.db?uri=true",
        "sqlite:///data/repos/clone.git/hooks/post-merge",
    ],
)
async def test_a_sqlite_file_the_grants_refuse_is_never_opened(
    tmp_path: Path, make_context: ContextFactory, dsn: str
) -> None:
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    context = make_context()
    context.workdir = work
    context.grants = Grants.for_daemon(
        workdir=work, file_roots=None, allow_env=[], deny=[work / "data"]
    )
    plugin = SqlExec()
    try:
        with pytest.raises(PathNotAllowed):
            await plugin.run(
                exec_request(dsn=dsn.format(outside=tmp_path / "outside.db"), sql="select 1"),
                context,
            )
    finally:
        await plugin.close()
    assert os.listdir(tmp_path) == ["work"] and os.listdir(work / "data") == []


async def test_a_libpq_file_outside_the_roots_is_refused_before_connecting(
    make_context: ContextFactory,
) -> None:
    query = SqlQuery()
    try:
        with pytest.raises(PathNotAllowed, match="/etc/shadow"):
            await query.run(
                query_request(dsn=f"{PG}?sslmode=require&sslkey=/etc/shadow", query="select 1"),
                make_context(),
            )
    finally:
        await query.close()


async def test_query_rows_are_capped_and_secrets_redacted(
    tmp_path: Path, make_context: ContextFactory
) -> None:
    query = SqlQuery()
    try:
        answer = await query.run(
            query_request(
                dsn=f"sqlite:///{tmp_path}/x.db",
                query="with recursive n(i) as (select 1 union all select i + 1 from n where i < 50)"
                " select i, :s as s from n",
                params={"s": f"has {CANARY}"},
                maxRows=10,
            ),
            make_context(),
        )
    finally:
        await query.close()
    assert (answer.row_count, answer.truncated) == (10, True)
    assert answer.rows[0] == {"i": 1, "s": "has ***"}


# ------------------------------------------------------------------------------ named errors


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_each_driver_error_has_its_name_and_retryable_flag(
    backend: str, pg_or_sqlite: dict[str, str], make_context: ContextFactory
) -> None:
    dsn, table = pg_or_sqlite[backend], pg_or_sqlite[backend + "_table"]
    plugin = SqlExec()
    try:
        with pytest.raises(InvalidSQL) as syntax:
            await plugin.run(exec_request(dsn=dsn, sql="selec 1"), make_context())
        assert not syntax.value.retryable

        with pytest.raises(NotFound) as missing:
            await plugin.run(exec_request(dsn=dsn, sql="delete from no_such_table"), make_context())
        assert not missing.value.retryable

        await plugin.run(
            exec_request(dsn=dsn, sql=f"insert into {table} values (1, 'a')"), make_context()
        )
        with pytest.raises(Conflict) as duplicate:
            await plugin.run(
                exec_request(dsn=dsn, sql=f"insert into {table} values (1, 'b')"), make_context()
            )
        assert not duplicate.value.retryable
        # the server's own words are in the message (so in the run's error and the status)
        unknown, exists = SERVER_SAYS[backend]
        assert unknown in str(missing.value)
        assert exists in str(duplicate.value)
    finally:
        await plugin.close()


SERVER_SAYS = {
    "postgresql": (
        'relation "no_such_table" does not exist',
        "DETAIL: Key (id)=(1) already exists",
    ),
    "sqlite": ("no such table: no_such_table", "UNIQUE constraint failed: items.id"),
}
"""What each database says about an unknown table and a duplicate key."""


@pytest.fixture
def pg_or_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    backend = request.node.callspec.params["backend"]
    if backend == "sqlite":
        import sqlite3

        path = tmp_path / "errors.db"
        with sqlite3.connect(path) as conn:
            conn.execute("create table items (id int primary key, name text)")
        return {"sqlite": f"sqlite:///{path}", "sqlite_table": "items"}
    schema: str = request.getfixturevalue("pg")
    return {"postgresql": PG, "postgresql_table": f"{schema}.items"}


async def test_unreachable_server_is_retryable_and_masks_the_password(
    make_context: ContextFactory,
) -> None:
    plugin = SqlQuery()
    try:
        with pytest.raises(ConnectionFailed) as caught:
            await plugin.run(
                query_request(dsn=f"postgresql://app:{CANARY}@127.0.0.1:1/test", query="select 1"),
                make_context(),
            )
    finally:
        await plugin.close()
    assert caught.value.retryable
    assert CANARY not in str(caught.value)
    assert "//***@127.0.0.1:1/test" in str(caught.value)


async def test_unknown_database_is_not_found_and_unknown_role_fails_authentication(
    make_context: ContextFactory, unique: str
) -> None:
    require_server("127.0.0.1", 5432, "PostgreSQL")
    plugin = SqlQuery()
    try:
        with pytest.raises((NotFound, AuthenticationFailed)):
            await plugin.run(
                query_request(
                    dsn=f"postgresql://postgres@127.0.0.1/nodb_{unique}", query="select 1"
                ),
                make_context(),
            )
    finally:
        await plugin.close()


async def test_a_failing_statement_rolls_back_the_whole_action(
    pg: str, make_context: ContextFactory
) -> None:
    plugin = SqlExec()
    try:
        with pytest.raises(Conflict):
            await plugin.run(
                exec_request(
                    dsn=PG,
                    sql=[
                        f"insert into {pg}.items values (1, 'a')",
                        f"insert into {pg}.items values (1, 'again')",
                    ],
                ),
                make_context(),
            )
    finally:
        await plugin.close()
    assert await pg_rows(f"select * from {pg}.items") == []


async def test_sql_query_cannot_write(pg: str, make_context: ContextFactory) -> None:
    query = SqlQuery()
    try:
        with pytest.raises(SQLError) as caught:
            await query.run(
                query_request(dsn=PG, query=f"insert into {pg}.items values (1, 'x')"),
                make_context(),
            )
    finally:
        await query.close()
    assert "read-only" in str(caught.value)
    assert await pg_rows(f"select * from {pg}.items") == []


# ----------------------------------------------------------------------- cancellation, deadline


async def test_cancelled_mid_transaction_leaves_nothing_behind(
    pg: str, make_context: ContextFactory
) -> None:
    plugin = SqlExec()
    request = exec_request(
        dsn=PG,
        sql=[f"insert into {pg}.items values (1, 'half')", "select pg_sleep(30)"],
    )
    try:
        task = asyncio.create_task(plugin.run(request, make_context()))
        await until_async(  # the insert is in: the transaction has gone on to its second statement
            lambda: pg_rows(
                "select 1 from pg_stat_activity where query like 'select pg_sleep(30)%'"
            ),
            20,
            "the transaction to reach pg_sleep",
            interval=0.05,
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the engine stays usable and the row never committed
        again = await plugin.run(
            exec_request(dsn=PG, sql=f"insert into {pg}.items values (2, 'whole')"), make_context()
        )
    finally:
        await plugin.close()
    assert again.changed
    assert await pg_rows(f"select id from {pg}.items") == [(2,)]


async def test_timeout_rolls_back_and_is_retryable(pg: str, make_context: ContextFactory) -> None:
    plugin = SqlExec()
    try:
        with pytest.raises(Timeout) as caught:
            await plugin.run(
                exec_request(
                    dsn=PG,
                    sql=[f"insert into {pg}.items values (1, 'x')", "select pg_sleep(30)"],
                    timeout="500ms",
                ),
                make_context(),
            )
    finally:
        await plugin.close()
    assert caught.value.retryable
    assert await pg_rows(f"select * from {pg}.items") == []


# ------------------------------------------------------------------------------ request models


def test_requests_reject_unknown_fields_and_other_databases() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        SqlQueryRequest.model_validate({"dsn": "mysql://x@y/z", "query": "select 1"})
    with pytest.raises(ValueError, match="extra"):
        SqlExecRequest.model_validate({"dsn": PG, "sql": "select 1", "parms": {}})
    with pytest.raises(ValueError, match="non-empty"):
        SqlExecRequest.model_validate({"dsn": PG, "sql": []})


async def test_init_reports_an_unusable_configured_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECONCILER_SQL_DSN", f"postgresql://app:{CANARY}@127.0.0.1:1/test")
    plugin = SqlQuery()
    try:
        with pytest.raises(ConnectionFailed, match="RECONCILER_SQL_DSN") as caught:
            await plugin.init()
        assert CANARY not in str(caught.value) and "//***@127.0.0.1:1" in str(caught.value)
        require_server("127.0.0.1", 5432, "PostgreSQL")
        monkeypatch.setenv("RECONCILER_SQL_DSN", PG)
        await plugin.init()
    finally:
        await plugin.close()


async def test_a_parameter_never_shows_in_an_error_even_quoted_by_the_driver(
    make_context: ContextFactory, unique: str
) -> None:
    require_server("127.0.0.1", 5432, "PostgreSQL")
    password = "Pw-9d8f'x\\y"  # not known to the run as a secret: only a parameter
    plugin = SqlExec()
    try:
        with pytest.raises(InvalidSQL) as caught:
            await plugin.run(
                exec_request(
                    dsn=PG,
                    sql=f"create role r_{unique} login password :pw garbage",
                    params={"pw": password},
                ),
                make_context(),
            )
    finally:
        await plugin.close()
    shown = str(caught.value) + repr(caught.value.details)
    assert "garbage" in shown
    assert "Pw-9d8f" not in shown
