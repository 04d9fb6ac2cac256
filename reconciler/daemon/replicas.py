"""Replicas: several daemons sharing one PostgreSQL store split the work through leases.

Where it sits: inside the controller (:mod:`reconciler.daemon.controller`), between the
:class:`~reconciler.daemon.queue.WorkQueue` and the engine. Every replica fetches git itself and
queues every workflow of its snapshot; before a worker reconciles a workflow it claims the
workflow's lease (``workflow:<name>``, :meth:`reconciler.store.Store.acquire`, a conditional
``UPDATE`` that only one replica can win). A replica that cannot claim it skips the item: another
replica is on it, and the outcome lands in the shared store for everyone (statuses, runs, journal).

While held, a lease is renewed in the background every third of its TTL, and every journal write
of the run is *fenced* by it: :data:`FENCE` (a context variable, so child runs and the tasks a run
spawns inherit it) tells :class:`~reconciler.daemon.journal.DaemonJournal` which lease to pass
as ``fence=``, and the store refuses the write with :class:`~reconciler.errors.LeaseLost` once
another replica took the lease over. A failed renewal cancels the run's task; either way the
run stops *without* being recorded finished, and the new owner completes it.

Take-over: :meth:`WorkflowLeases.maintain` also scans the store's unfinished runs every third of
the TTL and hands the workflows of those not running here to the controller, which queues them; the
claim then succeeds only once the owner's lease expired (the owner died or was paused), and the
controller resumes the run in the state it was in.

What replicas skip, so that N of them do not do the work N times (the controller asks, under
the lease, in ``Reconciler._settled_elsewhere``): a workflow another replica reconciled at a
revision this one has not fetched yet (:meth:`WorkflowLeases.ahead_of_us`; it is checked again
after the next poll), a revision-triggered look at a workflow another replica converged at this
revision since it was loaded here (:meth:`WorkflowLeases.converged_here_since`), and a drift
check of a workflow another replica probed less than half its interval ago
(:meth:`WorkflowLeases.checked_recently`).

SQLite is single-replica: :class:`SqliteDaemonLock` takes an exclusive ``flock`` next to the
database file for the daemon's lifetime, so a second daemon on the same file fails at start with
a clear message (the kernel drops the lock when a daemon dies, even by ``kill -9``). Leases are
not used on SQLite (one daemon, one writer): :class:`WorkflowLeases` then grants every claim
without touching the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import structlog

from reconciler.errors import LeaseLost, StoreError
from reconciler.status import Health, WorkflowStatusRecord
from reconciler.store import Lease, Store

log = structlog.get_logger("reconciler.daemon")

FENCE: ContextVar[Lease | None] = ContextVar("reconciler_fence", default=None)
"""The lease fencing the journal writes of the run in the current task (``None``: unfenced)."""

LEASE_PREFIX = "workflow:"
DEFAULT_TTL = timedelta(seconds=30)


def current_fence() -> Lease | None:
    """The lease that journal writes made from this task must be fenced by, if any."""
    return FENCE.get()


def default_replica_id() -> str:
    """``<hostname>-<pid>-<random>``: unique per process, readable in the leases table."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def lease_name(workflow: str) -> str:
    return f"{LEASE_PREFIX}{workflow}"


