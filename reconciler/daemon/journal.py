"""The run journal as the daemon hands it to the engine: the store's, plus one rule for shutdown.

Called by: the :class:`~reconciler.engine.runner.Engine` (through the metrics wrapper of
:mod:`reconciler.telemetry.instrument`) for every run's records; the controller sets
:attr:`DaemonJournal.interrupting` when the grace period is over. Calls: the
:class:`~reconciler.store.Store`, passing the lease fence of the workflow being reconciled
(:func:`~reconciler.daemon.replicas.current_fence`) so a replica that lost a workflow cannot
write into its run.

**Durability.** Every write goes to the store's one writer, which commits the writes of all the
runs in flight together, in order, one transaction per batch (``reconciler/store/writer.py``).
A run waits for its writes only where the next step has an effect outside the store:

- a ``state_entered`` entry (and an approval's entries) is committed before :meth:`record`
  returns, so **an entry is durable before the next state's action starts** — and with it,
  since batches commit in order, everything the run wrote before: its record
  (``run_started``), its ``run_started`` entry, the ``transition`` into the state with the
  outputs so far;
- ``run_finished`` (the run's final record) is committed before it returns, so a run whose end
  was reported is finished in the store;
- the rest (``run_started``, the ``run_started``/``run_resumed``/``action``/``check``/
  ``transition``/``run_finished`` entries) is handed in without waiting.

What a ``kill -9`` can lose: the writes handed in after the run's last committed one — at most
the entries since its last ``state_entered`` (the action's entry, the transition out of the
state, the end). On the next start the run is found ``running`` in the state whose
``state_entered`` was committed, and is resumed there: it is the same run (same id; its
``run_finished`` entry is written once), the state's action runs again — as it always did when
a process died between an action and the commit of its transition: actions are idempotent —
and no other state's action runs twice. A run whose first ``state_entered`` was not committed
ran no action; its record, if committed, resumes from the start state, and if not, nothing of
it is left and the workflow is decided afresh (it runs once). A write that fails without a
waiter refuses the run's later writes with its error, raised at the next write waited for.
``tests/integration/daemon/test_group_commit_kill.py`` kills a daemon mid-batch and checks
the resume is exactly once.
"""

from __future__ import annotations

from reconciler.daemon.replicas import current_fence
from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.errors import RunLeftUnfinished
from reconciler.store import Store
from reconciler.store.commands import SYNC_RUN_REASON

UNWAITED = frozenset(
    {
        EventKind.RUN_STARTED,
        EventKind.RUN_RESUMED,
        EventKind.ACTION,
        EventKind.CHECK,
        EventKind.TRANSITION,
        EventKind.RUN_FINISHED,
    }
)
"""Entries :meth:`DaemonJournal.record` hands to the store's writer without waiting: none of
them is followed by an effect outside the store before a ``state_entered`` entry or the run's
final record, which are waited for (see the module docstring)."""


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
        await self.store.run_started(run, fence=current_fence(), settles_syncs=manual, wait=False)

    async def record(self, entry: JournalEntry) -> None:
        if (
            self.interrupting
            and entry.kind is EventKind.RUN_FINISHED
            and entry.outcome == RunStatus.CANCELLED.value
        ):
            self.interrupted[entry.run_id] = entry.state
            return
        await self.store.record(entry, fence=current_fence(), wait=entry.kind not in UNWAITED)

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
