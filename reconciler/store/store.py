"""The durable store: workflow status, runs, the transition journal, leases and retention.

Called by: the runner (``reconciler/engine``), which journals every run through the
:class:`Journal` protocol this class implements; the daemon's status book
(``reconciler/daemon/statuses.py``), which reads and writes each workflow's
:class:`WorkflowStatusRecord`; replicas, which coordinate with :meth:`Store.acquire` leases; the
controller, which records what the API accepts and reads it back (the command log,
``commands.py``); the page and CLI, which only read. Embedded default: SQLite (WAL) at ``<data_dir>/reconciler.db``; for
teams, PostgreSQL (``postgresql+psycopg://...``). Both run on SQLAlchemy 2's async engine.

What callers may rely on: :meth:`Store.open` brings the schema to the newest Alembic revision
before returning (migrations are the only schema source); every write method commits before it
returns, in one transaction (a ``transition`` entry and the run's new ``current_state`` /
``outputs`` land together or not at all), except a run's writes handed in with ``wait=False``,
committed in order with the next batch of the store's one writer (``writer.py``: runs, journal
entries and statuses are written in batches, one transaction per batch, and everything else
begins once the writes handed in before it are committed); a status write never changes the row's
``suspended`` flag, and while it is set the row keeps reading ``Suspended``/
``SuspendedManually`` (only :meth:`Store.request_suspension` sets or clears it); timestamps
come back timezone-aware UTC; database failures surface as :class:`StoreError` subclasses whose
messages never contain a password.

Why one module of ~700 lines: :class:`Store` is one facade over one schema, and each method is
one short transaction; splitting it by table would spread the connection, retry and fencing rules
that every method shares (retention and leases, which have rules of their own, are already in
``retention.py`` and ``leases.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic.util import CommandError
from sqlalchemy import (
    Engine,
    Table,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from reconciler.clock import utcnow
from reconciler.engine.journal import (
    JOURNAL_ENTRIES,
    RUN_RECORDS,
    EventKind,
    Journal,
    JournalEntry,
    RunRecord,
    RunStatus,
)
from reconciler.errors import StoreError, StoreUnavailable
from reconciler.status import SUSPENDED_MANUALLY, SUSPENDED_MESSAGE, Health, WorkflowStatusRecord
from reconciler.store import commands, leases, migrate, retention
from reconciler.store.records import Command, CommandKind, Lease
from reconciler.store.tables import (
    JOURNAL,
    RUNS,
    WORKFLOW_STATUS,
    Base,
    JournalRow,
    RunRow,
    WorkflowStatusRow,
)
from reconciler.store.writer import GroupWriter, Write
from reconciler.urls import mask_urls_in_text

DEFAULT_FILENAME = "reconciler.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_OPEN_ATTEMPTS = 8
POSTGRES_CONNECT_TIMEOUT_S = 10
MIGRATION_LOCK_KEY = 0x7265636F6E63  # 'reconc': the advisory lock held while migrating
SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""
REQUIRED_TABLES = frozenset({*Base.metadata.tables, "alembic_version"})
"""The tables :meth:`Store.problem` expects to find (those the migrations create)."""


def _status_values(record: WorkflowStatusRecord) -> dict[str, Any]:
    """A status record as row values: JSON-able fields, timestamps as datetimes."""
    values = record.model_dump(mode="json")
    for key in ("last_success_at", "next_check_at", "observed_at", "updated_at"):
        values[key] = getattr(record, key)
    return values


def resolve_url(url: str | None, *, data_dir: Path) -> URL:
    """The async SQLAlchemy URL for a ``--store`` setting.

    ``None`` means SQLite at ``<data_dir>/reconciler.db``; a string without ``://`` is a SQLite
    file path; ``sqlite:``/``postgresql:``/``postgres:`` URLs get the async driver
    (``aiosqlite`` / ``psycopg``) whatever driver they named.
    """
    if url is None:
        return URL.create("sqlite+aiosqlite", database=str(Path(data_dir) / DEFAULT_FILENAME))
    if "://" not in url:
        return URL.create("sqlite+aiosqlite", database=str(Path(url).expanduser()))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("the store URL cannot be parsed") from None
    backend = parsed.drivername.split("+", 1)[0]
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(f"unsupported store backend {backend!r}: use a SQLite path or postgresql://")


def describe(url: URL) -> str:
    """Where the store lives, for messages: a file path or ``host:port/database``; never the
    password."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _reason(exc: BaseException, url: URL) -> str:
    """A one-line cause from a driver error, with the password scrubbed just in case."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return mask_urls_in_text(text)[:300]


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection's settings (see ``docs/operations.md``, "The store").

    ``journal_mode=WAL``: readers (the API, ``reconciler status``) never block the writer nor
    it them. ``synchronous=NORMAL``: in WAL mode a commit appends to the WAL file without an
    ``fsync`` (the WAL is synced at each checkpoint), so a committed transaction survives the
    process being killed (``kill -9``, a crash: the data is in the kernel's page cache) and the
    database is never corrupted; only a power loss or a kernel crash can undo the last
    commits, which then resume as runs interrupted one step earlier. ``FULL`` synced every
    commit, the cost of most of a run's time. ``busy_timeout``: a connection waits for the
    other writer (the one-shot CLI next to the daemon) rather than failing at once.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


_LISTED = [c for c in RUNS.columns if c.name != "document"]
"""The columns :meth:`Store.list_runs` reads."""


def _finished_changes(entry: JournalEntry) -> dict[str, Any]:
    """The run-record columns a ``run_finished`` entry settles: its status, end and error, and
    its workflow document dropped (a finished run is never resumed)."""
    outcome = entry.outcome or entry.detail.get("status")
    try:
        status = RunStatus(str(outcome))
    except ValueError:
        return {}
    if not status.finished:
        return {}
    error = entry.detail.get("error")
    return {
        "status": status.value,
        "finished_at": entry.at,
        "document": None,
        "error": error if isinstance(error, str) else None,
    }


def _run_from_row(row: RowMapping) -> RunRecord:
    data = dict(row)
    data["outputs"] = data.get("outputs") or {}
    return RUN_RECORDS.validate_python(data)


def _entry_from_row(row: RowMapping) -> JournalEntry:
    data = dict(row)
    data["detail"] = data.get("detail") or {}
    return JOURNAL_ENTRIES.validate_python(data)


def _after_prefix(prefix: str) -> str:
    """The smallest string above every string starting with ``prefix`` in byte order: its last
    character moved one up (``9`` to ``a``, so that a hex id's bound stays a letter or digit,
    which every collation orders as bytes do)."""
    last = prefix[-1]
    return prefix[:-1] + ("a" if last == "9" else chr(ord(last) + 1))


DEFAULT_CONNECTIONS = 5
"""Connections a store's pool keeps open unless told otherwise (SQLAlchemy's own default)."""


class Store:
    """The async store. Create it with :meth:`open`; one instance per process, shared by all
    tasks (the engine's pool hands each call its own connection)."""

    def __init__(self, engine: AsyncEngine, *, url: URL, writer: Engine | None = None) -> None:
        self._engine = engine
        self.url = url
        self._writer = GroupWriter(
            writer if writer is not None else self._create_sync_engine(url),
            url=url,
            describe=describe,
            reason=_reason,
        )
        """The one writer of runs, journal entries and statuses (group commit, writer.py)."""
        self._statements: dict[str, Any] = {}
        self._sqlite_file: tuple[int, int] | None = None
        """(device, inode) of the SQLite file once opened, to notice it being replaced."""
        self._sqlite_fd: int | None = None
        """The SQLite file, opened once by :meth:`problem` and kept open until :meth:`close`:
        closing any descriptor of a file drops every POSIX lock this process holds on it,
        SQLite's included, and without its shared lock another process closing its last
        connection checkpoints and deletes the WAL under the daemon, which then commits into
        a deleted file (what a /readyz poll next to ``reconciler status`` did)."""

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    async def open(
        cls, url: str | None, *, data_dir: Path, connections: int = DEFAULT_CONNECTIONS
    ) -> Store:
        """Connect, migrate to head, and return the store.

        ``connections`` is how many connections the pool keeps open (ten more may open for a
        while when all are busy): the daemon asks for one per run in flight and a few for its
        own loops and the API, so that runs do not queue for a connection or open and close one
        each time (which costs a round trip and a backend process on PostgreSQL).

        Raises :class:`StoreUnavailable` (naming the host or file, never the password) when the
        database cannot be reached or opened, and :class:`StoreError` for an unusable URL.
        """
        resolved = resolve_url(url, data_dir=data_dir)
        engine = cls._create_engine(resolved, connections=connections)
        store = cls(engine, url=resolved, writer=cls._create_sync_engine(resolved))
        try:
            for attempt in range(1, SQLITE_OPEN_ATTEMPTS + 1):
                try:
                    await cls._migrate(engine, resolved)
                    break
                except OperationalError as exc:
                    # Connections opening a new SQLite file at once race to switch it to WAL
                    # and to take the migration lock; SQLite may answer "locked" at once
                    # rather than wait (when waiting could deadlock). Try again shortly.
                    locked = "database is locked" in str(exc.orig)
                    if resolved.get_backend_name() != "sqlite" or not locked:
                        raise
                    if attempt == SQLITE_OPEN_ATTEMPTS:
                        raise
                    await engine.dispose()
                    await asyncio.sleep(0.05 * attempt)
        except (DBAPIError, OSError) as exc:
            await engine.dispose()
            raise StoreUnavailable(
                f"cannot open the store: {describe(resolved)}: {_reason(exc, resolved)}"
            ) from None
        except CommandError as exc:
            await engine.dispose()
            raise StoreError(
                f"cannot migrate the store at {describe(resolved)}: {exc} "
                "(was it created by a newer reconciler?)"
            ) from None
        except BaseException:
            await engine.dispose()
            raise
        if store.backend == "sqlite":
            with contextlib.suppress(OSError):
                found = os.stat(str(resolved.database))
                store._sqlite_file = (found.st_dev, found.st_ino)
        return store

    @staticmethod
    async def _migrate(engine: AsyncEngine, url: URL) -> None:
        async with engine.begin() as conn:
            # Serialise migrations of processes opening the same database at once (replicas
            # starting together; the CLI next to the daemon) and make them atomic.
            if url.get_backend_name() == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            else:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.run_sync(migrate.upgrade_to_head)

    @staticmethod
    def _create_engine(url: URL, *, connections: int) -> AsyncEngine:
        if url.get_backend_name() == "sqlite":
            if url.database in (None, "", ":memory:") or "mode=memory" in str(url.database):
                # Each pooled connection would see its own empty database.
                raise StoreError(
                    "an in-memory SQLite store is not supported: give a file path "
                    "(one-shot runs without history use the engine's MemoryJournal)"
                )
            try:
                Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot open the store: {describe(url)}: {exc.strerror or exc}"
                ) from None
            engine = create_async_engine(url, pool_size=connections)
            event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
            return engine
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        return create_async_engine(
            url, pool_pre_ping=True, pool_size=connections, connect_args=connect_args
        )

    @staticmethod
    def _create_sync_engine(url: URL) -> Engine:
        """The writer's engine (its thread's connections): the same database, synchronous
        drivers (``sqlite3``, ``psycopg``), the same settings."""
        if url.get_backend_name() == "sqlite":
            engine = create_engine(url.set(drivername="sqlite"))
            event.listen(engine, "connect", _set_sqlite_pragmas)
            return engine
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        return create_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,
            pool_size=1,
            connect_args=connect_args,
        )

    async def close(self) -> None:
        """Commit the writes handed to the writer, then close every pooled connection. The
        store must not be used afterwards."""
        await self._writer.close()
        await self._engine.dispose()
        if self._sqlite_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._sqlite_fd)
            self._sqlite_fd = None

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.get_backend_name()

    @asynccontextmanager
    async def _tx(self, *, settled: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed on success; driver errors become :class:`StoreError`.
        It begins once the writes handed to the writer before are committed, so it reads them
        and writes after them (``settled=False``: at once, for the leases, which no write of
        the writer touches)."""
        if settled and self._writer.busy:
            await self._writer.settle()
        try:
            async with self._engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise StoreError(f"the store refused the write: {_reason(exc, self.url)}") from None
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc.orig, OSError):
                raise StoreUnavailable(
                    f"lost the store: {describe(self.url)}: {_reason(exc, self.url)}"
                ) from None
            raise StoreError(f"store operation failed: {_reason(exc, self.url)}") from None
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable(f"store unavailable: {describe(self.url)}: {exc}") from None

    async def ping(self) -> bool:
        """Whether the database answers now (for ``/readyz``); never raises."""
        try:
            async with self._tx() as conn:
                await conn.execute(text("SELECT 1"))
        except StoreError:
            return False
        return True

    async def problem(self) -> str | None:
        """Why the store cannot be used right now, in plain words, or ``None`` when it can.

        For ``/readyz``: besides "the database answers" (:meth:`ping`), it notices what a
        pooled connection hides: the SQLite file deleted, replaced by another file or
        overwritten with something that is not a database (the open connection keeps reading
        the old file or its cache), and tables gone (a PostgreSQL database or schema recreated
        empty). Costs one ``stat``, one 16-byte read and one catalogue query; never raises.
        """
        if self.backend == "sqlite":
            trouble = self._sqlite_file_problem()
            if trouble is not None:
                return trouble
        try:
            async with self._tx() as conn:
                present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        except StoreError as exc:
            return f"the store does not answer: {exc}"
        missing = sorted(REQUIRED_TABLES - present)
        if missing:
            return (
                f"the store's tables are missing ({', '.join(missing)}) at {describe(self.url)}: "
                "was the database recreated? Restarting the daemon creates them again (empty)"
            )
        return None

    def _sqlite_file_problem(self) -> str | None:
        path = str(self.url.database)
        try:
            found = os.stat(path)
            if self._sqlite_file is not None and (found.st_dev, found.st_ino) != self._sqlite_file:
                return f"the store's SQLite file {path} was replaced by another file"
            if self._sqlite_fd is None:  # never closed before close(): see its docstring
                self._sqlite_fd = os.open(path, os.O_RDONLY)
            header = os.pread(self._sqlite_fd, len(SQLITE_HEADER), 0)
        except FileNotFoundError:
            return f"the store's SQLite file {path} is gone (deleted while the daemon runs)"
        except OSError as exc:
            return f"the store's SQLite file {path} cannot be read: {exc.strerror or exc}"
        if header != SQLITE_HEADER:
            return f"the store's SQLite file {path} is not a SQLite database any more"
        return None

    def fenced(self, lease: Lease) -> FencedJournal:
        """A :class:`Journal` whose every write is fenced by ``lease``: hand it to the runner of
        a run this replica owns, and a replica that lost the lease cannot write any more."""
        return FencedJournal(self, lease)

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        async with self._tx() as conn:
            return await conn.run_sync(migrate.current_revision)

    async def schema_diff(self) -> list[Any]:
        """Alembic's autogenerate comparison of the database with the store's models (what
        ``alembic check`` reports); empty when the schema is exactly what the code expects."""
        async with self._tx() as conn:
            return await conn.run_sync(migrate.schema_diff)

    # ----------------------------------------------------------------- upserts

    async def _upsert(
        self, conn: AsyncConnection, table: Table, values: dict[str, Any], *, key: str
    ) -> None:
        ins: Any
        if conn.dialect.name == "postgresql":
            ins = postgresql.insert(table).values(values)
        else:
            ins = sqlite.insert(table).values(values)
        changes = {k: ins.excluded[k] for k in values if k != key}
        await conn.execute(ins.on_conflict_do_update(index_elements=[key], set_=changes))

    # ----------------------------------------------------------------- workflow status

    async def get_status(self, name: str) -> WorkflowStatusRecord | None:
        """The status row of workflow ``name``, or ``None`` if it has none (new or retired)."""
        async with self._tx() as conn:
            row = (
                (await conn.execute(select(WORKFLOW_STATUS).where(WorkflowStatusRow.name == name)))
                .mappings()
                .first()
            )
        return WorkflowStatusRecord.model_validate(dict(row)) if row else None

    async def put_status(self, record: WorkflowStatusRecord, *, fence: Lease | None = None) -> None:
        """Insert or replace the status row of ``record.name`` (all fields, as given); with
        ``fence``, refused with :class:`LeaseLost` (nothing written) unless that lease is still
        current."""
        refused = await self.put_statuses(
            [record], fences={record.name: fence} if fence is not None else None
        )
        if refused and fence is not None:
            raise leases.lost(fence)

    async def put_statuses(
        self,
        records: Sequence[WorkflowStatusRecord],
        *,
        fences: Mapping[str, Lease] | None = None,
    ) -> set[str]:
        """Insert or replace the status rows of ``records``, all in one transaction (the last
        record wins when a name appears twice).

        ``fences`` maps a workflow name to the lease its record was decided under: in the same
        transaction each such lease is checked (and its row locked, so a take-over waits for the
        commit), and a record whose lease is no longer current is not written. Returns the names
        so refused; the other records are written.
        """
        rows = {r.name: _status_values(r) for r in records}
        if not rows:
            return set()
        return await self._write_statuses(rows, self._status_upsert(self.backend), fences)

    async def _write_statuses(
        self, rows: dict[str, dict[str, Any]], statement: Any, fences: Mapping[str, Lease] | None
    ) -> set[str]:
        """``rows`` through ``statement`` by the writer, fenced per name; the names refused."""
        wanted = {name: lease for name, lease in (fences or {}).items() if name in rows}
        refused = await self._writer.write(
            Write(statuses=list(rows.values()), statement=statement, fences=wanted)
        )
        return set(refused or ())

    async def touch_statuses(
        self,
        records: Sequence[WorkflowStatusRecord],
        *,
        fields: Iterable[str],
        fences: Mapping[str, Lease] | None = None,
    ) -> set[str]:
        """Update only ``fields`` of the existing status rows of ``records``, in one
        transaction: cheaper than :meth:`put_statuses` when nothing else changed. A record
        without a row is skipped; ``fences`` and the names returned are as for
        :meth:`put_statuses`."""
        columns = sorted(set(fields) - {"name"})
        rows = {r.name: {"key": r.name, **{c: getattr(r, c) for c in columns}} for r in records}
        if not rows:
            return set()
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        if "message" in values:  # a suspended row keeps saying so
            values["message"] = case(
                (WORKFLOW_STATUS.c.suspended, literal(SUSPENDED_MESSAGE)), else_=values["message"]
            )
        statement = (
            update(WORKFLOW_STATUS).where(WORKFLOW_STATUS.c.name == bindparam("key")).values(values)
        )
        return await self._write_statuses(rows, statement, fences)

    def _status_upsert(self, dialect: str) -> Any:
        """The insert-or-replace statement for status rows (built once per dialect).

        It never changes ``suspended`` of an existing row, and while that is set it keeps the
        row's status, reason and message saying so: a run that ends on one replica while
        another replica suspended its workflow must not undo the suspension."""
        cached = self._statements.get(dialect)
        if cached is None:
            ins: Any = (postgresql if dialect == "postgresql" else sqlite).insert(WORKFLOW_STATUS)
            fields = [
                f for f in WorkflowStatusRecord.model_fields if f not in ("name", "suspended")
            ]
            changes = {f: ins.excluded[f] for f in fields}
            held = WORKFLOW_STATUS.c.suspended
            for field, value in (
                ("status", Health.SUSPENDED.value),
                ("reason", SUSPENDED_MANUALLY),
                ("message", SUSPENDED_MESSAGE),
            ):
                changes[field] = case((held, literal(value)), else_=ins.excluded[field])
            cached = self._statements[dialect] = ins.on_conflict_do_update(
                index_elements=["name"], set_=changes
            )
        return cached

    async def list_statuses(self) -> list[WorkflowStatusRecord]:
        """Every workflow's status row, by name."""
        async with self._tx() as conn:
            rows = (
                (await conn.execute(select(WORKFLOW_STATUS).order_by(WorkflowStatusRow.name)))
                .mappings()
                .all()
            )
        return [WorkflowStatusRecord.model_validate(dict(r)) for r in rows]

    async def delete_status(self, name: str, *, fence: Lease | None = None) -> bool:
        """Retire workflow ``name``: drop its status row; its runs and journal stay (until
        retention prunes them). Returns whether a row existed. With ``fence``, refused with
        :class:`LeaseLost` (nothing deleted) unless that lease is still current."""
        async with self._tx() as conn:
            if fence is not None:
                await leases.check_fence(conn, fence)
            result = await conn.execute(
                delete(WorkflowStatusRow).where(WorkflowStatusRow.name == name)
            )
        return bool(result.rowcount)

    # ----------------------------------------------------------------- journal

    @staticmethod
    def _run_values(run: RunRecord) -> dict[str, Any]:
        values: dict[str, Any] = RUN_RECORDS.dump_python(run, mode="json")
        values["started_at"] = run.started_at
        values["finished_at"] = run.finished_at
        values["status"] = run.status.value
        # who asked for or cancelled the run is the store's to write (run_started, request)
        values.pop("requested_by", None)
        values.pop("cancelled_by", None)
        if run.status.finished:
            values["document"] = None  # only a run that may resume needs it
        return values

    async def run_started(
        self,
        run: RunRecord,
        *,
        fence: Lease | None = None,
        settles_syncs: bool = False,
        wait: bool = True,
    ) -> None:
        """Record a new run (or overwrite the record of a run started again on resume), with
        the workflow document it carries (:attr:`RunRecord.document`), kept until it ends.

        ``settles_syncs`` (a manual run): the run answers every sync of its workflow not
        handled yet that carries exactly the run's ``inputs`` (none: the plain syncs); they are
        marked handled in the same transaction, so a crash either keeps
        both the run (which resumes) and the answered syncs, or neither (the syncs are picked
        up at the next start). The run's ``requested_by`` becomes the names those syncs were
        requested by.

        ``wait=False`` (as for :meth:`record`): handed to the writer, committed with its batch;
        a run that settles syncs is always waited for.
        """
        if not settles_syncs:
            await self._hand_in(Write(key=run.id, run=self._run_values(run), fence=fence), wait)
            return
        async with self._tx() as conn:
            if fence is not None:
                await leases.check_fence(conn, fence)
            await self._upsert(conn, RUNS, self._run_values(run), key="id")
            if settles_syncs:
                names = await commands.answer_syncs(
                    conn, run.workflow, inputs=run.inputs, now=utcnow()
                )
                if names:
                    await conn.execute(
                        update(RUNS)
                        .where(RUNS.c.id == run.id)
                        .values(requested_by=", ".join(names)[:1024])
                    )

    async def record(
        self, entry: JournalEntry, *, fence: Lease | None = None, wait: bool = True
    ) -> None:
        """Append ``entry``; a ``transition`` also sets the run's ``current_state`` to
        ``entry.to_state`` and, when ``entry.detail`` has ``outputs``, its outputs; a
        ``state_entered`` sets ``current_state`` to ``entry.state``; a ``run_resumed`` entry sets
        the run's ``attempt`` (a resumed run's record is never finished with the attempt before);
        a ``run_finished`` entry finishes the run's record (its status, ``finished_at`` and error) — all in one
        transaction. So a run whose ``run_finished`` entry is journaled is never found
        unfinished, and never resumed to finish a second time, whatever happens before
        :meth:`run_finished` stores the rest of its record (its outputs).

        With ``fence``, the write is refused with :class:`LeaseLost` unless that lease is still
        current. A duplicate ``(run_id, seq)`` or an unknown run is a :class:`StoreError`.

        Every write goes through the store's one writer, in a batch with the other runs'
        (``writer.py``). ``wait=False`` returns once it is handed in: it is committed with its
        batch, in order, so it is durable once any later write of the store is; should it fail,
        every later write of the same run is refused with its error (the next waited for
        raises it), so a run's journal has no gaps.
        """
        values: dict[str, Any] = JOURNAL_ENTRIES.dump_python(entry, mode="json")
        values["at"] = entry.at
        values["kind"] = entry.kind.value
        changes: dict[str, Any] = {}
        if entry.kind is EventKind.TRANSITION:
            changes["current_state"] = entry.to_state
            if "outputs" in values["detail"]:
                changes["outputs"] = dict(values["detail"]["outputs"] or {})
        elif entry.kind is EventKind.STATE_ENTERED:
            changes["current_state"] = entry.state
        elif entry.kind is EventKind.RUN_RESUMED:
            attempt = entry.detail.get("attempt")
            if isinstance(attempt, int):
                changes["attempt"] = attempt
        elif entry.kind is EventKind.RUN_FINISHED:
            changes.update(_finished_changes(entry))
        write = Write(key=entry.run_id, entry=values, changes=changes, fence=fence)
        await self._hand_in(write, wait)

    async def _hand_in(self, write: Write, wait: bool) -> None:
        if wait:
            await self._writer.write(write)
        else:
            self._writer.submit(write, wait=False)

    async def run_finished(
        self, run: RunRecord, *, fence: Lease | None = None, wait: bool = True
    ) -> None:
        """Store the final status, ``finished_at``, error and outputs of ``run``; its workflow
        document is dropped (a finished run is never resumed). ``wait``: as for :meth:`record`."""
        await self._hand_in(Write(key=run.id, run=self._run_values(run), fence=fence), wait)

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._tx() as conn:
            row = (await conn.execute(select(RUNS).where(RunRow.id == run_id))).mappings().first()
        return _run_from_row(row) if row else None

    async def run_ids_starting_with(self, prefix: str, *, limit: int = 5) -> list[str]:
        """The ids of up to ``limit`` runs whose id starts with ``prefix``, in id order.

        What a short id (the 8 characters the log and the tables show) resolves through: one id
        back means the prefix is unique, several mean it is ambiguous, and asking for a few more
        than one shows the candidates without reading every match. The query is a range of the
        primary key's index (``prefix <= id < the next prefix``), so it reads only the matching
        rows whatever the number of runs; the ``LIKE`` beside it keeps the answer exact where
        the database orders strings by language rules rather than bytes. An empty ``prefix``
        matches nothing.
        """
        if not prefix or limit < 1:
            return []
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = (
            select(RunRow.id)
            .where(RunRow.id >= prefix, RunRow.id < _after_prefix(prefix))
            .where(RunRow.id.like(escaped + "%", escape="\\"))
            .order_by(RunRow.id)
            .limit(limit)
        )
        async with self._tx() as conn:
            return list((await conn.execute(stmt)).scalars().all())

    async def entries(self, run_id: str) -> list[JournalEntry]:
        """The run's journal in ``seq`` order."""
        async with self._tx() as conn:
            rows = (
                (
                    await conn.execute(
                        select(JOURNAL).where(JournalRow.run_id == run_id).order_by(JournalRow.seq)
                    )
                )
                .mappings()
                .all()
            )
        return [_entry_from_row(r) for r in rows]

    async def unfinished_runs(self) -> list[RunRecord]:
        """Runs still marked running, oldest first: after a crash these are resumed."""
        async with self._tx() as conn:
            rows = (
                (
                    await conn.execute(
                        select(RUNS)
                        .where(RunRow.status == RunStatus.RUNNING.value)
                        .order_by(RunRow.started_at, RunRow.id)
                    )
                )
                .mappings()
                .all()
            )
        return [_run_from_row(r) for r in rows]

    async def top_level_run_counts(self) -> dict[str, int]:
        """How many top-level runs the store holds of each workflow that has any."""
        stmt = (
            select(RunRow.workflow, func.count())
            .where(RunRow.parent_id.is_(None))
            .group_by(RunRow.workflow)
        )
        async with self._tx() as conn:
            return {str(name): int(n) for name, n in (await conn.execute(stmt)).all()}

    async def list_runs(
        self,
        workflow: str | None = None,
        *,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[RunRecord]:
        """Runs newest first, optionally of one workflow and started strictly before ``before``
        (pass the last page's oldest ``started_at`` to page back). Without their workflow
        documents (``document`` is ``None``): a page of runs need not carry a spec each;
        :meth:`get_run` and :meth:`unfinished_runs` have them."""
        stmt = select(*_LISTED).order_by(RunRow.started_at.desc(), RunRow.id.desc())
        if workflow is not None:
            stmt = stmt.where(RunRow.workflow == workflow)
        if before is not None:
            stmt = stmt.where(RunRow.started_at < before)
        async with self._tx() as conn:
            rows = (await conn.execute(stmt.limit(max(0, limit)))).mappings().all()
        return [_run_from_row(r) for r in rows]

    # ----------------------------------------------------------------- leases

    async def acquire(
        self,
        name: str,
        owner: str,
        *,
        ttl: timedelta | float,
        now: datetime | None = None,
    ) -> Lease | None:
        """Take lease ``name`` for ``owner`` for ``ttl`` (seconds or timedelta); ``None`` while
        another owner holds it unexpired. See :mod:`reconciler.store.leases`."""
        delta = leases.as_timedelta(ttl)
        async with self._tx(settled=False) as conn:
            return await leases.acquire(conn, name, owner, ttl=delta, now=now or utcnow())

    async def renew(self, lease: Lease, *, now: datetime | None = None) -> bool:
        """Extend ``lease`` by its TTL (updating ``lease.expires_at``); False once it was taken
        over, after which the holder must stop acting on it."""
        async with self._tx(settled=False) as conn:
            return await leases.renew(conn, lease, now=now or utcnow())

    async def release(self, lease: Lease, *, now: datetime | None = None) -> bool:
        """Give ``lease`` up so another owner can take it at once."""
        async with self._tx(settled=False) as conn:
            return await leases.release(conn, lease, now=now or utcnow())

    # ----------------------------------------------------------------- commands

    async def request(
        self,
        kind: CommandKind,
        target: str,
        *,
        requested_by: str,
        payload: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Command:
        """Record that the API accepted a sync (``target``: a workflow), a cancel (a run id,
        whose ``cancelled_by`` becomes ``requested_by`` in the same transaction) or an approval
        (a run id); committed on return. ``payload`` is kept with the command as given (JSON).
        For a suspend or resume use :meth:`request_suspension`."""
        if kind in (CommandKind.SUSPEND, CommandKind.RESUME):
            raise StoreError("suspend and resume are recorded with request_suspension")
        async with self._tx() as conn:
            command = await commands.record(
                conn,
                kind,
                target=target,
                requested_by=requested_by,
                now=now or utcnow(),
                payload=payload,
            )
            if kind is CommandKind.CANCEL:
                await conn.execute(
                    update(RUNS).where(RUNS.c.id == target).values(cancelled_by=requested_by)
                )
            return command

    async def request_suspension(
        self, name: str, *, suspended: bool, requested_by: str, now: datetime | None = None
    ) -> tuple[Command, WorkflowStatusRecord | None]:
        """Suspend (or resume) workflow ``name``: the command and the status row's flag in one
        transaction, committed on return; returns the command and the row as it now is."""
        at = now or utcnow()
        kind = CommandKind.SUSPEND if suspended else CommandKind.RESUME
        async with self._tx() as conn:
            command = await commands.record(
                conn, kind, target=name, requested_by=requested_by, now=at, handled=True
            )
            await commands.set_suspended(conn, name, suspended=suspended, now=at)
            row = (
                (await conn.execute(select(WORKFLOW_STATUS).where(WorkflowStatusRow.name == name)))
                .mappings()
                .first()
            )
        return command, WorkflowStatusRecord.model_validate(dict(row)) if row else None

    async def commands_after(self, after_id: int, *, limit: int = 500) -> list[Command]:
        """Commands with an id above ``after_id``, oldest first (at most ``limit``)."""
        async with self._tx() as conn:
            return await commands.after(conn, after_id, limit=limit)

    async def last_command_id(self) -> int:
        """The highest command id so far (0 when there is none)."""
        async with self._tx() as conn:
            return await commands.last_id(conn)

    async def unhandled_commands(
        self, kind: CommandKind, *, target: str | None = None
    ) -> list[Command]:
        """Commands of ``kind`` (for ``target`` only, when given) not handled yet, oldest first."""
        async with self._tx() as conn:
            return await commands.unhandled(conn, kind, target=target)

    async def commands_of(self, kind: CommandKind, target: str) -> list[Command]:
        """Every command of ``kind`` for ``target`` (a run id, a workflow), handled or not,
        oldest first (the retention pass drops handled ones after a day)."""
        async with self._tx() as conn:
            return await commands.of_target(conn, kind, target=target)

    async def commands_handled(self, ids: Sequence[int], *, now: datetime | None = None) -> int:
        """Mark the commands ``ids`` handled; returns how many were not already."""
        async with self._tx() as conn:
            return await commands.mark_handled(conn, ids, now=now or utcnow())

    async def settle_syncs(self, workflow: str, *, now: datetime | None = None) -> int:
        """Mark every unhandled sync of ``workflow`` handled (its reconcile decided nothing
        runs); returns how many there were."""
        async with self._tx() as conn:
            return await commands.settle_syncs(conn, workflow, now=now or utcnow())

    # ----------------------------------------------------------------- retention

    async def prune(
        self,
        keep_runs: int | None,
        keep_days: int | None,
        *,
        now: datetime | None = None,
        workflow: str | None = None,
    ) -> int:
        """Delete old finished runs and their journal (of ``workflow`` only, when given);
        returns how many runs were removed. See :mod:`reconciler.store.retention` for which.
        The whole pass (no ``workflow``) also drops old commands (:func:`commands.prune`)."""
        at = now or utcnow()
        async with self._tx() as conn:
            if workflow is None:
                await commands.prune(conn, now=at)
            return await retention.prune_runs(conn, keep_runs, keep_days, now=at, workflow=workflow)


class FencedJournal:
    """The store seen through one lease (see :meth:`Store.fenced`): reads pass through, writes
    raise :class:`LeaseLost` once another owner has acquired the lease."""

    def __init__(self, store: Store, lease: Lease) -> None:
        self.store = store
        self.lease = lease

    async def run_started(self, run: RunRecord) -> None:
        await self.store.run_started(run, fence=self.lease)

    async def record(self, entry: JournalEntry) -> None:
        await self.store.record(entry, fence=self.lease)

    async def run_finished(self, run: RunRecord) -> None:
        await self.store.run_finished(run, fence=self.lease)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self.store.get_run(run_id)

    async def entries(self, run_id: str) -> list[JournalEntry]:
        return await self.store.entries(run_id)

    async def unfinished_runs(self) -> list[RunRecord]:
        return await self.store.unfinished_runs()


def _is_a_journal(store: Store, fenced: FencedJournal) -> tuple[Journal, Journal]:
    """Static proof (checked by mypy) that both satisfy the engine's protocol."""
    return store, fenced
