"""Built-in ``sql.query`` (check) and ``sql.exec``: read and change SQLite and PostgreSQL databases.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into one of the
requests below and awaits :meth:`run`; the response becomes ``outputs.<as>``, the ``result`` of
a ``poll`` or the ``observed`` state of an ``observe`` probe (``sql.query`` is a check plugin),
and is journaled by the store. Talks to the database through SQLAlchemy's asyncio engines
(``aiosqlite`` for SQLite, ``psycopg`` for PostgreSQL), one engine per DSN, cached by each plugin
instance for the life of the process and disposed by :meth:`close`; connections are not pooled
(each action logs in afresh, see :class:`_Engines`).

Why one module of ~700 lines: ``sql.query`` and ``sql.exec`` share the engines, the DSN checks
against the operator's grants, the transaction rules and the error mapping; a module per plugin
would only move all of that into a third module they both import.

What callers may rely on:

* values reach the database only as bound parameters (``:name`` in the SQL, ``params:`` in the
  request); for PostgreSQL they are bound by psycopg on the client side with its own quoting,
  so a parameter works in every statement, ``CREATE ROLE ... PASSWORD :password`` included;
* one transaction per action: every statement of an ``sql.exec`` commits together or not at
  all; a failure, a timeout or a cancellation rolls it back; ``sql.query`` always rolls back
  (and runs read-only on PostgreSQL);
* ``changed`` comes from the row counts: true if a statement affected a row, or if it was a
  statement that reports no count (DDL); an ``unless`` guard query that returns a row skips
  the statements and reports ``changed: false``;
* driver errors become named errors: ``ConnectionFailed`` (unreachable, retryable),
  ``AuthenticationFailed``, ``InvalidSQL`` (syntax, unknown column, wrong type), ``NotFound``
  (a table, role or database that does not exist), ``Conflict`` (unique violation, an object
  that already exists), ``SerializationFailure`` (deadlock, serialization, lock; retryable),
  ``SQLError`` (anything else), ``Timeout``;
* a DSN's local files pass the operator's grants (``context.granted().check_path``): the SQLite
  database file (a path or a ``file:`` URI) and, for PostgreSQL, the files libpq would read
  (``sslcert``, ``sslkey``, ``sslrootcert``, ``sslcrl``, ``sslcrldir``, ``passfile``). A path
  outside the file roots, under the data directory or the daemon's clone, or a special file is
  ``PathNotAllowed`` before any connection is made;
* a workflow's PostgreSQL DSN without a password is never completed by libpq with the
  daemon's ``PGPASSWORD`` or ``~/.pgpass`` (``PGPASSFILE``);
* a SQLite connection can reach no other file than its DSN's: ``ATTACH DATABASE`` and
  ``VACUUM INTO`` (which would read or write any path the daemon's user can, its store
  included) are refused as ``PathNotAllowed``;
* the DSN's password never appears in an error or a log line: DSNs are shown as
  ``postgresql+psycopg://***@host/db`` (``reconciler.urls.mask_url``), and every text from the
  driver is passed through ``context.redact`` with the password and the parameter values masked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import sqlite3
import stat
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

from pydantic import ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from reconciler.config.models import Duration
from reconciler.errors import (
    ActionError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    NotFound,
    PathNotAllowed,
    PluginError,
    Timeout,
)
from reconciler.grants import Grants
from reconciler.plugin import ActionContext, LocalPath, Plugin, Request, Response
from reconciler.urls import mask_url

from ._common import SERVER_RETRY, AuthenticationFailed, default_url, redact_all, seconds_for

__all__ = [
    "ROW_CAP",
    "InvalidSQL",
    "SQLError",
    "SerializationFailure",
    "SqlExec",
    "SqlExecRequest",
    "SqlExecResponse",
    "SqlQuery",
    "SqlQueryRequest",
    "SqlQueryResponse",
]

ROW_CAP = 10_000
"""Rows ``sql.query`` returns at most (``maxRows`` may lower it)."""

DEFAULT_DSN_VARIABLE = "RECONCILER_SQL_DSN"
"""If set in the daemon's environment, ``init()`` checks at start-up that this database answers."""


class SQLError(PluginError):
    """The database refused the statement for a reason not named more precisely below."""

    retryable = False


