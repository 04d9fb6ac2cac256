"""The controller's status book: every workflow's status row, cached, with batched writes.

It sits between the planner's decisions and the store (planner → **statuses** → store): the
:class:`~reconciler.daemon.controller.Controller` reads a workflow's
:class:`~reconciler.store.WorkflowStatusRecord` here before planning, and puts the planner's new
record here afterwards; the HTTP API reads through it, so it sees what the controller decided
even before the row is on disk.

Why it exists: a drift pass over 10,000 workflows that are all in sync decides nothing new, yet
reading and writing each status row in a transaction of its own cost ~1.8 ms per workflow
(SQLite with ``synchronous=FULL`` syncs every commit): 18 s for the pass, and the first start
on 10,000 new workflows took 11 s to record them. Here

- a daemon that owns its store alone (SQLite, or a single replica) keeps every row in memory,
  loaded once at start (:meth:`StatusBook.load`), so reads never touch the store;
- a **durable** write — a run's outcome, a suspend or resume through the API: what checking
  the workflow again would not decide again — is committed before :meth:`StatusBook.put`
  returns. Puts that arrive while a commit is in progress are committed together in the next;
- everything else is **written behind**: a check's outcome (in sync, out of sync before its
  run, invalid, waiting for a dependency) and any write that only moves bookkeeping (when it was
  observed, when it is checked next, the revision last checked). It is visible here at once
  and reaches the store in one batch once the controller is idle (at the latest after
  ``max_delay`` seconds, and on :meth:`StatusBook.close`): a commit in the middle of a pass
  slows the pass and every other store write. A crash loses only what the next start decides
  again, since it checks every workflow;
- ``put(record, wait=False)`` commits a durable change as soon as it can without the caller
  waiting: the Progressing status of a run that is starting (the run's own record is what makes
  it resumable).

With replicas sharing a PostgreSQL store (``shared=True``) other processes write rows too: every
read goes to the store (a row this process has not committed yet is returned from memory) and
every write is durable, so the next lease holder reads what this one decided. A record put with
``fence=`` (the workflow's lease, when it was decided under one) is written only if that lease is
still current, checked in the writing transaction: a replica that lost the workflow to another
cannot overwrite what the new holder decided. Such a record is dropped, never retried, and
:meth:`StatusBook.put` raises :class:`~reconciler.errors.LeaseLost` to a caller that waits.

What callers may rely on: :meth:`get` after :meth:`put` returns what was put; :meth:`close`
commits everything pending; a failed batch stays pending (unless a newer record replaced it)
and is retried, each failure logged once with the store's message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping

import structlog

from reconciler.errors import LeaseLost, StoreError
from reconciler.status import WorkflowStatusRecord
from reconciler.store import Lease, Store

log = structlog.get_logger("reconciler.daemon")

LOSSLESS_FIELDS = frozenset(
    {"updated_at", "next_check_at", "observed_at", "last_applied_revision", "message"}
)
"""Fields whose latest value a crash may lose: the next start re-checks every workflow."""

RETRY_DELAY = 2.0
"""Seconds before a batch the store refused is tried again."""


def bookkeeping_changes(
    old: WorkflowStatusRecord | None, new: WorkflowStatusRecord
) -> set[str] | None:
    """The fields ``new`` changes from ``old`` if they are all :data:`LOSSLESS_FIELDS`, else
    ``None`` (``new`` must be written durably)."""
    if old is None:
        return None
    changed = {f for f in WorkflowStatusRecord.model_fields if getattr(old, f) != getattr(new, f)}
    return changed if changed <= LOSSLESS_FIELDS else None


class StatusBook:
    """Every workflow's status record for one controller (see the module docstring).

    ``idle`` says whether the controller has nothing in hand: written-behind records wait for
    such a moment (a commit in the middle of a pass slows both down), at most ``max_delay``
    seconds.
    """

    def __init__(
        self,
        store: Store,
        *,
        shared: bool = False,
        idle: Callable[[], bool] = lambda: True,
        delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> None:
        self.store = store
        self.shared = shared
        self.idle = idle
        self.delay = delay
        self.max_delay = max_delay
        self._known: dict[str, WorkflowStatusRecord] = {}
        self._loaded = False
        self._pending: dict[str, WorkflowStatusRecord] = {}
        self._full: set[str] = set()
        """Pending names whose whole row must be written (the others: bookkeeping only)."""
        self._urgent_names: set[str] = set()
        """Pending names whose record is committed without waiting for a quiet moment."""
        self._touched: set[str] = set()
        """The bookkeeping fields pending records changed (what a partial write must cover)."""
        self._fences: dict[str, Lease] = {}
        """Pending names whose record may only be written while this lease is current."""
        self._behind_since: float | None = None
        """Loop time since when bookkeeping has been waiting to be written."""
        self._waiters: list[tuple[str, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._writing = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._failing = False

    # -- reads -------------------------------------------------------------------------------

    async def load(self) -> list[WorkflowStatusRecord]:
        """Every workflow's status (read from the store once; on every call when shared)."""
        if self._loaded and not self.shared:
            return sorted(self._known.values(), key=lambda r: r.name)
        rows = await self.store.list_statuses()
        if not self.shared:
            self._known = {r.name: r for r in rows}
            self._known.update(self._pending)
            self._loaded = True
            return sorted(self._known.values(), key=lambda r: r.name)
        mine = dict(self._pending)
        return sorted(
            [mine.pop(r.name, r) for r in rows] + list(mine.values()), key=lambda r: r.name
        )

    async def get(self, name: str) -> WorkflowStatusRecord | None:
        """The status of workflow ``name``, or ``None`` if it has none (new or retired)."""
        if name in self._pending:
            return self._pending[name]
        if self.shared or not self._loaded:
            return await self.store.get_status(name)
        return self._known.get(name)

    # -- writes ------------------------------------------------------------------------------

    async def put(
        self,
        record: WorkflowStatusRecord,
        *,
        durable: bool = True,
        wait: bool = True,
        fence: Lease | None = None,
    ) -> None:
        """Store ``record``; committed on return if it is ``durable`` and changes more than
        bookkeeping, else written behind.

        ``durable=False`` is for what checking the workflow again would decide again (a check's
        outcome, as opposed to a run's or a person's). ``wait=False`` commits a durable change
        as soon as possible without waiting for it: for a status that only announces what a
        durable record (a run) already says. ``fence``: the lease ``record`` was decided under;
        the record is written only while it is current, else dropped (and :class:`LeaseLost`
        raised here when waiting).
        """
        name = record.name
        if fence is not None:
            self._fences[name] = fence
        else:
            self._fences.pop(name, None)
        previous = self._pending.get(name) or self._known.get(name)
        changes = bookkeeping_changes(previous, record) if self._loaded else None
        behind = not self.shared and self._loaded and (changes is not None or not durable)
        if not self.shared:  # shared: reads go to the store, nothing to keep
            self._known[name] = record
        self._pending[name] = record
        if changes is None:
            self._full.add(name)
        else:
            self._touched |= changes
        if not behind:  # (a durable record replaced by a bookkeeping one stays urgent)
            self._urgent_names.add(name)
        self._start_flusher()
        self._wake.set()
        if behind:
            return
        self._urgent.set()
        if not wait:
            return
        done = asyncio.get_running_loop().create_future()
        self._waiters.append((name, done))
        await done

    def learn(self, record: WorkflowStatusRecord) -> None:
        """Take in ``record`` as the store has it now (written there by someone else: a suspend
        or resume committed with its command). Nothing is written; a record of the same
        workflow still waiting to be written is replaced by it, so it cannot undo it."""
        name = record.name
        if not self.shared:
            self._known[name] = record
        if name in self._pending:
            self._pending[name] = record
            self._full.add(name)

    async def delete(self, name: str, *, fence: Lease | None = None) -> bool:
        """Drop the row of a retired workflow; returns whether it existed. With ``fence``,
        raises :class:`LeaseLost` (nothing deleted) once that lease is no longer current."""
        self._known.pop(name, None)
        self._pending.pop(name, None)
        self._fences.pop(name, None)
        self._full.discard(name)
        self._urgent_names.discard(name)
        async with self._writing:
            return await self.store.delete_status(name, fence=fence)

    async def flush(self) -> None:
        """Commit everything pending now (raises :class:`StoreError` if the store refuses)."""
        async with self._writing:
            await self._write_batch()

    async def close(self) -> None:
        """Commit what is pending and stop the background writer (errors are logged)."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        with contextlib.suppress(StoreError):
            await self.flush()

    # -- the writer --------------------------------------------------------------------------

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="status-writer")

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._behind_since is None:
                self._behind_since = loop.time()
            deadline = self._behind_since + self.max_delay
            while not self._urgent.is_set() and loop.time() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self.delay)
                if self.idle():
                    break
            # A real change goes at once; bookkeeping only when quiet, or when it waited long.
            everything = self.idle() or loop.time() >= deadline
            self._urgent.clear()
            try:
                async with self._writing:
                    await self._write_batch(everything=everything)
            except StoreError:
                await asyncio.sleep(RETRY_DELAY)
                self._wake.set()
            if self._pending:
                self._wake.set()  # bookkeeping left for a quiet moment
            else:
                self._behind_since = None

    async def _write_batch(self, *, everything: bool = True) -> None:
        waiters = self._waiters
        if everything:
            batch, fields, full = self._pending, self._touched, self._full
            self._pending, self._touched, self._full = {}, set(), set()
            self._behind_since = None
        else:
            urgent = self._urgent_names & self._pending.keys()
            batch = {n: self._pending.pop(n) for n in urgent}
            full = self._full & urgent
            self._full -= urgent
            fields = set()
        fences = {n: self._fences.pop(n) for n in batch if n in self._fences}
        self._urgent_names, self._waiters = set(), []
        refused: set[str] = set()
        try:
            whole = [r for n, r in batch.items() if n in full]
            if whole:
                refused |= await self.store.put_statuses(whole, fences=fences)
            touched = [r for n, r in batch.items() if n not in full]
            if touched and fields:
                refused |= await self.store.touch_statuses(touched, fields=fields, fences=fences)
        except StoreError as exc:
            self._touched |= fields
            self._keep_pending(batch, fences=fences, full=full, urgent=not everything)
            if not self._failing:
                log.error(f"writing {len(batch)} workflow statuses failed: {exc}; retrying")
            self._failing = True
            self._resolve(waiters, exc)
            raise
        if self._failing:
            log.info("workflow statuses are written again")
            self._failing = False
        for name in sorted(refused):
            log.warning(
                f"the status of workflow {name} was not written: this replica lost its lease "
                "on it (LeaseLost); the replica holding it now decides it",
                workflow=name,
                error="LeaseLost",
            )
        self._resolve(waiters, None, refused={n: fences[n] for n in refused})

    def _keep_pending(
        self,
        batch: Mapping[str, WorkflowStatusRecord],
        *,
        fences: Mapping[str, Lease],
        full: set[str],
        urgent: bool,
    ) -> None:
        """Put back a batch the store refused, so that it is retried (a newer record wins)."""
        for name, record in batch.items():
            if name in self._pending:
                continue
            self._pending[name] = record
            if name in fences:
                self._fences[name] = fences[name]
            if name in full:
                self._full.add(name)
            if urgent:
                self._urgent_names.add(name)

    @staticmethod
    def _resolve(
        waiters: Iterable[tuple[str, asyncio.Future[None]]],
        error: StoreError | None,
        *,
        refused: Mapping[str, Lease] | None = None,
    ) -> None:
        for name, waiter in waiters:
            if waiter.done():
                continue
            lease = (refused or {}).get(name)
            if error is not None:
                waiter.set_exception(type(error)(str(error)))
            elif lease is not None:
                waiter.set_exception(
                    LeaseLost(
                        f"the status of workflow {name} was refused: lease {lease.name!r} "
                        f"(token {lease.fencing_token}) is no longer held by {lease.owner!r}"
                    )
                )
            else:
                waiter.set_result(None)
