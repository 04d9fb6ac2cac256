"""Supervising runs: starting them as tasks, cancelling, resuming, abandoning, onDelete runs.

A run is the engine executing one workflow from a state to the end. This module owns the runs
this process has in flight (so the API can list and cancel them) and the runs found unfinished
in the store (left by a stop, a crash, or a replica that lost its lease), which are resumed in
the state they were in or, when their workflow is gone or invalid, abandoned with a reason.

It knows nothing of statuses or the queue: :meth:`RunSupervisor.run` returns how a run ended
(:class:`RunEnd`) and the caller decides what that means for the workflow's status.

Called by: :mod:`reconciler.daemon.reconcile` (start a run, an onDelete run, a claim on an
unfinished run), :mod:`reconciler.daemon.revision` (abandon runs whose workflow left git) and the
controller (load unfinished runs at start, cancel through the API). Calls: the
:class:`~reconciler.engine.runner.Engine` and the :class:`~reconciler.store.Store`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog
from pydantic import ValidationError

from reconciler.clock import utcnow
from reconciler.config.models import Workflow
from reconciler.daemon.planner import RunReason
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.engine.runner import Engine, RunResult
from reconciler.errors import StoreError
from reconciler.store import Store

log = structlog.get_logger("reconciler.daemon")


def short(run_id: str) -> str:
    """A run id as logs show it: ``3f2a9c0e…``."""
    return f"{run_id[:8]}…"


def run_keys(record: RunRecord) -> dict[str, str | None]:
    """The log keys of a line about ``record`` logged outside the run itself (a cancel or an
    approval through the API, a take-over, an abandoned resume): the same ``workflow``,
    ``run``, ``state`` and ``revision`` the run's own lines carry."""
    return {
        "workflow": record.workflow,
        "run": record.id,
        "state": record.current_state or None,
        "revision": record.revision or None,
    }


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: with a result, or cancelled through the API (``result`` is ``None``)."""

    result: RunResult | None

    @property
    def cancelled(self) -> bool:
        return self.result is None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok

    @property
    def error(self) -> str | None:
        """The run's error as the workflow's status shows it, ``None`` when it succeeded."""
        if self.result is None:
            return "Cancelled: the run was cancelled through the API"
        if self.result.run.error:
            return self.result.run.error
        return str(self.result.error) if self.result.error else None


class RunSupervisor:
    """The runs of this process, and the unfinished ones waiting to be resumed."""

    def __init__(self, engine: Engine, store: Store) -> None:
        self.engine = engine
        self.store = store
        self.running: dict[str, str] = {}
        """Runs in progress in this process: run id → workflow name."""
        self._tasks: dict[str, asyncio.Task[RunResult]] = {}
        self._cancel_requested: set[str] = set()
        self._resumable: dict[str, RunRecord] = {}
        """Top-level runs to resume, by workflow: the next reconcile of it resumes the run."""
        self._history: dict[str, int] | None = None
        """One daemon on its store (:meth:`load_unfinished`): how many top-level runs of each
        workflow the store held at start, plus those that ended here since (at most
        ``keep_runs`` after a prune). ``None`` with replicas, whose runs this process does not
        see: then the store is asked every time."""

    # -- runs in this process ------------------------------------------------------------------

    async def run(
        self,
        workflow: Workflow,
        *,
        run_id: str,
        reason: str,
        revision: str,
        observed: dict[str, Any] | None = None,
        resume: RunRecord | None = None,
        document: dict[str, Any] | None = None,
        plan: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> RunEnd:
        """Run ``workflow`` (or resume ``resume``) to its end, as a task :meth:`cancel` can stop.

        ``document`` (``workflow`` as JSON) is kept with a new run's record, so that the run
        resumes with this spec should it be interrupted (:meth:`started_with`); ``plan`` (why
        it runs: the planner's message and diff) goes into its ``run_started`` entry.
        ``inputs`` (a sync's run inputs) go over the spec's and are kept with the run's record,
        so a resumed run runs with them again.
        A cancellation that is not :meth:`cancel`'s (the daemon shutting down) propagates: the
        run's record then stays unfinished, so it resumes on the next start.

        A run to resume whose cancel was accepted before it stopped (its record names who
        cancelled it) is not resumed: it is recorded cancelled, as :meth:`cancel` would have.
        """
        if resume is not None and resume.cancelled_by is not None:
            log.info(
                f"run {short(run_id)} of workflow {workflow.name} was cancelled through the API "
                "before it stopped; recorded cancelled, not resumed",
                **run_keys(resume),
            )
            await self._record_cancelled(run_id)
            return RunEnd(None)
        task = asyncio.create_task(
            self.engine.run(
                workflow,
                reason=reason,
                revision=revision,
                observed=observed,
                resume=resume,
                run_id=None if resume is not None else run_id,
                document=document,
                plan=plan,
                inputs=inputs,
            ),
            name=f"run-{run_id}",
        )
        self._tasks[run_id] = task
        self.running[run_id] = workflow.name
        try:
            return RunEnd(await task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if run_id not in self._cancel_requested or (current and current.cancelling()):
                raise  # shutdown: the run stays resumable
            await self._record_cancelled(run_id)
            return RunEnd(None)
        finally:
            self._tasks.pop(run_id, None)
            self.running.pop(run_id, None)
            self._cancel_requested.discard(run_id)

    async def _record_cancelled(self, run_id: str) -> None:
        """Make sure a run cancelled through the API is recorded so: cancelled before the engine
        had begun (a cancel waiting in the command log reaches a resumed run at once), the
        engine did not record its end, and the run would be resumed at every start."""
        record = await self.store.get_run(run_id)
        if record is None or record.status is not RunStatus.RUNNING:
            return
        await self.engine.journal.run_finished(
            replace(
                record,
                status=RunStatus.CANCELLED,
                finished_at=utcnow(),
                error="Cancelled: the run was cancelled through the API",
            )
        )

    async def prune(self, name: str, *, keep_runs: int | None, keep_days: int | None) -> None:
        """Prune the runs of ``name`` beyond ``--keep-runs``/``--keep-days`` now that one of its
        runs ended: the hourly pass alone let a workflow running every 5 minutes hold 12 runs
        with ``--keep-runs 5``. A store failure is logged; the next run or pass prunes again."""
        if keep_runs is None and keep_days is None:
            return
        history = self._history
        if history is not None:
            # one daemon: it knows how many runs the workflow has, so it prunes only once there
            # are too many (the hourly pass enforces --keep-days: a run ending ages no other)
            held = history[name] = history.get(name, 0) + 1
            if keep_runs is None or held <= keep_runs:
                return
            history[name] = keep_runs
        try:
            await self.store.prune(keep_runs, keep_days, workflow=name)
        except StoreError as exc:
            log.warning(
                f"pruning the old runs of workflow {name} failed: {exc}",
                workflow=name,
                error=type(exc).__name__,
            )

    def cancel(self, run_id: str) -> bool:
        """Cancel run ``run_id`` if it is in progress in this process (False otherwise). Asking
        again while it is being cancelled changes nothing."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        if run_id in self._cancel_requested:
            return True
        self._cancel_requested.add(run_id)
        task.cancel()
        name = self.running.get(run_id)
        log.info(
            f"run {short(run_id)} of workflow {name} cancelled through the API",
            workflow=name,
            run=run_id,
        )
        return True

    async def run_on_delete(self, workflow: Workflow, *, run_id: str, revision: str) -> None:
        """Run the ``onDelete`` state of a workflow removed from git; a failure is logged only
        (the workflow is retired either way)."""
        on_delete = workflow.spec.on_delete
        if on_delete is None:
            return
        name = workflow.name
        log.info(
            f"workflow {name} was removed from git; starting run {short(run_id)} "
            f"in its onDelete state {on_delete} (reason: delete)",
            workflow=name,
            run=run_id,
        )
        spec = workflow.spec.model_copy(update={"start": on_delete})
        result = await self.engine.run(
            workflow.model_copy(update={"spec": spec}),
            reason=RunReason.DELETE.value,
            revision=revision,
            run_id=run_id,
        )
        if not result.ok:
            log.warning(
                f"onDelete run {short(run_id)} of workflow {name} failed: {result.run.error}; "
                "retiring it anyway",
                workflow=name,
                run=run_id,
            )

    # -- unfinished runs -----------------------------------------------------------------------

    def started_with(self, record: RunRecord) -> Workflow | None:
        """The workflow ``record`` started with, from the document kept with it, to resume it
        with; ``None`` when it has none (recorded before runs kept their document) or when the
        document no longer makes a workflow of that name (then the run resumes with the spec git
        holds, as it did before documents were kept; a warning says so)."""
        if record.document is None:
            return None
        try:
            workflow = Workflow.model_validate(record.document)
        except ValidationError as exc:
            why = f"its stored spec does not load any more ({exc.error_count()} problems)"
        else:
            if workflow.name == record.workflow:
                return workflow
            why = f"its stored spec names another workflow, {workflow.name}"
        log.warning(
            f"run {short(record.id)} of workflow {record.workflow}: {why}; it resumes with the "
            "spec git holds now",
            **run_keys(record),
        )
        return None

    async def load_unfinished(self) -> None:
        """At start (one daemon on the store): every top-level run still marked running is to
        be resumed by the next reconcile of its workflow."""
        for record in await self.store.unfinished_runs():
            if record.parent_id is not None:
                continue  # a child run is resumed by its parent's workflow.run action
            self._resumable[record.workflow] = record
        self._history = await self.store.top_level_run_counts()

    def resumable(self, name: str) -> bool:
        return name in self._resumable

    def take_resumable(self, name: str) -> RunRecord | None:
        """The run of ``name`` to resume now, if any (it is handed out once)."""
        return self._resumable.pop(name, None)

    async def finished_run(self, run_id: str) -> RunRecord | None:
        """The stored record of top-level run ``run_id`` if it has finished (``None`` when it
        is unknown, still running or a child run)."""
        if run_id in self.running:
            return None
        record = await self.store.get_run(run_id)
        if record is None or record.parent_id is not None or not record.status.finished:
            return None
        return record

    async def latest_run(self, name: str) -> RunRecord | None:
        """The newest top-level run of workflow ``name`` in the store, finished or not.

        ``None`` without asking the store when this daemon alone uses it and the workflow had
        no run at start: every run of it since started here, and its status names it."""
        if self._history is not None and name not in self._history:
            return None
        return next((r for r in await self.store.list_runs(name, limit=5) if not r.parent_id), None)

    async def claim_unfinished(self, name: str, *, valid: bool, owner: str) -> None:
        """Under ``name``'s lease (replicas): a top-level run of it still marked running was left
        by a replica that died, stopped or lost the lease; resume it here, or abandon it when
        the workflow is not ``valid`` any more."""
        left = [
            r for r in await self.store.unfinished_runs() if r.workflow == name and not r.parent_id
        ]
        self._resumable.pop(name, None)
        if not left:
            return
        if not valid:
            for record in left:
                await self.abandon(record, why="its workflow is no longer valid in git")
            return
        self._resumable[name] = left[-1]
        log.info(
            f"taking over run {short(left[-1].id)} of workflow {name} (its replica stopped or "
            f"lost the lease); replica {owner}",
            **run_keys(left[-1]),
        )

    async def abandon_unless(self, valid: Collection[str] | Mapping[str, object]) -> None:
        """Abandon the runs waiting to resume whose workflow is not in ``valid``."""
        for name, record in list(self._resumable.items()):
            if name not in valid:
                del self._resumable[name]
                await self.abandon(record, why="its workflow is no longer valid in git")

    async def abandon(self, record: RunRecord, *, why: str) -> None:
        """Mark ``record`` cancelled, never to be resumed, saying ``why``."""
        record = replace(
            record,
            status=RunStatus.CANCELLED,
            finished_at=utcnow(),
            error=f"Cancelled: not resumed because {why}",
        )
        with contextlib.suppress(StoreError):
            await self.store.run_finished(record)
        log.warning(
            f"run {short(record.id)} of workflow {record.workflow} not resumed: {why}",
            **run_keys(record),
        )
