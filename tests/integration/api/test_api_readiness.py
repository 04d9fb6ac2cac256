"""``/readyz`` against a store that stops being usable under a running daemon: its SQLite file
deleted, replaced by another file or overwritten with garbage, or its PostgreSQL tables gone
(the database recreated empty). A pooled connection keeps answering ``SELECT 1`` in each case,
so a probe that only pings would keep sending traffic to a daemon that has lost its history.

Each test puts the store back afterwards and sees the daemon ready again: readiness follows the
store, and the daemon shuts down cleanly on a store it can write. Each scrape of ``/metrics``
asks the store the same question, so ``reconciler_store_up`` alerts on what the probe sees.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from reconciler.store import Store
from tests.integration.api.conftest import Daemon, start_daemon
from tests.support import postgres

pytestmark = pytest.mark.timeout(60)


async def readiness(daemon: Daemon) -> tuple[int, str]:
    response = await daemon.client.get("/readyz")
    return response.status_code, response.json()["reason"]


def sqlite_file(daemon: Daemon) -> Path:
    return Path(str(daemon.store.url.database))


async def test_readyz_is_503_while_the_sqlite_file_is_deleted(daemon: Daemon) -> None:
    db = sqlite_file(daemon)
    assert await readiness(daemon) == (200, "")
    db.rename(db.with_name("moved-away.db"))  # the daemon's path no longer names a file
    try:
        status, reason = await readiness(daemon)
        assert status == 503
        assert reason == f"the store's SQLite file {db} is gone (deleted while the daemon runs)"
        assert (await daemon.client.get("/healthz")).status_code == 200  # still alive
    finally:
        db.with_name("moved-away.db").rename(db)
    assert await readiness(daemon) == (200, "")


async def test_each_scrape_of_metrics_says_whether_the_store_is_usable(daemon: Daemon) -> None:
    """``reconciler_store_up`` (what ReconcilerStoreUnhealthy fires on) follows what /readyz sees."""

    async def store_up() -> float:
        text = (await daemon.client.get("/metrics")).text
        line = next(ln for ln in text.splitlines() if ln.startswith("reconciler_store_up "))
        return float(line.split()[1])

    assert await store_up() == 1
    db = sqlite_file(daemon)
    moved = db.with_name("moved-away.db")
    os.replace(db, moved)
    try:
        assert await store_up() == 0
        assert (await readiness(daemon))[0] == 503
    finally:
        os.replace(moved, db)
    assert await store_up() == 1


async def test_readyz_is_503_when_the_sqlite_file_is_replaced_by_another(daemon: Daemon) -> None:
    db = sqlite_file(daemon)
    db.rename(db.with_name("original.db"))
    db.write_bytes(b"garbage, not a database\n" * 200)
    try:
        status, reason = await readiness(daemon)
        assert status == 503
        assert reason == f"the store's SQLite file {db} was replaced by another file"
    finally:
        os.replace(db.with_name("original.db"), db)
    assert await readiness(daemon) == (200, "")


async def test_readyz_is_503_when_the_sqlite_file_is_overwritten_with_garbage(
    daemon: Daemon,
) -> None:
    db = sqlite_file(daemon)
    original = db.read_bytes()
    with db.open("r+b") as file:  # same file, new content
        file.write(b"\0garbage" * 8)
    try:
        status, reason = await readiness(daemon)
        assert status == 503
        assert reason == f"the store's SQLite file {db} is not a SQLite database any more"
    finally:
        with db.open("r+b") as file:
            file.write(original[:64])
    assert await readiness(daemon) == (200, "")


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A schema of its own in the shared ``test`` database, and a store URL using it; dropped
    afterwards (the database's other schemas are other tests')."""
    with postgres.schema("readyz_test") as name:
        yield name, postgres.store_url(name, query=f"application_name={name}")


@pytest.fixture
async def pg_daemon(tmp_path: Path, pg_schema: tuple[str, str]) -> AsyncIterator[Daemon]:
    async for daemon in start_daemon(tmp_path, store=pg_schema[1]):
        yield daemon


@pytest.mark.postgres
async def test_readyz_is_503_when_the_postgresql_tables_are_gone(
    pg_daemon: Daemon, pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    schema, url = pg_schema
    assert await readiness(pg_daemon) == (200, "")
    with psycopg.connect(postgres.PG_ADMIN_DSN, autocommit=True) as admin:
        # Recreated empty, as DROP DATABASE ... WITH (FORCE) would: the daemon's connections
        # are closed first, then everything it had is gone.
        admin.execute("SET lock_timeout = '20s'")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (schema,),
        )
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{schema}"')
    status, reason = await readiness(pg_daemon)
    assert status == 503
    assert reason.startswith(
        "the store's tables are missing (alembic_version, commands, journal, leases, runs, "
        "workflow_status)"
    )
    assert "was the database recreated?" in reason
    # What a restart does: open (and so migrate) the store again.
    async with await Store.open(url, data_dir=tmp_path / "data"):
        pass
    assert await readiness(pg_daemon) == (200, "")