class InvalidSQL(SQLError):
    """The statement is wrong: a syntax error, an unknown column or function, a type mismatch."""

    retryable = False


class SerializationFailure(SQLError):
    """A deadlock, a serialization failure or a lock not obtained: the same call may succeed."""

    retryable = True


Param = str | int | float | bool | None | list[str | int | float | bool | None]
Dsn = Annotated[str, Field(min_length=1)]


def _check_dsn(value: str) -> str:
    try:
        url = make_url(value)
    except sa_exc.ArgumentError:
        raise ValueError(
            "not a database URL (e.g. postgresql://user@host/db or sqlite:///file.db)"
        ) from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return value


class _SqlRequest(Request):
    model_config = ConfigDict(alias_generator=to_camel)

    dsn: Annotated[Dsn, LocalPath(paths=lambda dsn: local_files(dsn))] = Field(
        description=(
            "SQLAlchemy database URL: postgresql://user:password@host:5432/db or "
            "sqlite:///relative/or/absolute.db (relative to the workdir). It usually holds a "
            "password, so pass a secret: ${{ secrets.admin_dsn }}."
        )
    )
    params: dict[str, Param] = Field(
        default_factory=dict,
        description="Values bound to the `:name` placeholders of the SQL (never interpolated).",
    )
    timeout: Duration = Field(
        timedelta(seconds=30),
        description="Deadline of the whole call (connect included); bounded by the action's.",
    )

    @field_validator("dsn")
    @classmethod
    def _dsn_ok(cls, value: str) -> str:
        return _check_dsn(value)


class SqlQueryRequest(_SqlRequest):
    """What ``sql.query`` reads."""

    query: str = Field(min_length=1, description="One SELECT (or other read-only) statement.")
    max_rows: int = Field(
        1000, ge=1, le=ROW_CAP, description="Rows returned at most; `truncated` says when cut."
    )
    raise_on_failure: bool = Field(
        True,
        description=(
            "Raise a named error when the query fails. If false, a failure (cannot connect, "
            "login refused, missing table...) returns ok=false with the error's name and "
            "reason instead, which suits an observe probe such as 'can the app log in?'."
        ),
    )


class SqlQueryResponse(Response):
    """The rows the query returned."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: a query changes nothing.")
    rows: list[dict[str, Any]] = Field(
        default_factory=list, description="Rows as column → value maps (JSON-able values)."
    )
    row_count: int = Field(0, description="Number of rows in `rows`.")
    columns: list[str] = Field(default_factory=list, description="Column names, in order.")
    truncated: bool = Field(False, description="True if the query returned more than maxRows.")
    ok: bool = Field(True, description="False if the query failed (raiseOnFailure: false).")
    error: str | None = Field(None, description="Name of the error when ok is false.")
    reason: str = Field("", description="Why the query failed; '' when ok.")


class SqlExecRequest(_SqlRequest):
    """What ``sql.exec`` runs, in one transaction."""

    sql: str | list[str] = Field(
        description=(
            "A statement, or a list of statements run in order in one transaction; each may "
            "use the `:name` placeholders of `params`."
        )
    )
    unless: str | None = Field(
        None,
        description=(
            "A guard query run first in the same transaction: if it returns a row, nothing "
            "else runs and the response says changed: false (like Ansible's `creates`)."
        ),
    )
    autocommit: bool = Field(
        False,
        description=(
            "Run outside a transaction, each statement committing on its own; needed for "
            "statements PostgreSQL refuses in a transaction (CREATE DATABASE). One statement only."
        ),
    )

    @field_validator("sql")
    @classmethod
    def _statements_present(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items or any(not s.strip() for s in items):
            raise ValueError("give at least one non-empty statement")
        return value

    def statements(self) -> list[str]:
        return [self.sql] if isinstance(self.sql, str) else list(self.sql)


class SqlExecResponse(Response):
    """What the statements did."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(
        False, description="True if a statement affected a row or reported no count (DDL)."
    )
    row_counts: list[int] = Field(
        default_factory=list,
        description="Rows affected by each statement (-1 where the database reports none).",
    )
    skipped: bool = Field(False, description="True if the `unless` guard returned a row.")


# ----------------------------------------------------------------------------- DSNs and engines


