"""Alembic environment of the store: how migrations connect.

The store (``reconciler/store/migrate.py``) runs migrations itself when it opens, handing its
own connection in ``config.attributes["connection"]``; that is the production path. Run from the
``alembic`` command line (development only), the URL comes from ``-x url=...`` or
``sqlalchemy.url``. Target metadata is :mod:`reconciler.store.tables`, so autogenerate and the
schema-drift check compare against the models the store uses.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from reconciler.store.tables import Base

target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    config = context.config
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database with -x url=... (e.g. sqlite:////tmp/scratch.db)")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
