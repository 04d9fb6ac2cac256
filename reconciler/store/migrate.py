"""Running the store's Alembic migrations from inside the program.

:meth:`reconciler.store.store.Store.open` calls :func:`upgrade_to_head` on its own connection, so
a fresh database gets the schema and an existing one is brought forward before any read or
write; the migrations in ``migrations/versions`` are the only source of the schema.
:func:`schema_diff` is Alembic's autogenerate comparison (what ``alembic check`` does): an empty
list means the migrated database matches :mod:`reconciler.store.tables`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from reconciler.store.tables import Base

_HERE = Path(__file__).resolve().parent
ALEMBIC_INI = _HERE / "alembic.ini"
MIGRATIONS_DIR = _HERE / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """The packaged Alembic configuration, optionally bound to an open connection."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this version of reconciler."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(connection: Connection) -> None:
    """Apply every migration the database has not seen yet; a no-op when already at head."""
    command.upgrade(alembic_config(connection), "head")


def schema_diff(connection: Connection) -> list[Any]:
    """Differences between the database's schema and the store's models (empty when in step)."""
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "target_metadata": Base.metadata},
    )
    diff: list[Any] = compare_metadata(context, Base.metadata)
    return diff