class SqliteDaemonLock:
    """An exclusive ``flock`` on ``<database>.daemon.lock`` held while a daemon runs.

    :meth:`acquire` raises :class:`~reconciler.errors.StoreError` naming the holder's pid when
    another daemon already uses the same SQLite file. One-shot commands (``apply``) do not take
    it: they may write history next to a running daemon, as SQLite serialises writers.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".daemon.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreError(
                f"another reconciler daemon (pid {holder}) is already using the SQLite store "
                f"{self.database}: SQLite supports one daemon; "
                "stop it, or use a PostgreSQL store (--store postgresql://...) to run several "
                "replicas"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@dataclass
class _Held:
    lease: Lease
    task: asyncio.Task[object] | None
    lost: bool = False


class WorkflowLeases:
    """This replica's workflow leases: claim, fence, renew, release, and spot orphaned runs.

    ``shared`` is true on PostgreSQL (real leases); on SQLite every claim is granted without a
    lease and :meth:`start` takes the :class:`SqliteDaemonLock` instead.
    """

    def __init__(
        self,
        store: Store,
        *,
        owner: str | None = None,
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self.store = store
        self.owner = owner or default_replica_id()
        self.ttl = ttl
        self.shared = store.backend == "postgresql"
        self._held: dict[str, _Held] = {}
        self._lock: SqliteDaemonLock | None = None
        self._seen: set[str] = set()
        self._loaded_at: datetime | None = None

    @property
    def held(self) -> frozenset[str]:
        """Workflows whose lease this replica holds right now."""
        return frozenset(self._held)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """On SQLite, make sure this is the only daemon on the file (raises StoreError). On
        PostgreSQL, name the replica on every log line of the calling task and the tasks it
        starts afterwards (``replica=...``), so that merged logs say who did what."""
        if self.shared:
            structlog.contextvars.bind_contextvars(replica=self.owner)
            log.info(
                f"replica {self.owner}: sharing the store with any other replica "
                f"(lease TTL {self.ttl.total_seconds():g}s)",
                replica=self.owner,
            )
            return
        database = self.store.url.database
        if database:
            self._lock = SqliteDaemonLock(Path(database))
            self._lock.acquire()

    async def stop(self) -> None:
        """Release every lease still held (so another replica takes over at once) and the lock."""
        for held in list(self._held.values()):
            if not held.lost:
                with contextlib.suppress(StoreError):
                    await self.store.release(held.lease)
        self._held.clear()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- revisions ---------------------------------------------------------------------------

    def revision_loaded(self, revision: str, *, at: datetime) -> None:
        """Note that this replica now works at ``revision`` (loaded at ``at``)."""
        self._seen.add(revision)
        self._loaded_at = at

    def works_at(self, revision: str) -> None:
        """Note that this replica works at ``revision`` besides the one it loaded: it resumes a
        run with the spec that run started with there. The status that run leaves is then this
        replica's own work, not another replica being ahead (:meth:`ahead_of_us`), which would
        have this replica wait for a revision it may never load again."""
        self._seen.add(revision)

    def ahead_of_us(self, status: WorkflowStatusRecord | None) -> str | None:
        """The revision another replica reconciled this workflow at, when that is probably newer
        than this replica's: written after this replica loaded its revision, and never loaded
        here. Each replica fetches git on its own, so for up to a poll interval they may
        disagree; the one behind must not run the previous spec over the newer one's work.
        ``None`` when this replica may go ahead (always on SQLite)."""
        if not self.shared or status is None or self._loaded_at is None:
            return None
        revision = status.last_attempted_revision
        if revision is None or revision in self._seen or status.updated_at <= self._loaded_at:
            return None
        return revision

    def converged_here_since(
        self, status: WorkflowStatusRecord | None, *, revision: str, digest: str
    ) -> bool:
        """True when the workflow was recorded converged at ``revision`` with this spec after
        this replica loaded the revision: another replica did the work (or found nothing to do)
        moments ago, so a revision-triggered look here has nothing to add — not even a probe."""
        if not self.shared or status is None or self._loaded_at is None:
            return False
        return (
            status.status is Health.CONVERGED
            and status.last_applied_revision == revision
            and status.spec_digest == digest
            and status.updated_at >= self._loaded_at
        )

    def checked_recently(
        self, status: WorkflowStatusRecord | None, *, interval: timedelta | None, now: datetime
    ) -> bool:
        """For a drift check: True when some replica ran the workflow's observe probe less than
        half its ``interval`` ago (``observed_at``), so that N replicas' schedulers do not probe
        it N times per interval. ``interval`` is ``None`` for cron schedules, which are always
        honoured; a workflow without a probe is never skipped (its check costs no probe)."""
        if not self.shared or status is None or interval is None or status.observed_at is None:
            return False
        return now - status.observed_at < interval / 2

    # -- claiming ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self, workflow: str) -> AsyncIterator[bool]:
        """Claim ``workflow``'s lease for the body; yields False (body should skip) when another
        replica holds it.

        Journal writes in the body are fenced by the lease. If the lease is lost meanwhile, the
        body's task is cancelled and :class:`LeaseLost` is raised from here; the lease is
        released when the body ends normally.
        """
        if not self.shared:
            yield True
            return
        if workflow in self._held:
            raise StoreError(f"workflow {workflow!r} is already being reconciled by this replica")
        lease = await self.store.acquire(lease_name(workflow), self.owner, ttl=self.ttl)
        if lease is None:
            yield False
            return
        task = asyncio.current_task()
        held = _Held(lease, task)
        self._held[workflow] = held
        token = FENCE.set(lease)
        try:
            yield True
        except asyncio.CancelledError:
            if not held.lost or task is None:
                raise
            task.uncancel()
            raise LeaseLost(
                f"the lease on workflow {workflow!r} (token {lease.fencing_token}) was taken "
                "over by another replica; the run was stopped"
            ) from None
        except LeaseLost:
            if held.lost and task is not None and task.cancelling():
                task.uncancel()
            held.lost = True
            raise
        finally:
            FENCE.reset(token)
            self._held.pop(workflow, None)
            if not held.lost:
                with contextlib.suppress(StoreError):
                    await self.store.release(lease)

    # -- background --------------------------------------------------------------------------

    async def renew_all(self) -> None:
        """Renew every held lease once; a lease that cannot be renewed is lost and its task is
        cancelled (it must not act on the workflow any more)."""
        for workflow, held in list(self._held.items()):
            if held.lost:
                continue
            try:
                renewed = await self.store.renew(held.lease)
            except StoreError as exc:
                log.warning(
                    f"could not renew the lease on workflow {workflow}: {exc}; retrying",
                    workflow=workflow,
                    replica=self.owner,
                )
                continue
            if renewed:
                continue
            held.lost = True
            log.warning(
                f"lost the lease on workflow {workflow}: another replica took it over; "
                "stopping its run here without completing it",
                workflow=workflow,
                replica=self.owner,
                error="LeaseLost",
            )
            if held.task is not None:
                held.task.cancel()

    async def maintain(
        self,
        *,
        on_orphans: Callable[[Iterable[str]], None],
        busy: Callable[[], Iterable[str]],
    ) -> None:
        """Every third of the TTL: renew the held leases, then pass ``on_orphans`` the workflows
        with an unfinished top-level run that this replica is not working on (``busy``) — their
        owner may be dead, and the claim decides. Runs until cancelled; a no-op on SQLite.

        A dead replica's leases expire at most one TTL after its death, so its runs are queued
        elsewhere within about 1.33 TTL."""
        if not self.shared:
            return
        period = self.ttl.total_seconds() / 3
        while True:
            await self.renew_all()
            try:
                runs = await self.store.unfinished_runs()
            except StoreError as exc:
                log.warning(f"could not look for runs to take over: {exc}")
            else:
                mine = set(busy()) | set(self._held)
                orphans = {r.workflow for r in runs if r.parent_id is None} - mine
                if orphans:
                    on_orphans(sorted(orphans))
            await asyncio.sleep(period)
