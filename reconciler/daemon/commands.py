"""Steering through the store: applying what the API accepted, on whichever replica it concerns.

The API answers a sync, suspend, resume, cancel or approval only once the controller has recorded it in
the store's command log (``reconciler/store/commands.py``; a suspend or resume together with the
status row's ``suspended`` flag). The controller that answered applies it at once
(:meth:`CommandReader.applied`); every controller — every replica — also reads the log every
``command_interval`` (:meth:`CommandReader.follow`) and applies what concerns it:

- a **sync** queues the workflow as a manual sync here; the workflow's lease decides which
  replica runs it, and the reconcile under the lease runs it only while the sync is still
  unhandled in the store (the run's start marks it handled), so N replicas run it once; a
  sync with run inputs (``payload={"inputs": ...}``) is answered only by a run with exactly
  those inputs (the reconcile takes the pending syncs a group of equal inputs at a time);
- a **suspend/resume** re-reads the workflow's status row, whose ``suspended`` flag is the
  truth, and updates this controller's memory (a resume also queues a check);
- an **approve** (or reject) is handed to the run it is for when that run waits here (see
  ``daemon/approvals.py``; a run that starts waiting later reads it from the store itself);
- a **cancel** is applied by the replica holding the run (only it has the run's task); any
  replica marks it handled once the store says the run is no longer running, so a cancel of a
  run that is waiting to be resumed or taken over (or whose replica was killed before the run
  was recorded cancelled) is applied where and when it resumes.

At start (:meth:`CommandReader.catch_up`, as soon as the first revision is loaded and before the
daemon says it is ready) the syncs still unhandled are queued again: a sync answered ``202``
just before a ``kill -9`` still runs, as the manual run it was, not behind a run that a
dependency converging or a drift check started first.

What callers may rely on: every command is applied at most once per controller; applying is
idempotent anyway (a sync queued twice runs once — per distinct set of run inputs —, a
suspension is re-read from the row).

Called by: the controller (its steering seams and a background task). Calls: the store, the
queue, the run supervisor, the status book and the shared :class:`DaemonState`.
"""

from __future__ import annotations

import asyncio

import structlog

from reconciler.daemon.approvals import ApprovalInbox
from reconciler.daemon.queue import Reason, WorkQueue
from reconciler.daemon.runs import RunSupervisor
from reconciler.daemon.state import DaemonState
from reconciler.daemon.statuses import StatusBook
from reconciler.engine.journal import RunStatus
from reconciler.errors import StoreError
from reconciler.notify import EventSink
from reconciler.status import WorkflowStatusRecord
from reconciler.store import Command, CommandKind, Store
from reconciler.telemetry.instrument import DaemonMetrics

log = structlog.get_logger("reconciler.daemon")

LOOKBACK = 64
"""How many ids below the highest one read are read again at every poll: a PostgreSQL sequence
hands out ids before commit, so a command may become visible after one with a higher id."""


