"""The run journal as the daemon hands it to the engine: the store's, plus one rule for shutdown.

Called by: the :class:`~reconciler.engine.runner.Engine` (through the metrics wrapper of
:mod:`reconciler.telemetry.instrument`) for every run's records; the controller sets
:attr:`DaemonJournal.interrupting` when the grace period is over. Calls: the
:class:`~reconciler.store.Store`, passing the lease fence of the workflow being reconciled
(:func:`~reconciler.daemon.replicas.current_fence`) so a replica that lost a workflow cannot
write into its run.
"""

from __future__ import annotations

from reconciler.daemon.replicas import current_fence
from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.errors import RunLeftUnfinished
from reconciler.store import Store
from reconciler.store.commands import SYNC_RUN_REASON


class DaemonJournal:
    """The store's journal, as the engine sees it, plus one rule for shutdown.

    Once :attr:`interrupting` is set (the grace period is over), a run cancelled by the
    shutdown is *not* recorded as finished: its record stays ``running`` at the state it was in,
    with every transition already journaled, so the next start resumes it; :meth:`run_finished`
    then raises :class:`~reconciler.errors.RunLeftUnfinished`, so that the engine does not log
    the run as finished (the controller logs that it resumes on the next start).
    A new top-level manual run marks the syncs of its workflow handled in its ``run_started``
    transaction (see ``reconciler/daemon/commands.py``). Everything else passes straight to
    the store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.interrupting = False
        self.interrupted: dict[str, str | None] = {}
        """Runs left resumable by the shutdown: run id → the state they were in."""

    async def run_started(self, run: RunRecord) -> None:
        # A workflow's new manual run answers the syncs of it accepted so far.
        manual = run.parent_id is None and run.reason == SYNC_RUN_REASON
        await self.store.run_started(run, fence=current_fence(), settles_syncs=manual)

    async def record(self, entry: JournalEntry) -> None:
        if (
            self.interrupting
            and entry.kind is EventKind.RUN_FINISHED
            and entry.outcome == RunStatus.CANCELLED.value
        ):
            self.interrupted[entry.run_id] = entry.state
            return
        await self.store.record(entry, fence=current_fence())

    async def run_finished(self, run: RunRecord) -> None:
        if self.interrupting and run.status is RunStatus.CANCELLED:
            self.interrupted[run.id] = run.current_state
            raise RunLeftUnfinished(f"run {run.id} stays unfinished; it resumes on the next start")
        await self.store.run_finished(run, fence=current_fence())

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self.store.get_run(run_id)

    async def entries(self, run_id: str) -> list[JournalEntry]:
        return await self.store.entries(run_id)

    async def unfinished_runs(self) -> list[RunRecord]:
        return await self.store.unfinished_runs()
