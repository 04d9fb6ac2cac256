"""Group commit: the runs' records, their journal entries and the workflows' statuses, written
by one writer in batches, one transaction per batch.

Called by: :class:`~reconciler.store.store.Store` (``run_started``, ``record``,
``run_finished``, ``put_statuses``, ``touch_statuses``), which hands each write here as a
:class:`Write` and, for a write its caller waits for, awaits it. Everything else the store does
(leases, the command log, reads) first waits for the writes handed here before it
(:meth:`GroupWriter.settle`), so the store still reads what was written before, in order.

Why: a run journals about six entries; written each in a transaction of its own, every entry
cost a commit (an ``fsync`` with SQLite ``synchronous=FULL``) and a dozen hand-offs between the
event loop and the database driver's thread, ~18 ms per run. Here one thread owns one
connection; it takes every write handed in since its last commit (all the concurrent runs'
entries, the status book's batch), applies them in one transaction — the journal rows in one
``executemany``, each run's row once with the net change of its entries — commits, and wakes the
event loop once for the whole batch. While it commits, the next batch gathers.

What callers may rely on:

- **Order.** Writes are committed in the order they were handed in, in batches that are atomic
  (all or none of a batch). So a write that is committed means every write handed in before it
  is committed too.
- **Waiting.** A write with a future (``wait``) resolves once its batch is committed (durable as
  the database's settings make a commit: see ``docs/operations.md``, "The store"), or with the
  error that refused it. A write handed in without waiting is committed with its batch; if it
  fails, its run is marked failed here: every later write of the same run (``key``) is refused
  with the same error, nothing of it is written, and the next one waited for raises it — so a
  run's journal never has a gap.
- **Fences.** A write fenced by a lease is checked in the batch's transaction (each lease once,
  in lease-name order, its row locked on PostgreSQL until the commit): a write whose lease is no
  longer current is refused with :class:`~reconciler.errors.LeaseLost`, alone; the other writes
  of the batch are committed. A status batch gets back the names it refused, as before.
- **Bad writes.** When a batch fails (a duplicate journal entry, a run the store does not know),
  its transaction is rolled back and each write is tried again alone, so only the bad one fails.

The durability promise the daemon builds on this (which entries it waits for, what a
``kill -9`` can lose, and why the resume is still exactly once) is in
:mod:`reconciler.daemon.journal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from reconciler.errors import LeaseLost, StoreError, StoreUnavailable
from reconciler.store import leases
from reconciler.store.records import Lease
from reconciler.store.tables import JOURNAL, RUNS

RUN_KEYS = frozenset(c.name for c in RUNS.columns) - {"requested_by", "cancelled_by"}
"""The columns a run upsert writes (who asked for or cancelled a run is the store's own)."""

MAX_BATCH = 2_000
"""Writes per transaction at most: a longer queue is committed in several batches."""


@dataclass(slots=True, eq=False)
class Write:
    """One write handed to the writer.

    ``run`` (a run's whole row: ``run_started``/``run_finished``), ``entry`` (a journal row)
    with ``changes`` (what it changes in its run's row), or ``statuses`` (status rows, through
    ``statement``, with a fence per name): exactly one of the three kinds. ``key`` is the run
    the write belongs to (``None`` for statuses). ``future`` is set when the caller waits.
    """

    key: str | None = None
    run: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    statuses: list[dict[str, Any]] | None = None
    statement: Any = None
    fence: Lease | None = None
    fences: Mapping[str, Lease] | None = None
    future: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    """The event loop that handed it in, whose waiters are woken there."""
    outcome: BaseException | set[str] | None = None
    """Set in the writer's thread: the error that refused it, or a status batch's refused names."""


class GroupWriter:
    """The one writer of a :class:`~reconciler.store.store.Store` (see the module docstring).

    ``engine`` is a synchronous SQLAlchemy engine on the store's database; its connections are
    only used from the writer's thread. ``describe`` names the database in messages and
    ``reason`` turns a driver error into one line without the password.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        url: URL,
        describe: Callable[[URL], str],
        reason: Callable[[BaseException, URL], str],
    ) -> None:
        self._engine = engine
        self._url = url
        self._describe = describe
        self._reason = reason
        self._dialect = engine.dialect.name
        self._insert: Any = (postgresql if self._dialect == "postgresql" else sqlite).insert
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._pending: list[Write] = []
        self._in_flight = 0
        """Writes handed in and not committed (or refused) yet; changed under ``_lock``."""
        self._closing = False
        self._failed: dict[str, BaseException] = {}
        """Runs whose write failed without a waiter: their later writes are refused."""
        self._thread: threading.Thread | None = None
        self._statements: dict[Any, Any] = {}

    # -- the event loop's side -----------------------------------------------------------------

    def submit(self, write: Write, *, wait: bool) -> asyncio.Future[Any] | None:
        """Hand ``write`` in; with ``wait``, the future resolved once it is committed."""
        loop = asyncio.get_running_loop()
        if self._closing:
            raise StoreUnavailable(f"the store is closed: {self._describe(self._url)}")
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="reconciler-store-writer", daemon=True
            )
            self._thread.start()
        write.loop = loop
        if wait:
            write.future = loop.create_future()
        with self._lock:
            self._in_flight += 1
            self._pending.append(write)
            self._ready.set()
        return write.future

    async def write(self, write: Write) -> Any:
        """Hand ``write`` in and wait until it is committed; returns a status batch's refused
        names (``None`` for other writes) or raises what refused it."""
        future = self.submit(write, wait=True)
        assert future is not None
        return await future

    @property
    def busy(self) -> bool:
        """Whether writes handed in are not committed yet."""
        return self._in_flight > 0

    async def settle(self) -> None:
        """Return once every write handed in before this call is committed (or refused)."""
        if self._in_flight:
            await self.write(Write())

    async def close(self) -> None:
        """Commit what was handed in, then stop the thread and close its connections."""
        if self._thread is not None and not self._closing:
            with contextlib.suppress(StoreError):
                await self.settle()
        self._closing = True
        if self._thread is not None:
            with self._lock:
                self._ready.set()
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        self._engine.dispose()

    @staticmethod
    def _resolve(batch: Sequence[Write]) -> None:
        """On the event loop: wake the waiters of a committed (or refused) batch."""
        for write in batch:
            future = write.future
            if future is None or future.done():
                continue
            outcome = write.outcome
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    # -- the writer's thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._ready.wait()
            with self._lock:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                if not self._pending:
                    self._ready.clear()
            if batch:
                try:
                    self._commit(batch)
                except Exception as exc:  # a bug below: the waiters must not wait forever
                    failure = StoreError(f"the store's writer failed: {type(exc).__name__}")
                    for write in batch:
                        if write.outcome is None:
                            write.outcome = failure
                with self._lock:
                    self._in_flight -= len(batch)
                self._wake(batch)
            elif self._closing:
                return

    def _wake(self, batch: list[Write]) -> None:
        """Hand ``batch`` back to the event loop(s) it came from, once per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Write]] = {}
        for write in batch:
            if write.future is not None and write.loop is not None:
                by_loop.setdefault(write.loop, []).append(write)
        for loop, writes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(self._resolve, writes)

    def _commit(self, batch: list[Write]) -> None:
        """Commit ``batch`` in one transaction; when that fails, each write alone."""
        live = [w for w in batch if not self._refused_as_failed(w)]
        try:
            with self._engine.begin() as conn:
                self._apply(conn, live)
        except (SQLAlchemyError, OSError) as exc:
            error = self._translate(exc)
            if len(live) == 1 or isinstance(error, StoreUnavailable):
                # the database is gone: each write alone would wait for it in turn
                for write in live:
                    write.outcome = error
                    self._remember_failure(write)
                return
            for write in live:
                write.outcome = None
                if self._refused_as_failed(write):
                    continue
                try:
                    with self._engine.begin() as conn:
                        self._apply(conn, [write])
                except (SQLAlchemyError, OSError) as alone:
                    write.outcome = self._translate(alone)
                self._remember_failure(write)
            return
        for write in live:
            self._remember_failure(write)

    def _refused_as_failed(self, write: Write) -> bool:
        """A write of a run whose earlier write failed unseen is refused with that error."""
        failed = self._failed.get(write.key) if write.key is not None else None
        if failed is None:
            return False
        write.outcome = failed
        return True

    def _remember_failure(self, write: Write) -> None:
        """A write nobody waits for that failed: its run's later writes are refused."""
        if (
            write.future is None
            and write.key is not None
            and isinstance(write.outcome, BaseException)
        ):
            self._failed[write.key] = write.outcome

    def _apply(self, conn: Connection, batch: list[Write]) -> None:
        """Everything ``batch`` writes, in ``conn``'s transaction: fences first, then the runs'
        rows, the journal rows, the runs' net changes, and the status batches in order."""
        refused = self._check_fences(conn, batch)
        plan = _Plan()
        for write in batch:
            if write.fence is not None and (write.fence.name, write.fence.fencing_token) in refused:
                write.outcome = leases.lost(write.fence)
            else:
                plan.add(write)
        if plan.rows:
            conn.execute(self._run_upsert(), list(plan.rows.values()))
        if plan.entries:
            conn.execute(JOURNAL.insert(), plan.entries)
        for columns, params in plan.updates().items():
            conn.execute(self._run_update(columns), params)
        for write in plan.statuses:
            self._write_statuses(conn, write, refused)

    @staticmethod
    def _write_statuses(conn: Connection, write: Write, refused: set[tuple[str, int]]) -> None:
        """A status batch without the rows whose lease is in ``refused``; those names become
        the write's outcome."""
        rows = write.statuses or []
        names = {_status_name(row) for row in rows}
        lost = {
            n
            for n, lease in (write.fences or {}).items()
            if n in names and (lease.name, lease.fencing_token) in refused
        }
        kept = [row for row in rows if _status_name(row) not in lost]
        if kept:
            conn.execute(write.statement, kept)
        write.outcome = lost

    def _check_fences(self, conn: Connection, batch: list[Write]) -> set[tuple[str, int]]:
        """The leases of ``batch`` no longer current, as (name, token); each checked once."""
        wanted: dict[tuple[str, int], Lease] = {}
        for write in batch:
            if write.fence is not None:
                wanted[(write.fence.name, write.fence.fencing_token)] = write.fence
            for lease in (write.fences or {}).values():
                wanted[(lease.name, lease.fencing_token)] = lease
        refused: set[tuple[str, int]] = set()
        for key in sorted(wanted):
            if conn.execute(leases.held_statement(wanted[key])).rowcount != 1:
                refused.add(key)
        return refused

    def _run_upsert(self) -> Any:
        cached = self._statements.get("run")
        if cached is None:
            ins = self._insert(RUNS)
            cached = self._statements["run"] = ins.on_conflict_do_update(
                index_elements=["id"], set_={k: ins.excluded[k] for k in RUN_KEYS if k != "id"}
            )
        return cached

    def _run_update(self, columns: tuple[str, ...]) -> Any:
        cached = self._statements.get(columns)
        if cached is None:
            cached = self._statements[columns] = (
                update(RUNS)
                .where(RUNS.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in columns})
            )
        return cached

    def _translate(self, exc: BaseException) -> StoreError:
        """A driver error as the store's named error (the password never in it)."""
        url = self._url
        if isinstance(exc, IntegrityError):
            return StoreError(f"the store refused the write: {self._reason(exc, url)}")
        if isinstance(exc, DBAPIError):
            if exc.connection_invalidated or isinstance(exc.orig, OSError):
                return StoreUnavailable(
                    f"lost the store: {self._describe(url)}: {self._reason(exc, url)}"
                )
            return StoreError(f"store operation failed: {self._reason(exc, url)}")
        if isinstance(exc, LeaseLost):
            return exc
        return StoreUnavailable(f"store unavailable: {self._describe(url)}: {exc}")