class CommandReader:
    """Applies the command log to one controller (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        state: DaemonState,
        *,
        queue: WorkQueue,
        statuses: StatusBook,
        runs: RunSupervisor,
        approvals: ApprovalInbox,
        metrics: DaemonMetrics,
        interval: float,
        events: EventSink | None = None,
    ) -> None:
        self.store = store
        self.approvals = approvals
        self.events = events
        """Told each status row a suspend or resume left (notifications)."""
        self.state = state
        self.queue = queue
        self.statuses = statuses
        self.runs = runs
        self.metrics = metrics
        self.interval = interval
        self._cursor = 0
        self._seen: set[int] = set()
        self._failing = False
        self.caught_up = False
        """Whether :meth:`catch_up` has run (the controller runs it with the first revision)."""

    # -- the controller's own requests --------------------------------------------------------

    def seen(self, command: Command) -> None:
        """``command`` was applied by the controller that recorded it: not again here."""
        self._seen.add(command.id)

    async def applied(self, command: Command, status: WorkflowStatusRecord | None) -> None:
        """A suspend or resume this controller recorded: take in the row it left."""
        self.seen(command)
        await self._suspension(command.target, status)

    # -- following the log --------------------------------------------------------------------

    async def follow(self, ready: asyncio.Event) -> None:
        """Once ``ready`` (the first revision is loaded), catch up, then poll until cancelled;
        a store failure is logged once and retried at the next poll."""
        await ready.wait()
        while True:
            try:
                if not self.caught_up:  # the first revision's attempt failed
                    await self.catch_up()
                await self.poll()
                if self._failing:
                    log.info("reading the command log works again")
                    self._failing = False
            except StoreError as exc:
                if not self._failing:
                    log.error(f"reading the command log failed: {exc}; retrying")
                self._failing = True
            await asyncio.sleep(self.interval)

    async def catch_up(self) -> None:
        """At start: read from the newest command on, and queue the syncs still unhandled."""
        last = await self.store.last_command_id()
        for command in await self.store.commands_after(max(0, last - LOOKBACK)):
            self._seen.add(command.id)
        self._cursor = max(self._cursor, last)
        for command in await self.store.unhandled_commands(CommandKind.SYNC):
            if self._queue_sync(command.target):
                log.info(
                    f"manual sync of workflow {command.target} accepted before the restart; "
                    "queued again",
                    workflow=command.target,
                )
        self.caught_up = True

    async def poll(self) -> None:
        """Apply the commands recorded since the last poll, then the pending cancels."""
        for command in await self.store.commands_after(max(0, self._cursor - LOOKBACK)):
            if command.id in self._seen:
                continue
            await self._apply(command)  # a store failure here: this one again at the next poll
            self._seen.add(command.id)
            self._cursor = max(self._cursor, command.id)
        self._seen = {i for i in self._seen if i > self._cursor - LOOKBACK}
        await self.cancels()

    async def cancels(self) -> None:
        """Cancel the runs asked to be cancelled that run here; mark a cancel handled only once
        the store says its run ended (a crash before the run was recorded cancelled leaves the
        cancel to be applied when the run resumes)."""
        done: list[int] = []
        for command in await self.store.unhandled_commands(CommandKind.CANCEL):
            if self.runs.cancel(command.target):
                continue  # handled at a later poll, once the run is recorded cancelled
            run = await self.store.get_run(command.target)
            if run is None or run.status is not RunStatus.RUNNING:
                done.append(command.id)
        if done:
            await self.store.commands_handled(done)

    async def _apply(self, command: Command) -> None:
        name = command.target
        who = command.requested_by or "an unnamed requester"
        if command.kind is CommandKind.SYNC and command.handled_at is None:
            if self._queue_sync(name):
                log.info(f"manual sync of workflow {name} requested by {who}", workflow=name)
        elif command.kind is CommandKind.APPROVE and command.handled_at is None:
            self.approvals.deliver(command)
        elif command.kind in (CommandKind.SUSPEND, CommandKind.RESUME):
            was = name in self.state.suspended
            await self._suspension(name, await self.store.get_status(name))
            now = name in self.state.suspended
            if was != now:
                what = "suspended" if now else "resumed"
                log.info(f"workflow {name} {what} by {who}", workflow=name)

    def _queue_sync(self, name: str) -> bool:
        if not self.state.target.knows(name):
            return False
        self.queue.add(name, Reason.MANUAL)
        return True

    async def _suspension(self, name: str, status: WorkflowStatusRecord | None) -> None:
        """Take in workflow ``name``'s status row: its ``suspended`` flag is the truth."""
        events = self.events if self.events is not None and self.events.active else None
        old = await self.statuses.get(name) if events is not None else None
        suspended = status is not None and status.suspended
        was = name in self.state.suspended
        if suspended:
            self.state.suspended.add(name)
        else:
            self.state.suspended.discard(name)
        if status is not None:
            self.statuses.learn(status)
            self.metrics.status_changed(status)
            if events is not None:
                lw = self.state.target.valid.get(name)
                labels = lw.workflow.metadata.labels if lw is not None else {}
                events.status_stored(old, status, labels=labels)
        if was and not suspended and name in self.state.target.valid:
            self.queue.add(name, Reason.DRIFT_CHECK)  # a check: it runs only if out of sync
