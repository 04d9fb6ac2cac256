"""Fixtures for the store suite: every test runs on SQLite (a file in tmp_path) and on the real
PostgreSQL at 127.0.0.1:5432, each PostgreSQL test in a fresh schema of its own (search_path set
through the connection options, so Alembic's version table lives there too) dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from reconciler.store import Store
from tests.support import postgres

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store location for one backend; an empty database either way."""
    if request.param == "sqlite":
        yield str(tmp_path / "data" / "store.db")
        return
    with postgres.schema("store_test") as name:
        yield postgres.store_url(name)


@pytest.fixture
async def open_store(store_url: str, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens (or re-opens) the store at ``store_url``; every store opened is closed at the end."""
    opened: list[Store] = []

    async def _open() -> Store:
        store = await Store.open(store_url, data_dir=tmp_path / "data")
        opened.append(store)
        return store

    yield _open
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()