def _status_name(row: Mapping[str, Any]) -> Any:
    """The workflow a status row is about (``key`` in a partial update's parameters)."""
    return row.get("name", row.get("key"))


class _Plan:
    """A batch's writes merged into as few statements as they allow: each run's whole row
    once (a later entry's change folded in), the journal rows together, and each run's net
    change by the columns it sets; status batches as they came."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.changes: dict[str, dict[str, Any]] = {}
        self.entries: list[dict[str, Any]] = []
        self.statuses: list[Write] = []

    def add(self, write: Write) -> None:
        if write.run is not None:
            run_id = write.run["id"]
            self.rows[run_id] = dict(write.run)
            self.changes.pop(run_id, None)  # the whole row supersedes them
        elif write.entry is not None:
            self.entries.append(write.entry)
            if write.changes:
                run_id = write.entry["run_id"]
                target = self.rows.get(run_id)
                if target is None:
                    target = self.changes.setdefault(run_id, {})
                target.update(write.changes)
        elif write.statuses is not None:
            self.statuses.append(write)

    def updates(self) -> dict[tuple[str, ...], list[dict[str, Any]]]:
        """The runs' net changes, grouped by the columns they set (one statement each)."""
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for run_id, change in self.changes.items():
            by_columns.setdefault(tuple(sorted(change)), []).append({"_id": run_id, **change})
        return by_columns
