"""Opening the store: migrations are the only schema source, they match the models on both
backends, re-opening is a no-op that keeps the data, and an unreachable database is a clear error."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from reconciler.engine.journal import Journal, RunRecord
from reconciler.errors import StoreError, StoreUnavailable
from reconciler.store import Store, resolve_url
from reconciler.store.migrate import current_revision, head_revision, upgrade_to_head

OpenStore = Callable[[], Awaitable[Store]]


async def test_migrations_apply_on_an_empty_database_and_reopening_is_a_no_op(
    open_store: OpenStore,
) -> None:
    first = await open_store()
    assert await first.schema_revision() == head_revision() == "0006"
    await first.run_started(RunRecord(id="r1", workflow="wf"))
    await first.close()

    again = await open_store()
    assert await again.schema_revision() == head_revision()
    assert await again.schema_diff() == []
    kept = await again.get_run("r1")
    assert kept is not None and kept.workflow == "wf"


async def test_orm_metadata_matches_the_migrated_schema(store: Store) -> None:
    assert await store.schema_diff() == []


async def test_store_implements_the_engine_journal_protocol(store: Store) -> None:
    assert isinstance(store, Journal)


async def test_default_store_is_sqlite_in_wal_mode_under_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    store = await Store.open(None, data_dir=data_dir)
    try:
        assert store.backend == "sqlite"
        await store.run_started(RunRecord(id="r1", workflow="wf"))
    finally:
        await store.close()
    db = data_dir / "reconciler.db"
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT id FROM runs").fetchall() == [("r1",)]


def test_store_urls_get_the_async_driver(tmp_path: Path) -> None:
    assert resolve_url("relative/x.db", data_dir=tmp_path).drivername == "sqlite+aiosqlite"
    assert resolve_url("sqlite:////tmp/x.db", data_dir=tmp_path).drivername == "sqlite+aiosqlite"
    pg = resolve_url("postgres://u:pw@db.example:5433/rec", data_dir=tmp_path)
    assert pg.drivername == "postgresql+psycopg"
    assert (pg.host, pg.port, pg.database) == ("db.example", 5433, "rec")


def test_an_unsupported_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported store backend 'mysql'"):
        resolve_url("mysql://root@localhost/db", data_dir=tmp_path)


async def test_an_in_memory_sqlite_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="in-memory"):
        await Store.open("sqlite://", data_dir=tmp_path)


async def test_unreachable_postgresql_names_host_and_port_but_not_the_password(
    tmp_path: Path,
) -> None:
    url = "postgresql+psycopg://reconciler:canary-pw-8f3@127.0.0.1:1/test"
    with pytest.raises(StoreUnavailable) as caught:
        await Store.open(url, data_dir=tmp_path)
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "canary-pw-8f3" not in message
    # The driver's exception is not chained into tracebacks either.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_sqlite_file_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    with pytest.raises(StoreUnavailable, match="not-a-dir"):
        await Store.open(str(blocker / "reconciler.db"), data_dir=tmp_path)


async def test_processes_opening_a_fresh_database_at_once_migrate_it_once(
    store_url: str, tmp_path: Path
) -> None:
    outcomes = await asyncio.gather(
        *(Store.open(store_url, data_dir=tmp_path / "data") for _ in range(4)),
        return_exceptions=True,
    )
    stores = [o for o in outcomes if isinstance(o, Store)]
    try:
        assert len(stores) == 4, [o for o in outcomes if not isinstance(o, Store)]
        for store in stores:
            assert await store.schema_revision() == head_revision()
        await stores[0].run_started(RunRecord(id="r1", workflow="wf"))
        assert await stores[3].get_run("r1") is not None
    finally:
        for store in stores:
            await store.close()


async def test_a_database_from_a_newer_reconciler_is_refused_clearly(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    engine = create_async_engine(store.url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    finally:
        await engine.dispose()
    await store.close()

    with pytest.raises(StoreError, match="ffff9999"):
        await open_store()


async def test_ping_tells_whether_the_database_answers(store: Store, tmp_path: Path) -> None:
    assert await store.ping() is True
    url = resolve_url("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", data_dir=tmp_path)
    unreachable = Store(create_async_engine(url), url=url)
    try:
        assert await unreachable.ping() is False
    finally:
        await unreachable.close()


async def test_migrations_downgrade_to_empty_and_upgrade_again(store: Store) -> None:
    from alembic import command

    from reconciler.store.migrate import alembic_config

    engine = create_async_engine(store.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "base"))
            assert await conn.run_sync(current_revision) is None
            await conn.run_sync(upgrade_to_head)
            assert await conn.run_sync(current_revision) == head_revision()
    finally:
        await engine.dispose()
    assert await store.schema_diff() == []


async def test_a_freshly_opened_store_has_no_problem(store: Store) -> None:
    assert await store.problem() is None
