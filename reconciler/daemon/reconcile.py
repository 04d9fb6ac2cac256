"""Reconciling one workflow: take it from the queue, decide, act, and settle its status.

Each of the controller's ``max_concurrent_runs`` workers loops in :meth:`Reconciler.work`: it
takes a workflow from the :class:`~reconciler.daemon.queue.WorkQueue` and, under the
workflow's lease (replicas), asks the :mod:`~reconciler.daemon.planner` what to do — nothing,
mark it invalid, observe, or run — with the stored status as input. A run goes to the
:class:`~reconciler.daemon.runs.RunSupervisor`; its end is planned again (observing once more
when the workflow has a probe) and the decision is stored in the
:class:`~reconciler.daemon.statuses.StatusBook`.

Feedback travels through the queue, never by calling back: a failure backs the workflow off
(``queue.fail``), a convergence queues the workflows that depend on it, a workflow another
replica holds is queued again for later. A crash while reconciling one workflow is logged and
backs that workflow off; the worker goes on.

A manual sync is run only while the store still has it unhandled (``_pending_syncs``, under the
lease): every replica queues the syncs of the command log (``daemon/commands.py``), and the
first manual run of the workflow to start marks them handled, so a sync runs once. Syncs are
answered in the order they were accepted, a group at a time: the oldest pending sync decides
the run's inputs, and the run answers every pending sync with exactly those inputs (plain syncs
together, a sync with inputs with its identical twins only); the rest queue the workflow again.
A manual item that runs nothing (suspended, invalid, waiting for a dependency, resuming an
interrupted run) answers its group too, as the in-memory queue used to.

Called by: the controller (its workers). Calls: the planner, the engine's ``observe``, the run
supervisor, the status book, the queue, the workflow leases, the store's command log and the
drift scheduler (for a status's next check time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import uuid4

import structlog

from reconciler.config.models import Workflow
from reconciler.config.snapshot import LoadedWorkflow
from reconciler.daemon.check import check_workflow
from reconciler.daemon.planner import (
    Decision,
    Next,
    Observation,
    RunReason,
    plan_finished,
    plan_invalid,
)
from reconciler.daemon.planner import Reason as StatusReason
from reconciler.daemon.queue import Reason, WorkItem, WorkQueue
from reconciler.daemon.replicas import WorkflowLeases, current_fence
from reconciler.daemon.runs import RunSupervisor, short
from reconciler.daemon.scheduler import DriftScheduler
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.state import DaemonState
from reconciler.daemon.statuses import StatusBook
from reconciler.daemon.windows import WindowVerdict, verdict_for
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.engine.runner import Engine
from reconciler.errors import LeaseLost, ReconcilerError
from reconciler.notify import EventSink
from reconciler.plugin import RunInfo
from reconciler.status import SUSPENDED_MESSAGE, Health, WorkflowStatusRecord
from reconciler.store import CommandKind, Store
from reconciler.store.commands import sync_inputs
from reconciler.telemetry.instrument import DaemonMetrics

log = structlog.get_logger("reconciler.daemon")

WORKER_SLICE = 0.002
"""Seconds a worker may go without letting other tasks run (checked between two workflows).
Each step of a store write waits for the loop's next turn: with 10 ms slices, a run starting
during a re-check pass waited ~150 ms for its status; yielding after every workflow costs a
10,000-workflow pass ~10%."""


def _innermost_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "unknown place"
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


class Reconciler:
    """Reconciles the workflows the queue hands out, one at a time per worker."""

    def __init__(
        self,
        state: DaemonState,
        settings: DaemonSettings,
        *,
        queue: WorkQueue,
        statuses: StatusBook,
        leases: WorkflowLeases,
        scheduler: DriftScheduler,
        runs: RunSupervisor,
        engine: Engine,
        metrics: DaemonMetrics,
        store: Store,
        now: Callable[[], datetime],
        events: EventSink | None = None,
    ) -> None:
        self.state = state
        self.events = events
        """Told every status stored, with the one before it (notifications)."""
        self.store = store
        self.settings = settings
        self.queue = queue
        self.statuses = statuses
        self.leases = leases
        self.scheduler = scheduler
        self.runs = runs
        self.engine = engine
        self.metrics = metrics
        self._now = now
        self._window_checks: dict[str, datetime] = {}
        """When each workflow a window blocks is queued to be checked again: a workflow checked
        every minute during a two-week freeze is queued once for its end, not 20,000 times."""

    # -- the worker loop -----------------------------------------------------------------------

    async def work(self) -> None:
        """Reconcile what the queue hands out until it shuts down."""
        loop = asyncio.get_running_loop()
        turn = loop.time()
        while True:
            # A check of an in-sync workflow may never suspend: give the API and the source
            # their turn now and then, or a pass over thousands of workflows starves them.
            if loop.time() - turn > WORKER_SLICE:
                await asyncio.sleep(0)
                turn = loop.time()
            item = await self.queue.get()
            if item is None:
                return
            # the handlers below log inside the context too: a failed run's lines name it
            with structlog.contextvars.bound_contextvars(
                workflow=item.key, run=None, state=None, revision=self.state.target.revision
            ):
                try:
                    await self.reconcile(item)
                except LeaseLost as exc:
                    log.warning(
                        f"workflow {item.key}: {exc}; its journal writes from here are refused "
                        "(LeaseLost) and the new owner completes the run",
                        workflow=item.key,
                        error="LeaseLost",
                    )
                except (ReconcilerError, OSError) as exc:
                    # One workflow's trouble (a store hiccup, a bad file) must not stop the loop.
                    log.error(
                        f"reconciling workflow {item.key} failed: {exc}",
                        workflow=item.key,
                        error=type(exc).__name__,
                    )
                    self.queue.fail(item.key)
                except Exception as exc:
                    # A bug somewhere below must not silently kill this worker. The message is not
                    # logged (it could hold a secret value); the type and place are enough to debug.
                    log.error(
                        f"reconciling workflow {item.key} crashed with {type(exc).__name__} at "
                        f"{_innermost_frame(exc)}; this is a bug, the workflow backs off and is "
                        "retried",
                        workflow=item.key,
                        error=type(exc).__name__,
                    )
                    self.queue.fail(item.key)
                finally:
                    self.queue.done(item.key)

    # -- one workflow ----------------------------------------------------------------------------

    async def reconcile(self, item: WorkItem) -> None:
        """Reconcile ``item.key`` under its lease; queue it again for later if another replica
        holds it (its holder may not settle it: a lease lost on a starved replica)."""
        async with self.leases.hold(item.key) as claimed:
            if not claimed:
                log.debug(f"workflow {item.key} is claimed by another replica", workflow=item.key)
                # The holder may finish before it sees these, or lose its lease without
                # finishing: ask again once it should be done. What the holder did settle is
                # then found in its status (_settled_elsewhere), so nothing runs twice.
                later = self.leases.ttl.total_seconds() / 3
                for reason in item.reasons:
                    self.queue.add_after(item.key, later, reason=reason)
                return
            syncs: list[int] = []
            inputs: dict[str, Any] | None = None
            more = False
            if item.manual:
                item, syncs, inputs, more = await self._pending_syncs(item)
                if not item.reasons:
                    return
            if self.leases.shared:
                if await self._settled_elsewhere(item):
                    return
                await self.runs.claim_unfinished(
                    item.key, valid=item.key in self.state.target.valid, owner=self.leases.owner
                )
            if inputs and self.runs.resumable(item.key):
                # the interrupted run resumes first; these syncs' own run comes after it
                syncs, inputs, more = [], None, True
            await self._reconcile_held(item, inputs=inputs)
            if syncs:  # answered by this reconcile, run or not (a run marked them already)
                await self.store.commands_handled(syncs)
            if more:  # syncs with other inputs: a run each, after this one
                self.queue.add(item.key, Reason.MANUAL)

    async def _pending_syncs(
        self, item: WorkItem
    ) -> tuple[WorkItem, list[int], dict[str, Any] | None, bool]:
        """Under the workflow's lease: the syncs of it the store still has unhandled that this
        reconcile answers, the inputs of the run that answers them, and whether other syncs
        (with other inputs) wait behind them. The oldest pending sync decides the inputs; every
        pending sync with the same inputs is answered with it. None left (a manual run of it
        started since, here or on another replica): the item is no manual sync any more, so a
        sync accepted once runs once whoever queued it."""
        pending = await self.store.unhandled_commands(CommandKind.SYNC, target=item.key)
        if not pending:
            return WorkItem(item.key, item.reasons - {Reason.MANUAL}), [], None, False
        inputs = sync_inputs(pending[0])
        group = [c.id for c in pending if sync_inputs(c) == inputs]
        return item, group, inputs or None, len(group) < len(pending)

    async def _settled_elsewhere(self, item: WorkItem) -> bool:
        """Replicas only, under the workflow's lease: take in what other replicas stored about
        it, and say whether that leaves nothing to do here (see daemon/replicas.py)."""
        name = item.key
        status = await self.statuses.get(name)
        # suspend/resume may have come through another replica's API: the row's flag says
        if status is not None and status.suspended:
            self.state.suspended.add(name)
        else:
            self.state.suspended.discard(name)
        ahead = self.leases.ahead_of_us(status)
        if ahead is not None:
            log.info(
                f"workflow {name} was reconciled by another replica at revision {ahead[:12]}, "
                "which this replica has not fetched yet; checking again after the next poll",
                workflow=name,
            )
            poll = self.settings.poll_interval.total_seconds()
            self.queue.add_after(name, poll, reason=Reason.REVISION)
            return True
        target = self.state.target
        lw = target.valid.get(name)
        if lw is None:
            return False
        if item.reasons == {Reason.REVISION} and self.leases.converged_here_since(
            status, revision=target.revision, digest=lw.digest
        ):
            log.debug(f"workflow {name} was just converged by another replica", workflow=name)
            return True
        spec = lw.workflow.spec
        every = spec.interval or (self.settings.default_interval if spec.cron is None else None)
        if item.reasons == {Reason.DRIFT_CHECK} and self.leases.checked_recently(
            status, interval=every, now=self._now()
        ):
            log.debug(f"workflow {name} was checked by another replica just now", workflow=name)
            return True
        return False

    async def _reconcile_held(
        self, item: WorkItem, *, inputs: dict[str, Any] | None = None
    ) -> None:
        name = item.key
        target = self.state.target
        if name in target.removed:
            await self._retire(name, target.removed[name])
            return
        if name in target.orphans:
            await self._retire_orphan(name)
            return
        status = await self.statuses.get(name)
        if name in target.invalid:
            decision = plan_invalid(name, status, problems=target.invalid[name], now=self._now())
            await self.apply(decision, name, durable=False)
            return
        lw = target.valid.get(name)
        if lw is None:
            return
        if name in self.state.suspended:
            await self.store_status(status or WorkflowStatusRecord(name=name), durable=False)
            log.info(f"workflow {name} is suspended through the API; nothing runs", workflow=name)
            return
        resume = self.runs.take_resumable(name)
        if resume is not None:
            await self._resume(lw, status, resume, revision=target.revision)
            return
        unsettled = await self._unsettled_run(status, revision=target.revision)
        if unsettled is not None:
            await self._settle(lw, status, unsettled, revision=target.revision)
            return
        await self._plan_and_act(item, lw, status, revision=target.revision, inputs=inputs)

    async def _resume(
        self,
        lw: LoadedWorkflow,
        status: WorkflowStatusRecord | None,
        resume: RunRecord,
        *,
        revision: str,
    ) -> None:
        """Resume ``resume`` with the spec it started with. When git holds another spec of the
        workflow by now (``lw``, at ``revision``), the run ends at the revision it started at,
        and the workflow is queued again: once the run has ended it is checked at ``revision``,
        and the newest spec gets a run of its own if it calls for one."""
        started = self.runs.started_with(resume)
        pinned = None if started is None else LoadedWorkflow(started, lw.path, lw.line)
        if pinned is None or pinned.digest == lw.digest:
            reason = resume.reason or "resume"
            await self._run(lw, status, revision=revision, reason=reason, resume=resume)
            return
        name = lw.name
        log.info(
            f"workflow {name} changed since run {short(resume.id)} started at revision "
            f"{resume.revision[:12]}; the run resumes with the spec it started with, and the "
            f"workflow is checked again at revision {revision[:12]} once it ends",
            workflow=name,
            run=resume.id,
            revision=revision,
        )
        self.leases.works_at(resume.revision)  # its outcome is no sign of a newer revision
        await self._run(
            pinned,
            status,
            revision=resume.revision,
            reason=resume.reason or "resume",
            resume=resume,
        )
        self.queue.add(name, Reason.REVISION)

    async def _unsettled_run(
        self, status: WorkflowStatusRecord | None, *, revision: str
    ) -> RunRecord | None:
        """The run a ``Progressing`` status points at when that run finished at ``revision``
        but its outcome never became the workflow's status: its replica (or this daemon, before
        a restart) stopped, or lost the lease, between the two writes. Deciding afresh would run
        the workflow a second time at the same revision."""
        if status is None or status.status is not Health.PROGRESSING or not status.last_run_id:
            return None
        record = await self.runs.finished_run(status.last_run_id)
        if record is None or record.revision != revision:
            return None
        return record

    async def _unseen_run(
        self, name: str, status: WorkflowStatusRecord | None, *, revision: str
    ) -> RunRecord | None:
        """The newest top-level run of ``name`` when it finished at ``revision`` and the status
        never said so, not even that it started: its replica (or this daemon, before a restart)
        stopped or lost the lease before the status book wrote anything about it. Asked only
        before starting a run (a manual sync excepted, which means to run again), where deciding
        from that status alone would run the workflow a second time at one revision."""
        latest = await self.runs.latest_run(name)
        if latest is None or latest.revision != revision or not latest.status.finished:
            return None
        if status is not None and status.last_run_id == latest.id:
            return None  # the status knows it (a Progressing one is settled before planning)
        return latest

    async def _settle(
        self,
        lw: LoadedWorkflow,
        status: WorkflowStatusRecord | None,
        record: RunRecord,
        *,
        revision: str,
    ) -> None:
        """Store the outcome of ``record``, a finished run whose status was never stored, as
        its own replica would have: observe again after a success, then plan it finished."""
        workflow = lw.workflow
        error = record.error
        if error is None and record.status is not RunStatus.SUCCEEDED:
            error = f"run {record.status.value}"
        log.info(
            f"run {short(record.id)} of workflow {workflow.name} finished ({record.status.value}) "
            "but its outcome was not stored (its replica stopped or lost the lease); storing it",
            workflow=workflow.name,
            run=record.id,
        )
        after = (
            await self._observe(workflow, revision)
            if error is None and workflow.spec.observe is not None
            else None
        )
        decision = plan_finished(
            workflow,
            status,
            revision=revision,
            digest=lw.digest,
            run_id=record.id,
            error=error,
            observation=after,
            now=self._now(),
        )
        await self.apply(decision, workflow.name, durable=True)

    async def _plan_and_act(
        self,
        item: WorkItem,
        lw: LoadedWorkflow,
        status: WorkflowStatusRecord | None,
        *,
        revision: str,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Decide from the statuses first, then from a probe when that is not enough.
        ``inputs``: a manual sync's run inputs, for the run it starts."""
        workflow = lw.workflow
        statuses = {
            dep: st
            for dep in workflow.spec.depends_on
            if (st := await self.statuses.get(dep)) is not None
        }
        decision, observation = await check_workflow(
            lw,
            status,
            revision=revision,
            statuses=statuses,
            observe=lambda: self._observe(workflow, revision),
            manual=item.manual,
            now=self._now,
            window=lambda at: self.window(workflow, at),
        )
        if decision.next is not Next.RUN:
            await self.apply(decision, workflow.name, durable=False)
            return
        if not item.manual:
            unseen = await self._unseen_run(workflow.name, status, revision=revision)
            if unseen is not None:
                await self._settle(lw, status, unseen, revision=revision)
                return
        observed = observation.observed if observation is not None else None
        await self._run(
            lw,
            decision.status,
            revision=revision,
            reason=str(decision.run_reason),
            why=decision.message,
            observed=observed if isinstance(observed, dict) else None,
            inputs=inputs if item.manual else None,
        )

    def window(self, workflow: Workflow, now: datetime) -> WindowVerdict | None:
        """The verdict of the change windows of ``workflow`` (its own and the operator's)."""
        return verdict_for(workflow, self.state.windows, now)

    async def _observe(self, workflow: Workflow, revision: str) -> Observation:
        return await self.engine.observe(
            workflow, run_info=RunInfo(id=uuid4().hex, workflow=workflow.name, revision=revision)
        )

    async def _run(
        self,
        lw: LoadedWorkflow,
        status: WorkflowStatusRecord | None,
        *,
        revision: str,
        reason: str,
        why: str = "",
        observed: dict[str, Any] | None = None,
        resume: RunRecord | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Mark the workflow progressing, run it to its end, then plan and store the outcome.
        ``inputs`` (a new run's, from a sync with inputs) go over the spec's for this run; a
        resumed run has its own (:attr:`RunRecord.inputs`)."""
        workflow = lw.workflow
        name = workflow.name
        run_id = resume.id if resume is not None else uuid4().hex
        structlog.contextvars.bind_contextvars(run=run_id)
        running = (status or WorkflowStatusRecord(name=name)).model_copy(
            update={
                "status": Health.PROGRESSING,
                "last_run_id": run_id,
                "last_attempted_revision": revision,
                "updated_at": self._now(),
                **(
                    {"reason": StatusReason.RESUMING, "message": f"resuming run {short(run_id)}"}
                    if resume
                    else {}
                ),
            }
        )
        # The run's own record is what makes it durable (and resumable): its start need not
        # wait for the Progressing status to be committed.
        await self.store_status(running, wait=False)
        if resume is not None:
            log.info(
                f"resuming run {short(run_id)} of workflow {name} in state {resume.current_state}",
                workflow=name,
                run=run_id,
                revision=revision,
            )
        else:
            log.info(
                f"{why}; starting run {short(run_id)} (reason: {reason})",
                workflow=name,
                run=run_id,
                revision=revision,
            )
        end = await self.runs.run(
            workflow,
            run_id=run_id,
            reason=reason,
            revision=revision,
            observed=observed,
            resume=resume,
            document=None if resume is not None else lw.document,
            plan=None if resume is not None else {"message": why, "diff": running.diff},
            inputs=inputs,
        )
        after = (
            await self._observe(workflow, revision)
            if end.ok and workflow.spec.observe is not None
            else None
        )
        decision = plan_finished(
            workflow,
            running,
            revision=revision,
            digest=lw.digest,
            run_id=run_id,
            error=end.error,
            observation=after,
            now=self._now(),
        )
        await self.apply(decision, name, durable=True)
        # after the status points at the new run, so the runs kept are the newest ones
        await self.runs.prune(
            name, keep_runs=self.settings.keep_runs, keep_days=self.settings.keep_days
        )

    async def _retire(self, name: str, lw: LoadedWorkflow) -> None:
        """Run the removed workflow's ``onDelete`` state and forget it. A change window that
        blocks runs holds the onDelete run like any other: the workflow stays known, with
        ``Pending``/``WindowClosed``, until the window lets it run."""
        window = self.window(lw.workflow, self._now())
        if lw.workflow.spec.on_delete is not None and window is not None and window.blocked:
            await self._hold_retirement(name, window)
            return
        revision = self.state.target.revision
        latest = await self.runs.latest_run(name)
        if latest is not None and latest.reason == RunReason.DELETE and latest.revision == revision:
            # Replicas: the one that held the lease first ran this removal's onDelete already.
            log.debug(f"workflow {name} was retired by another replica", workflow=name)
        else:
            await self.runs.run_on_delete(lw.workflow, run_id=uuid4().hex, revision=revision)
        self.state.target.removed.pop(name, None)
        await self._forget(name)
        log.info(f"workflow {name} retired (its run history is kept)", workflow=name)

    async def _hold_retirement(self, name: str, window: WindowVerdict) -> None:
        text = f"removed from git, but {window.describe()}; its onDelete run waits"
        status = await self.statuses.get(name) or WorkflowStatusRecord(name=name)
        held = status.model_copy(
            update={
                "status": Health.PENDING,
                "reason": StatusReason.WINDOW_CLOSED,
                "message": text,
                "updated_at": self._now(),
            }
        )
        await self.apply(
            Decision(held, Next.DONE, f"workflow {name}: {text}", retry_at=window.until),
            name,
            durable=False,
        )

    async def _retire_orphan(self, name: str) -> None:
        self.state.target.orphans.discard(name)
        await self._forget(name)
        log.warning(
            f"workflow {name} was removed from git while the daemon was stopped; retired "
            "without an onDelete run (its spec is gone; its run history is kept)",
            workflow=name,
        )

    async def _forget(self, name: str) -> None:
        self.scheduler.remove(name)
        self._window_checks.pop(name, None)
        await self.statuses.delete(name, fence=current_fence())
        self.metrics.workflow_removed(name)

    # -- settling statuses -----------------------------------------------------------------------

    async def apply(self, decision: Decision, name: str, *, durable: bool) -> None:
        """Store and log ``decision``; back the workflow off when it failed, wake the workflows
        that depend on it when it converged. ``durable``: it is a run's outcome, which checking
        the workflow again would not decide again (a check's outcome may be written behind)."""
        await self.store_status(decision.status, durable=durable)
        level = "warning" if decision.failed or decision.status.status is Health.INVALID else "info"
        fields: dict[str, Any] = {
            "workflow": name,
            "revision": self.state.target.revision,
            "status": decision.status.status.value,
            "sync": decision.status.sync.value,
            "reason": decision.status.reason,
        }
        if decision.failed:
            delay = self.queue.fail(name)
            getattr(log, level)(f"{decision.message}; retrying in {delay:g}s", **fields)
        else:
            getattr(log, level)(decision.message, **fields)
        if decision.converged:
            self.queue.forget(name)
            await self._wake_dependents(name)
        if decision.retry_at is not None:
            self._check_when_open(name, decision.retry_at)

    def _check_when_open(self, name: str, at: datetime) -> None:
        """Queue ``name`` for a second past ``at``, when the window that blocks it lets it run
        (so the check lands inside the window), unless it is queued for that instant already."""
        now = self._now()
        if self._window_checks.get(name) == at and at > now:
            return
        self._window_checks[name] = at
        self.queue.add_after(name, (at - now).total_seconds() + 1.0, reason=Reason.WINDOW)

    async def store_status(
        self, record: WorkflowStatusRecord, *, durable: bool = True, wait: bool = True
    ) -> None:
        """Write ``record`` to the status book, as suspended when the API suspended it, with
        the time of its next drift check. Under a workflow's lease (replicas) the write is
        fenced by it: a replica that lost the lease writes nothing, and a caller waiting for
        the write gets :class:`~reconciler.errors.LeaseLost`."""
        if record.name in self.state.suspended:
            record = record.model_copy(
                update={
                    "status": Health.SUSPENDED,
                    "reason": StatusReason.SUSPENDED_MANUALLY,
                    "message": SUSPENDED_MESSAGE,
                    "updated_at": self._now(),
                }
            )
        nxt = self.scheduler.next_check(record.name)
        suspended = record.name in self.state.suspended  # the store keeps its own flag anyway
        events = self.events if self.events is not None and self.events.active else None
        old = await self.statuses.get(record.name) if events is not None else None
        stored = record.model_copy(update={"next_check_at": nxt, "suspended": suspended})
        await self.statuses.put(stored, durable=durable, wait=wait, fence=current_fence())
        self.metrics.status_changed(record)
        if events is not None:
            lw = self.state.target.valid.get(record.name)
            labels = lw.workflow.metadata.labels if lw is not None else {}
            events.status_stored(old, stored, labels=labels)

    async def _wake_dependents(self, name: str) -> None:
        target = self.state.target
        for other in target.dependents.get(name, []):
            status = await self.statuses.get(other)
            if (
                status is not None
                and status.status is Health.CONVERGED
                and status.last_applied_revision == target.revision
            ):
                continue
            self.queue.add(other, Reason.DEPENDENCY)