def shown_dsn(url: URL) -> str:
    """The DSN fit for a message, credentials masked by :func:`reconciler.urls.mask_url`."""
    return mask_url(url.render_as_string(hide_password=False))


LIBPQ_FILE_PARAMETERS = ("sslcert", "sslkey", "sslrootcert", "sslcrl", "sslcrldir", "passfile")
"""Query parameters of a PostgreSQL DSN that name a file libpq reads."""


def _sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL opens (its path, or the path of a ``file:`` URI), if any."""
    database = url.database or ""
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        return unquote(urlsplit(database).path) or None
    return database


def _libpq_files(url: URL) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in LIBPQ_FILE_PARAMETERS:
        value = url.query.get(key)
        if isinstance(value, str):
            out[key] = value
        elif value:
            out[key] = value[-1]
    return out


def local_files(dsn: str) -> list[str]:
    """The local files ``dsn`` names (the SQLite database, libpq's certificates, keys and
    passfile); none for a DSN that is not a URL."""
    try:
        url = make_url(dsn)
    except sa_exc.ArgumentError:
        return []
    if url.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        return [path] if path else []
    return list(_libpq_files(url).values())


def _granted_file(grants: Grants, path: str, workdir: Path) -> Path:
    """``path`` checked by ``grants``; an existing one must be a regular file or, for libpq's
    ``sslcrldir``, a directory (SQLite opening a FIFO would block its thread for good)."""
    resolved = grants.check_path(path, base=workdir)
    try:
        mode = resolved.stat().st_mode
    except OSError:
        return resolved
    if not stat.S_ISDIR(mode):
        grants.require_regular(resolved, mode)
    return resolved


def _async_url(dsn: str, workdir: Path, grants: Grants | None = None) -> URL:
    """The URL of ``dsn`` with an asyncio driver, SQLite paths resolved against ``workdir``.

    With ``grants`` (a workflow's DSN), every local file the URL names must be granted and is
    replaced by its resolved path; without (the operator's own default DSN) none is checked.
    """
    url = make_url(dsn)
    if url.get_backend_name() == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
        database = url.database or ""
        path = _sqlite_file(url)
        if grants is not None and path is not None:
            resolved = _granted_file(grants, path, workdir)
            if database.startswith("file:"):
                url = url.set(database=f"file:{quote(str(resolved))}")
            else:
                url = url.set(database=str(resolved))
        elif (
            database
            and database != ":memory:"
            and not database.startswith("file:")
            and not Path(database).is_absolute()
        ):
            url = url.set(database=str(workdir / database))
        return url
    if grants is not None:
        files = _libpq_files(url)
        if files:
            url = url.update_query_dict(
                {key: str(_granted_file(grants, value, workdir)) for key, value in files.items()}
            )
        url = _without_ambient_password(url)
    return url.set(drivername="postgresql+psycopg")


_NO_PASSFILE = os.path.join(os.devnull, "none")
"""A password file that cannot exist (libpq skips a missing one silently)."""


def _without_ambient_password(url: URL) -> URL:
    """A workflow's URL that libpq cannot complete with the daemon's password.

    libpq takes a password the connection string does not give from ``PGPASSWORD`` or from
    ``~/.pgpass`` (``PGPASSFILE``): the daemon's, for its store. An explicit empty password
    keeps ``PGPASSWORD`` out, and a password file that does not exist keeps the daemon's out
    (a workflow's own ``passfile``, already granted, stays).
    """
    extra: dict[str, str] = {}
    if not url.password and "password" not in url.query:
        extra["password"] = ""
    if "passfile" not in url.query:
        extra["passfile"] = _NO_PASSFILE
    return url.update_query_dict(extra) if extra else url


class _SingleFileConnection(sqlite3.Connection):
    """A SQLite connection that may attach no other database file.

    ``ATTACH`` and ``VACUUM INTO`` name a file in SQL text, where the grants never see it; with
    the attached-database limit at 0 SQLite refuses both (an authorizer would not see
    ``VACUUM INTO``). aiosqlite passes ``factory`` on to :func:`sqlite3.connect`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)


_ATTACH_REFUSED = "too many attached databases"
"""SQLite's words when :class:`_SingleFileConnection` refuses an ``ATTACH`` or ``VACUUM INTO``."""


class _Engines:
    """Engines by DSN for one plugin instance (and one event loop).

    An engine is cached, its connections are not (``NullPool``): every action logs in afresh,
    so a probe such as "can this role log in?" is answered by a real login, a session of a
    dropped role or a changed password is never reused, and an idle daemon holds no
    connections. At reconcile cadence the cost of a connection per action is negligible.
    """

    def __init__(self) -> None:
        self._engines: dict[str, tuple[asyncio.AbstractEventLoop, AsyncEngine]] = {}

    def get(self, url: URL) -> AsyncEngine:
        key = url.render_as_string(hide_password=False)
        loop = asyncio.get_running_loop()
        cached = self._engines.get(key)
        if cached is not None and cached[0] is loop:
            return cached[1]
        if url.get_backend_name() == "postgresql":
            from psycopg import AsyncClientCursor

            engine = create_async_engine(
                url,
                poolclass=NullPool,
                connect_args={"cursor_factory": AsyncClientCursor, "connect_timeout": 10},
            )
        else:
            engine = create_async_engine(
                url, poolclass=NullPool, connect_args={"factory": _SingleFileConnection}
            )
        self._engines[key] = (loop, engine)
        return engine

    async def dispose(self) -> None:
        engines, self._engines = self._engines, {}
        for loop, engine in engines.values():
            if loop is asyncio.get_running_loop():
                await engine.dispose()


# ----------------------------------------------------------------------------- error mapping

_PG_NOT_FOUND = {"42P01", "42704", "3D000", "3F000", "42883"}
"""undefined table / object / database / schema / function."""
_PG_CONFLICT = {"23505", "42710", "42P04", "42P06", "42P07", "42723"}
"""unique violation / duplicate object / database / schema / table / function."""
_PG_RETRYABLE = {"40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03"}
"""serialization failure, deadlock, lock not available, too many connections, shutting down."""
_PG_AUTH = {"28000", "28P01"}
"""invalid authorization / password."""


def _server_words(orig: BaseException) -> str:
    """The database's message without the statement excerpt PostgreSQL appends (``LINE 1: ...``),
    which would show client-side bound parameters."""
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if not primary:
        return str(orig).strip()
    parts = [primary]
    for label, text_ in (
        ("DETAIL", getattr(diag, "message_detail", None)),
        ("HINT", getattr(diag, "message_hint", None)),
    ):
        if text_:
            parts.append(f"{label}: {text_}")
    return " ".join(parts)


def _to_error(
    exc: BaseException, *, where: str, context: ActionContext, hide: Sequence[str]
) -> ActionError:
    """The named error for a driver exception; its text names the DSN masked, never a secret."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    reason = redact_all(_server_words(orig) or type(orig).__name__, context, hide)
    message = f"{where}: {reason}"
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    sqlite_name: str | None = getattr(orig, "sqlite_errorname", None)
    details: dict[str, Any] = {"database": where}
    if sqlstate:
        details["sqlstate"] = sqlstate
        return _postgres_error(sqlstate)(message, details=details)
    if sqlite_name:
        details["sqliteError"] = sqlite_name
        return _sqlite_error(
            sqlite_name, str(orig).lower(), where=where, message=message, details=details
        )
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | OSError):
        return _connect_error(str(orig), where=where, reason=reason, details=details)
    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return InvalidRequest(message, details=details)
    if isinstance(exc, sa_exc.StatementError):
        # e.g. a placeholder with no value in params: raised before the database sees anything
        return InvalidSQL(message, details=details)
    return SQLError(message, details=details)


def _postgres_error(sqlstate: str) -> type[ActionError]:
    """The error type for a PostgreSQL SQLSTATE."""
    if sqlstate in _PG_NOT_FOUND:
        return NotFound
    if sqlstate in _PG_CONFLICT:
        return Conflict
    if sqlstate in _PG_RETRYABLE:
        return SerializationFailure
    if sqlstate in _PG_AUTH:
        return AuthenticationFailed
    if sqlstate.startswith("08"):
        return ConnectionFailed
    if sqlstate.startswith(("42", "22")):
        return InvalidSQL
    return SQLError


def _sqlite_error(
    name: str, text: str, *, where: str, message: str, details: dict[str, Any]
) -> ActionError:
    """The named error for SQLite's extended error ``name`` and its lower-cased ``text``."""
    if name.startswith("SQLITE_CONSTRAINT_UNIQUE") or name == "SQLITE_CONSTRAINT_PRIMARYKEY":
        return Conflict(message, details=details)
    if text.startswith(_ATTACH_REFUSED):
        return PathNotAllowed(
            f"{where}: ATTACH and VACUUM INTO are not allowed: a workflow's SQLite "
            "connection reaches its own database file only",
            details=details,
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return SerializationFailure(message, details=details)
    if name.startswith("SQLITE_CANTOPEN"):
        return ConnectionFailed(message, details=details, retryable=False)
    if text.startswith(("no such table", "no such view", "no such index")):
        return NotFound(message, details=details)
    if "already exists" in text:
        return Conflict(message, details=details)
    if name == "SQLITE_ERROR":
        return InvalidSQL(message, details=details)
    return SQLError(message, details=details)


def _connect_error(said: str, *, where: str, reason: str, details: dict[str, Any]) -> ActionError:
    """A failed connection attempt: psycopg reports it without a SQLSTATE, in the server's
    words (``said``)."""
    if "password authentication failed" in said or ("role " in said and "does not exist" in said):
        return AuthenticationFailed(f"{where}: login refused ({reason})", details=details)
    if "database " in said and "does not exist" in said:
        return NotFound(f"{where}: {reason}", details=details)
    return ConnectionFailed(f"{where}: cannot connect ({reason})", details=details)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _hidden(url: URL, params: dict[str, Param]) -> list[str]:
    """Texts never to show: the DSN's password and every string parameter (also quoted)."""
    out = [url.password] if isinstance(url.password, str) else []
    for value in params.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                # as given, and as a client-side bound literal shows it in a server message
                doubled = item.replace("'", "''")
                out += [item, doubled, doubled.replace("\\", "\\\\")]
    return out


class _SqlPlugin:
    """What ``sql.query`` and ``sql.exec`` share: engines, deadlines and error mapping."""

    def __init__(self) -> None:
        self._engines = _Engines()

    async def init(self) -> None:
        dsn = default_url(DEFAULT_DSN_VARIABLE)
        if dsn is None:
            return
        url = _async_url(dsn, Path.cwd())
        try:
            async with asyncio.timeout(10):
                async with self._engines.get(url).connect() as conn:
                    await conn.execute(text("select 1"))
        except TimeoutError:
            raise ConnectionFailed(
                f"the database of {DEFAULT_DSN_VARIABLE} ({shown_dsn(url)}) gave no answer "
                "within 10s"
            ) from None
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            mapped = _to_error(
                exc, where=shown_dsn(url), context=_NO_CONTEXT, hide=_hidden(url, {})
            )
            raise ConnectionFailed(
                f"the database of {DEFAULT_DSN_VARIABLE} is not usable: {mapped.message}"
            ) from None

    async def close(self) -> None:
        await self._engines.dispose()

    async def _with_connection(
        self,
        request: _SqlRequest,
        context: ActionContext,
        work: Any,
        *,
        autocommit: bool = False,
        readonly: bool = False,
    ) -> Any:
        url = _async_url(request.dsn, Path(context.workdir), context.granted())
        where = shown_dsn(url)
        hide = _hidden(url, request.params)
        seconds = seconds_for(request.timeout, context)
        try:
            async with asyncio.timeout(seconds):
                engine = self._engines.get(url)
                if autocommit:
                    async with engine.connect() as raw:
                        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
                        return await work(conn)
                async with engine.connect() as conn:
                    if readonly and url.get_backend_name() == "postgresql":
                        conn = await conn.execution_options(postgresql_readonly=True)
                    async with conn.begin() as transaction:
                        result = await work(conn)
                        if readonly:
                            await transaction.rollback()
                        return result
        except TimeoutError:
            raise Timeout(
                f"{where}: no answer within {seconds:g}s; the transaction was rolled back",
                details={"database": where},
            ) from None
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise _to_error(exc, where=where, context=context, hide=hide) from None


class _NoContext:
    """Stands in for an :class:`ActionContext` where none exists (``init``)."""

    @staticmethod
    def redact(text_: str) -> str:
        return text_


_NO_CONTEXT: Any = _NoContext()


class SqlQuery(_SqlPlugin, Plugin[SqlQueryRequest, SqlQueryResponse]):
    """Run a read-only query and return its rows (SQLite, PostgreSQL).

    The query runs in a transaction that is always rolled back, read-only on PostgreSQL.
    With ``raiseOnFailure: false`` a failure returns ``ok: false`` with the error's name.
    Errors: ``ConnectionFailed`` (retryable), ``AuthenticationFailed``, ``InvalidSQL``,
    ``NotFound`` (unknown table, role, database), ``SerializationFailure`` (retryable),
    ``SQLError``, ``Timeout``. Default retry: 3 attempts, about 1s then 2s apart, on retryable
    errors only.
    """

    check = True
    Request = SqlQueryRequest
    Response = SqlQueryResponse
    retry = SERVER_RETRY
    errors = (
        ConnectionFailed,
        AuthenticationFailed,
        InvalidSQL,
        NotFound,
        SerializationFailure,
        SQLError,
        Timeout,
        PathNotAllowed,
    )

    async def run(self, request: SqlQueryRequest, context: ActionContext) -> SqlQueryResponse:
        async def work(conn: AsyncConnection) -> SqlQueryResponse:
            result = await conn.execute(text(request.query), request.params)
            if not result.returns_rows:
                return SqlQueryResponse()
            columns = list(result.keys())
            fetched = result.fetchmany(request.max_rows + 1)
            truncated = len(fetched) > request.max_rows
            rows = [
                {c: _redact_value(_jsonable(v), context) for c, v in zip(columns, r, strict=True)}
                for r in fetched[: request.max_rows]
            ]
            return SqlQueryResponse(
                rows=rows, row_count=len(rows), columns=columns, truncated=truncated
            )

        try:
            response: SqlQueryResponse = await self._with_connection(
                request, context, work, readonly=True
            )
        except ActionError as exc:
            if request.raise_on_failure:
                raise
            return SqlQueryResponse(ok=False, error=exc.name, reason=str(exc))
        return response


def _redact_value(value: Any, context: ActionContext) -> Any:
    if isinstance(value, str):
        return context.redact(value)
    if isinstance(value, list):
        return [_redact_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v, context) for k, v in value.items()}
    return value


class SqlExec(_SqlPlugin, Plugin[SqlExecRequest, SqlExecResponse]):
    """Run statements in one transaction; changed when a row was affected (SQLite, PostgreSQL).

    Every statement commits together or not at all (a failure, timeout or cancellation rolls
    back). ``unless`` is a guard query: when it returns a row nothing runs. Errors:
    ``ConnectionFailed`` (retryable), ``AuthenticationFailed``, ``InvalidSQL``, ``NotFound``,
    ``Conflict`` (unique violation, object already exists), ``SerializationFailure``
    (retryable), ``SQLError``, ``Timeout``. Default retry: 3 attempts on retryable errors only
    (safe: a failed transaction left nothing behind).
    """

    Request = SqlExecRequest
    Response = SqlExecResponse
    retry = SERVER_RETRY
    errors = (
        ConnectionFailed,
        AuthenticationFailed,
        InvalidSQL,
        NotFound,
        Conflict,
        SerializationFailure,
        SQLError,
        Timeout,
        InvalidRequest,
        PathNotAllowed,
    )

    async def run(self, request: SqlExecRequest, context: ActionContext) -> SqlExecResponse:
        statements = request.statements()
        if request.autocommit and (len(statements) > 1 or request.unless is not None):
            raise InvalidRequest("autocommit runs exactly one statement and no `unless` guard")

        async def work(conn: AsyncConnection) -> SqlExecResponse:
            if request.unless is not None:
                guard = await conn.execute(text(request.unless), request.params)
                if guard.returns_rows and guard.first() is not None:
                    return SqlExecResponse(changed=False, skipped=True)
            counts: list[int] = []
            for statement in statements:
                result = await conn.execute(text(statement), request.params)
                counts.append(result.rowcount if result.rowcount is not None else -1)
            changed = any(c != 0 for c in counts)
            return SqlExecResponse(changed=changed, row_counts=counts)

        response: SqlExecResponse = await self._with_connection(
            request, context, work, autocommit=request.autocommit
        )
        return response
