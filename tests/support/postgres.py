"""A schema of its own on the local PostgreSQL, for tests that need a PostgreSQL store.

Tests share one database (``test`` on 127.0.0.1:5432, trust auth for ``postgres``); each takes a
fresh schema from :func:`schema` and points the store there through :func:`store_url` (the
connection's ``search_path``), so tests running side by side never see each other's tables. The
schema is dropped afterwards. Skips (fails under ``CI=true``) when PostgreSQL is not reachable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tests.conftest import require_server

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
"""Where the schemas are created and dropped (the ``postgres`` superuser)."""


@contextmanager
def schema(prefix: str) -> Iterator[str]:
    """A new, empty schema named ``<prefix>_<random>``; dropped (with what is in it) on exit."""
    require_server(PG_HOST, PG_PORT, "PostgreSQL")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute("SET lock_timeout = '20s'")  # fail, not hang, if a store was left open
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def store_url(name: str, *, options: str = "", query: str = "") -> str:
    """The store URL (``--store``) whose connections use schema ``name``; ``options`` are more
    server settings (``-c...``, URL-encoded), ``query`` more URL parameters (``a=b&c=d``)."""
    url = (
        f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
        f"?options=-csearch_path%3D{name}{options}"
    )
    return f"{url}&{query}" if query else url


def dsn(name: str) -> str:
    """A psycopg connection string for the ``test`` database with schema ``name`` first."""
    return f"{PG_ADMIN_DSN} options='-csearch_path={name}'"
