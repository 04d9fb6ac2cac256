"""The store's tables, as SQLAlchemy 2 declarative models.

The daemon's status book writes ``workflow_status``, the runner writes ``runs`` and ``journal`` through
:class:`reconciler.store.store.Store`, replicas coordinate through ``leases``, the API records
what it accepted in ``commands`` (which every replica's controller reads), and the CLI only
reads. The schema itself is created and changed *only* by the Alembic migrations in
``reconciler/store/migrations``; this metadata is what those migrations must match (a test
compares the two with Alembic's autogenerate, so a column added here without a migration fails).

Timestamps are stored as UTC and always come back timezone-aware (:class:`UTCDateTime`), also on
SQLite, which has no native timestamp type. Enumerated values are plain strings so that adding a
value never needs a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import false

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations (and SQLite batch rebuilds) can refer to them."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned timezone-aware on every backend.

    Naive datetimes given to the store are taken to be UTC already. On SQLite the value is kept
    as an ISO-like string in UTC, so lexical order is time order and range queries work.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class WorkflowStatusRow(Base):
    """What the daemon last concluded about one workflow (one row per live workflow)."""

    __tablename__ = "workflow_status"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    sync: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(255), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    last_applied_revision: Mapped[str | None] = mapped_column(String(255))
    last_attempted_revision: Mapped[str | None] = mapped_column(String(255))
    spec_digest: Mapped[str | None] = mapped_column(String(255))
    last_run_id: Mapped[str | None] = mapped_column(String(64))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(Integer, default=0)
    diff: Mapped[Any | None] = mapped_column(JSON)
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    suspended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Set and cleared only with a suspend/resume command (see ``commands.py``)."""


class RunRow(Base):
    """One run of one workflow's machine (mirrors :class:`reconciler.engine.journal.RunRecord`)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_workflow_started_at", "workflow", "started_at"),
        Index("ix_runs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(253))
    revision: Mapped[str] = mapped_column(String(255), default="")
    parent_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16))
    current_state: Mapped[str | None] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    outputs: Mapped[Any] = mapped_column(JSON)
    document: Mapped[Any | None] = mapped_column(JSON)
    """The workflow document an unfinished run started with (resumed with it); ``NULL`` once the
    run has finished, and for runs recorded before the store kept documents."""
    inputs: Mapped[Any | None] = mapped_column(JSON)
    """The inputs the run was started with beyond its spec (redacted); ``NULL`` for none, and
    for runs recorded before the store kept them. A resumed run runs with them again."""
    requested_by: Mapped[str | None] = mapped_column(String(1024))
    """Names of the API tokens whose syncs this manual run answered (comma-separated)."""
    cancelled_by: Mapped[str | None] = mapped_column(String(255))
    """Name of the API token whose cancel of this run was accepted."""


class JournalRow(Base):
    """One event of a run; ``(run_id, seq)`` is the key and the order."""

    __tablename__ = "journal"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str | None] = mapped_column(String(255))
    to_state: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[Any] = mapped_column(JSON)


class LeaseRow(Base):
    """A named lease. Rows are never deleted, so ``fencing_token`` only ever grows."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CommandRow(Base):
    """One request the API accepted (sync, suspend, resume, cancel), in the order accepted.

    ``id`` is the order controllers read them in; ``handled_at`` is set once the request has had
    its effect (a sync: a run of the workflow started; a cancel: the run was cancelled or had
    ended; a suspend/resume: at once, since its effect is written in the same transaction).
    """

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_kind_handled_at", "kind", "handled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(253))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_by: Mapped[str] = mapped_column(String(255), default="")
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload: Mapped[Any | None] = mapped_column(JSON)


WORKFLOW_STATUS = Base.metadata.tables["workflow_status"]
RUNS = Base.metadata.tables["runs"]
JOURNAL = Base.metadata.tables["journal"]
LEASES = Base.metadata.tables["leases"]
COMMANDS = Base.metadata.tables["commands"]
