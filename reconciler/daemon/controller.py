"""The controller: the reconcile loop, wiring every stage together.

Flow: source → **snapshot** (loaded incrementally here) → planner → queue → engine → store.

- A new :class:`~reconciler.sources.Revision` re-loads only ``revision.changed`` files (other
  :class:`~reconciler.config.snapshot.FileResult` objects are reused), validates the snapshot,
  resets back-off and queues every workflow; workflows whose file was removed run their
  ``onDelete`` state (if any) and are retired, their run history kept. A file that no longer
  parses marks the workflows it held ``Invalid`` — it never counts as a removal.
- Drift checks (:class:`~reconciler.daemon.scheduler.DriftScheduler`), back-off expiry and
  manual syncs (:meth:`Controller.request_sync`, the seam for the HTTP API) feed the same
  :class:`~reconciler.daemon.queue.WorkQueue`.
- The HTTP API (:mod:`reconciler.api`) steers through :meth:`Controller.suspend` /
  :meth:`Controller.resume` (a daemon-side override kept in the workflow's status row, reason
  ``SuspendedManually``, so it survives a restart) and :meth:`Controller.cancel` (cancels a
  running run's task; the run is journaled ``cancelled`` and the workflow backs off like after a
  failure).
- ``max_concurrent_runs`` workers take keys from the queue and ask the
  :mod:`~reconciler.daemon.planner` what to do, observing and running through the
  :class:`~reconciler.engine.runner.Engine`, storing each decision through the
  :class:`~reconciler.daemon.statuses.StatusBook` (in memory, batched into the
  :class:`~reconciler.store.Store`) and logging it in plain words.
- At start, runs the store still marks running are resumed in the state they were in.
- On a PostgreSQL store several replicas share the work (:mod:`~reconciler.daemon.replicas`):
  each workflow is reconciled under its lease, the run's journal writes are fenced by it, and a
  run whose replica died or lost the lease is resumed, in its state, by the replica that claims
  the workflow next. On SQLite, a second daemon on the same file is refused at start.
- :meth:`Controller.run` returns once ``stop`` is set: no new work is taken, running work gets
  ``grace_period`` to finish; runs still going after that are interrupted *without* being
  marked finished, so they resume on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any
from uuid import uuid4

import structlog

from reconciler.clock import utcnow
from reconciler.config.files import refused_result
from reconciler.config.loader import bulk_loading, load_text
from reconciler.config.models import Workflow
from reconciler.config.snapshot import FileResult, LoadedWorkflow, Problem, Snapshot
from reconciler.config.validate import ValidationCache, validate_snapshot
from reconciler.daemon.planner import (
    Decision,
    Next,
    Observation,
    RunReason,
    plan_finished,
    plan_invalid,
    plan_observed,
    plan_static,
)
from reconciler.daemon.planner import Reason as StatusReason
from reconciler.daemon.queue import Reason, WorkItem, WorkQueue
from reconciler.daemon.replicas import WorkflowLeases, current_fence
from reconciler.daemon.scheduler import DriftScheduler
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.statuses import StatusBook
from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.engine.runner import Engine, RunResult
from reconciler.errors import LeaseLost, ReconcilerError, SourceError, StoreError
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry, RunInfo
from reconciler.secrets.resolver import SecretResolver
from reconciler.sources import Revision, Source
from reconciler.status import Health, WorkflowStatusRecord
from reconciler.store import Store, prune_periodically
from reconciler.telemetry.instrument import DaemonMetrics

log = structlog.get_logger("reconciler.daemon")

WORKER_SLICE = 0.002
"""Seconds a worker may go without letting other tasks run (checked between two workflows).
Each step of a store write waits for the loop's next turn: with 10 ms slices, a run starting
during a re-check pass waited ~150 ms for its status; yielding after every workflow costs a
10,000-workflow pass ~10%."""

BULK_LOAD_FILES = 500
"""A revision changing at least this many files is loaded with the garbage collector kept out
(:func:`~reconciler.config.loader.bulk_loading`)."""


def short(run_id: str) -> str:
    """A run id as logs show it: ``3f2a9c0e…``."""
    return f"{run_id[:8]}…"


class DaemonJournal:
    """The store's journal, as the engine sees it, plus one rule for shutdown.

    Once :attr:`interrupting` is set (the grace period is over), a run cancelled by the
    shutdown is *not* recorded as finished: its record stays ``running`` at the state it was in,
    with every transition already journaled, so the next start resumes it.
    Everything else passes straight to the store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.interrupting = False
        self.interrupted: dict[str, str | None] = {}
        """Runs left resumable by the shutdown: run id → the state they were in."""

    async def run_started(self, run: RunRecord) -> None:
        await self.store.run_started(run, fence=current_fence())

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
            return
        await self.store.run_finished(run, fence=current_fence())

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self.store.get_run(run_id)

    async def entries(self, run_id: str) -> list[JournalEntry]:
        return await self.store.entries(run_id)

    async def unfinished_runs(self) -> list[RunRecord]:
        return await self.store.unfinished_runs()


@dataclass
class _Target:
    """What the workers know about the workflows of the current snapshot."""

    revision: str = ""
    valid: dict[str, LoadedWorkflow] = field(default_factory=dict)
    invalid: dict[str, list[Problem]] = field(default_factory=dict)
    removed: dict[str, LoadedWorkflow] = field(default_factory=dict)
    """Workflows gone from git, waiting for their onDelete run and retirement."""
    orphans: set[str] = field(default_factory=set)
    """Statuses in the store of workflows that were already gone from git when the daemon
    started: their spec is unknown, so they are retired without an onDelete run."""
    dependents: dict[str, list[str]] = field(default_factory=dict, init=False)
    """Name → the valid workflows whose ``dependsOn`` lists it (so waking them is not a scan
    of every workflow each time one converges)."""

    def __post_init__(self) -> None:
        for other, lw in self.valid.items():
            for dep in dict.fromkeys(lw.workflow.spec.depends_on):
                self.dependents.setdefault(dep, []).append(other)


UNRESTRICTED_PLUGINS_WARNING = (
    "no plugin policy: every installed plugin is allowed, shell.run included, so anyone who can "
    "commit to the repository can run commands as the daemon; set --allow-plugins "
    "(RECONCILER_ALLOW_PLUGINS) in production"
)
"""Logged at start when ``allow_plugins`` is unset (the quickstart's bare ``reconciler run``)."""


class PolicyRegistry(PluginRegistry):
    """The installed plugins minus those the daemon's ``--allow-plugins`` leaves out.

    Validation then reports a left-out plugin as "not allowed" (and the workflow is ``Invalid``),
    rather than as unknown. An empty ``allow`` allows no plugin at all.
    """

    def __init__(self, registry: PluginRegistry, allow: list[str]) -> None:
        def allowed(name: str) -> bool:  # glob patterns: "http.*" allows http.check, http.request
            return any(fnmatchcase(name, pattern) for pattern in allow)

        super().__init__({name: registry.get(name) for name in registry.names() if allowed(name)})
        self.allow = tuple(allow)
        self.load_errors = {k: v for k, v in registry.load_errors.items() if allowed(k)}
        self.refused = frozenset(name for name in registry.names() if not allowed(name))

    def unknown_message(self, name: str) -> str:
        if name in self.refused and not self.allow:
            return (
                f"plugin {name!r} is not allowed here (the daemon's --allow-plugins / "
                "RECONCILER_ALLOW_PLUGINS is set but empty, which allows no plugin)"
            )
        if name in self.refused:
            return f"plugin {name!r} is not allowed here (the daemon's --allow-plugins does not list it)"
        return super().unknown_message(name)


def restrict_registry(registry: PluginRegistry, allow: list[str] | None) -> PluginRegistry:
    """Only the plugins ``--allow-plugins`` matches (glob patterns).

    ``None`` (the setting unset) allows every installed plugin, so the quickstart converges with
    a bare ``reconciler run``; :meth:`Controller.run` then logs
    :data:`UNRESTRICTED_PLUGINS_WARNING`. An empty list (the setting given as ``""``) allows
    none. A workflow using a plugin left out fails validation and is marked ``Invalid``: a
    commit cannot grant itself ``shell.run``.
    """
    if allow is None:
        return registry
    return PolicyRegistry(registry, allow)


def _innermost_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "unknown place"
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


class Controller:
    """Runs the reconcile loop for one repository until stopped.

    ``grants`` are what workflows may reach (default: from the settings, the data directory
    denied); ``secrets`` is the resolver runs use (default: ``env:``/``file:`` only; ``reconciler run``
    passes one with Vault when configured); ``clock`` (monotonic seconds, for back-off) and ``now`` (UTC timestamps in statuses)
    are injectable for tests.
    """

    def __init__(
        self,
        settings: DaemonSettings,
        store: Store,
        *,
        source: Source,
        registry: PluginRegistry,
        secrets: SecretResolver | None = None,
        grants: Grants | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.registry = registry
        self._now = now
        self.journal = DaemonJournal(store)
        self.metrics = DaemonMetrics()
        self.engine = Engine(
            registry,
            journal=self.metrics.journal(self.journal),
            workdir=settings.workdir.resolve(),
            grants=grants
            if grants is not None
            else settings.grants(private=source.private_paths()),
            secrets=self.metrics.resolver(secrets),
            expression_cost_limit=settings.expression_cost_limit,
        )
        self.target = _Target()
        self.snapshot: Snapshot | None = None
        self._files: dict[str, FileResult] = {}
        self._validation = ValidationCache()
        self._resume: dict[str, RunRecord] = {}
        self.queue = WorkQueue(
            max_concurrent=settings.max_concurrent_runs,
            clock=clock,
            dependencies=self._dependencies,
        )
        self.scheduler = DriftScheduler(
            self._drift_check_due, default_interval=settings.default_interval
        )
        self.metrics.watch_queue(self.queue)
        self.metrics.watch_source(source)
        self.ready = asyncio.Event()
        """Set once the first revision has been loaded (the seam for ``/readyz``)."""
        self.suspended: set[str] = set()
        """Workflows suspended through the API (loaded from their status rows at start)."""
        self.running: dict[str, str] = {}
        """Runs in progress in this process: run id → workflow name."""
        self._run_tasks: dict[str, asyncio.Task[RunResult]] = {}
        self._cancel_requested: set[str] = set()
        self.leases = WorkflowLeases(store, owner=settings.replica_id, ttl=settings.lease_ttl)
        """Claims on workflows shared with other replicas (PostgreSQL; see daemon/replicas.py)."""
        self.statuses = StatusBook(
            store,
            shared=self.leases.shared,
            idle=lambda: not (len(self.queue) or self.queue.processing),
        )
        """Every workflow's status row: read and written here, never in the store directly."""

    # -- public seams ------------------------------------------------------------------------

    def request_sync(self, name: str) -> bool:
        """Queue a manual sync of ``name`` (runs even when in sync). False for unknown names."""
        if name not in self.target.valid and name not in self.target.invalid:
            return False
        log.info(f"manual sync of workflow {name} requested", workflow=name)
        self.queue.add(name, Reason.MANUAL)
        return True

    async def suspend(self, name: str) -> bool:
        """Stop starting runs of ``name`` until :meth:`resume` (a run in progress finishes;
        cancel it to stop it). Kept in the status row, so it survives a restart. False for
        unknown names."""
        if name not in self.target.valid and name not in self.target.invalid:
            return False
        self.suspended.add(name)
        status = await self.statuses.get(name) or WorkflowStatusRecord(name=name)
        await self._store_status(status)
        log.info(f"workflow {name} suspended through the API; nothing runs", workflow=name)
        return True

    async def resume(self, name: str) -> bool:
        """Undo :meth:`suspend` and check ``name`` at once (it runs if it is out of sync or its
        spec changed meanwhile). False for unknown names."""
        if name not in self.target.valid and name not in self.target.invalid:
            return False
        was = name in self.suspended
        self.suspended.discard(name)
        status = await self.statuses.get(name)
        if status is not None and status.reason == StatusReason.SUSPENDED_MANUALLY:
            await self.statuses.put(
                status.model_copy(
                    update={
                        "status": Health.PENDING,
                        "reason": "",
                        "message": "resumed through the API",
                        "updated_at": self._now(),
                    }
                )
            )
        if was:
            log.info(f"workflow {name} resumed through the API", workflow=name)
        self.queue.add(name, Reason.DRIFT_CHECK)  # a check: it runs only if out of sync
        return True

    def cancel(self, run_id: str) -> bool:
        """Cancel run ``run_id`` if it is in progress in this process (False otherwise)."""
        task = self._run_tasks.get(run_id)
        if task is None or task.done():
            return False
        self._cancel_requested.add(run_id)
        task.cancel()
        log.info(
            f"run {short(run_id)} of workflow {self.running.get(run_id)} cancelled through the API",
            workflow=self.running.get(run_id),
            run=run_id,
        )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` is set, then shut down gracefully (see module docstring).

        Raises :class:`~reconciler.errors.SourceError` (after the same graceful shutdown) if the
        source stops on its own, since no new revision could arrive after that.
        """
        self.leases.start()
        await self._load_unfinished_runs()
        self.scheduler.start()
        source_stop = asyncio.Event()
        workers = [
            asyncio.create_task(self._worker(i), name=f"reconcile-worker-{i}")
            for i in range(self.settings.max_concurrent_runs)
        ]
        source_task = asyncio.create_task(
            self.source.run(self._on_revision, stop=source_stop), name="source"
        )
        prune_task = asyncio.create_task(
            prune_periodically(
                self.store, self.settings.keep_runs, keep_days=self.settings.keep_days
            ),
            name="prune",
        )
        leases_task = asyncio.create_task(
            self.leases.maintain(on_orphans=self._take_over, busy=lambda: self.queue.processing),
            name="leases",
        )
        log.info(
            f"reconciler started: watching {self.source.description}",
            max_concurrent_runs=self.settings.max_concurrent_runs,
        )
        if self.settings.allow_plugins is None:
            log.warning(UNRESTRICTED_PLUGINS_WARNING)
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait({stopper, source_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            await self._shutdown(workers, source_task, prune_task, source_stop)
            leases_task.cancel()
            await asyncio.gather(leases_task, return_exceptions=True)
            await self.leases.stop()
            await self.statuses.close()
        if not stop.is_set():
            # The source only returns when asked to; anything else means no more revisions.
            failure = source_task.exception() if not source_task.cancelled() else None
            what = type(failure).__name__ if failure is not None else "it returned"
            raise SourceError(f"the source of workflow files stopped unexpectedly ({what})")

    # -- shutdown ----------------------------------------------------------------------------

    async def _shutdown(
        self,
        workers: list[asyncio.Task[None]],
        source_task: asyncio.Task[None],
        prune_task: asyncio.Task[None],
        source_stop: asyncio.Event,
    ) -> None:
        busy = sorted(self.queue.processing)
        log.info(
            "stopping: taking no new work"
            + (f"; waiting for {', '.join(busy)} to finish" if busy else ""),
        )
        source_stop.set()
        self.scheduler.shutdown()
        self.queue.shutdown()
        prune_task.cancel()
        grace = self.settings.grace_period.total_seconds()
        _done, pending = await asyncio.wait(workers, timeout=grace) if workers else (set(), set())
        if pending:
            self.journal.interrupting = True
            log.warning(
                f"grace period of {grace:g}s is over; interrupting {', '.join(sorted(self.queue.processing))}"
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for run_id, state in self.journal.interrupted.items():
                log.info(
                    f"run {short(run_id)} interrupted in state {state}; it resumes on the next start",
                    run=run_id,
                    state=state,
                )
        await asyncio.gather(source_task, prune_task, return_exceptions=True)
        log.info("stopped")

    # -- triggers ----------------------------------------------------------------------------

    def _drift_check_due(self, name: str) -> None:
        if name in self.target.valid:
            self.queue.add(name, Reason.DRIFT_CHECK)

    def _dependencies(self, name: str) -> list[str]:
        lw = self.target.valid.get(name)
        return list(lw.workflow.spec.depends_on) if lw is not None else []

    def _take_over(self, names: Iterable[str]) -> None:
        """Queue workflows whose unfinished run may have lost its replica (the claim decides)."""
        for name in names:
            if name in self.target.valid:
                self.queue.add(name, Reason.RESUME)
            elif name in self.target.removed:
                self.queue.add(name, Reason.DELETE)

    async def _load_unfinished_runs(self) -> None:
        for status in await self.statuses.load():
            if status.reason == StatusReason.SUSPENDED_MANUALLY:
                self.suspended.add(status.name)
        if self.leases.shared:
            return  # replicas: resumed under the workflow's lease (_claim_unfinished_run)
        for record in await self.store.unfinished_runs():
            if record.parent_id is not None:
                continue  # a child run is resumed by its parent's workflow.run action
            self._resume[record.workflow] = record

    async def _on_revision(self, revision: Revision) -> None:
        """Load the new revision incrementally and queue what it affects."""
        previous_files = self._files
        previous_valid = self.target.valid
        files: dict[str, FileResult] = {}
        many = len(revision.changed) >= BULK_LOAD_FILES  # the first revision, a big commit
        with bulk_loading() if many else contextlib.nullcontext():
            for path, content in revision.files.items():
                old = previous_files.get(path)
                if old is not None and path not in revision.changed:
                    files[path] = old
                else:
                    files[path] = load_text(content, path=path)
        for path, reason in revision.refused.items():  # never read: a problem for that file
            files[path] = refused_result(path, reason)
        snapshot = Snapshot.from_files(revision.id, files)
        invalid: dict[str, list[Problem]] = {k: list(v) for k, v in snapshot.invalid.items()}
        checked = validate_snapshot(
            snapshot,
            self.registry,
            cache=self._validation,
            grants=self.engine.grants,
            workdir=self.engine.workdir,
        )
        for problem in checked:
            if problem.is_error and problem.workflow in snapshot.workflows:
                invalid.setdefault(problem.workflow, []).append(problem)
        # A file that no longer parses at all names no workflow: the ones it held are invalid.
        for path, result in files.items():
            if not result.problems:
                continue
            nameless = [p for p in result.problems if p.is_error and p.workflow is None]
            if nameless and path in revision.changed:
                more = f" (and {len(nameless) - 1} more)" if len(nameless) > 1 else ""
                log.warning(f"file {nameless[0]}{more}", revision=revision.id, file=path)
            old = previous_files.get(path)
            if not nameless or old is None:
                continue
            for lw in old.workflows:
                if lw.name not in snapshot.workflows:
                    invalid.setdefault(lw.name, []).extend(nameless)
        valid = {n: lw for n, lw in snapshot.workflows.items() if n not in invalid}

        before = set(self.target.valid) | set(self.target.invalid)
        removed = dict(self.target.removed)
        for name in before - set(valid) - set(invalid):
            last = self.target.valid.get(name) or self._last_known(name, previous_files)
            if last is not None:
                removed[name] = last
        for name in list(removed):
            if name in valid or name in invalid:
                del removed[name]

        orphans: set[str] = set(self.target.orphans)
        if self.snapshot is None:  # the first revision since start: compare with the store
            known = {st.name for st in await self.statuses.load()}
            orphans = known - set(valid) - set(invalid)
        orphans -= set(valid) | set(invalid)
        self._files = files
        self.snapshot = snapshot
        self.target = _Target(revision.id, valid, invalid, removed, orphans)
        self.leases.revision_loaded(revision.id, at=self._now())
        self.metrics.snapshot_loaded(revision.id, [*snapshot.problems, *checked])
        self.engine.workflows = {n: lw.workflow for n, lw in valid.items()}
        self.scheduler.sync({n: lw.workflow for n, lw in valid.items()})

        changed = len(revision.changed) + len(revision.removed)
        log.info(
            f"revision {revision.short_id}: {len(valid)} workflows valid, {len(invalid)} invalid, "
            f"{len(removed) + len(orphans)} removed ({changed} files changed)",
            revision=revision.id,
        )
        # What this revision changed goes first: its run should not wait behind re-checks of
        # every unchanged workflow (all of them are still re-evaluated at the revision).
        fresh = {n for n, lw in valid.items() if previous_valid.get(n) is not lw}
        for name in [*sorted(fresh), *sorted(n for n in valid if n not in fresh), *sorted(invalid)]:
            self.queue.forget(name)
            reason = Reason.RESUME if name in self._resume and name in valid else Reason.REVISION
            self.queue.add(name, reason)
        for name in sorted(set(removed) | orphans):
            self.queue.add(name, Reason.DELETE)
        for name, record in list(self._resume.items()):
            if name not in valid:
                del self._resume[name]
                await self._abandon(record, why="its workflow is no longer valid in git")
        self.ready.set()

    @staticmethod
    def _last_known(name: str, files: Mapping[str, FileResult]) -> LoadedWorkflow | None:
        for result in files.values():
            for lw in result.workflows:
                if lw.name == name:
                    return lw
        return None

    # -- workers -----------------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
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
            try:
                with structlog.contextvars.bound_contextvars(
                    workflow=item.key, run=None, state=None, revision=self.target.revision
                ):
                    await self._reconcile(item)
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
                where = _innermost_frame(exc)
                log.error(
                    f"reconciling workflow {item.key} crashed with {type(exc).__name__} at "
                    f"{where}; this is a bug, the workflow backs off and is retried",
                    workflow=item.key,
                    error=type(exc).__name__,
                )
                self.queue.fail(item.key)
            finally:
                self.queue.done(item.key)

    async def _reconcile(self, item: WorkItem) -> None:
        async with self.leases.hold(item.key) as claimed:
            if not claimed:
                log.debug(f"workflow {item.key} is claimed by another replica", workflow=item.key)
                # The holder may finish before it sees these; ask again once it is done.
                for reason in item.reasons & {Reason.MANUAL, Reason.DELETE}:
                    later = self.leases.ttl.total_seconds() / 3
                    self.queue.add_after(item.key, later, reason=reason)
                return
            if self.leases.shared:
                if await self._settled_elsewhere(item):
                    return
                await self._claim_unfinished_run(item.key)
            await self._reconcile_held(item)

    async def _settled_elsewhere(self, item: WorkItem) -> bool:
        """Replicas only, under the workflow's lease: take in what other replicas stored about
        it, and say whether that leaves nothing to do here (see daemon/replicas.py)."""
        name = item.key
        status = await self.statuses.get(name)
        # suspend/resume may have come through another replica's API: the row says
        if status is not None and status.reason == StatusReason.SUSPENDED_MANUALLY:
            self.suspended.add(name)
        else:
            self.suspended.discard(name)
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
        lw = self.target.valid.get(name)
        if lw is None:
            return False
        if item.reasons == {Reason.REVISION} and self.leases.converged_here_since(
            status, revision=self.target.revision, digest=lw.digest
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

    async def _claim_unfinished_run(self, name: str) -> None:
        """Under ``name``'s lease: a top-level run of it still marked running was left by a
        replica that died, stopped or lost the lease; resume it here (or abandon it when the
        workflow is gone from git)."""
        left = [
            r for r in await self.store.unfinished_runs() if r.workflow == name and not r.parent_id
        ]
        self._resume.pop(name, None)
        if not left:
            return
        if name not in self.target.valid:
            for record in left:
                await self._abandon(record, why="its workflow is no longer valid in git")
            return
        self._resume[name] = left[-1]
        log.info(
            f"taking over run {short(left[-1].id)} of workflow {name} (its replica stopped or "
            f"lost the lease); replica {self.leases.owner}",
            workflow=name,
            run=left[-1].id,
        )

    async def _reconcile_held(self, item: WorkItem) -> None:
        name = item.key
        target = self.target
        if name in target.removed:
            await self._retire(name, target.removed[name])
            return
        if name in target.orphans:
            target.orphans.discard(name)
            await self.statuses.delete(name)
            self.metrics.workflow_removed(name)
            log.warning(
                f"workflow {name} was removed from git while the daemon was stopped; retired "
                "without an onDelete run (its spec is gone; its run history is kept)",
                workflow=name,
            )
            return
        status = await self.statuses.get(name)
        if name in target.invalid:
            await self._apply(
                plan_invalid(name, status, problems=target.invalid[name], now=self._now()),
                name,
                durable=False,
            )
            return
        lw = target.valid.get(name)
        if lw is None:
            return
        workflow = lw.workflow
        revision = target.revision
        if name in self.suspended:
            await self._store_status(status or WorkflowStatusRecord(name=name), durable=False)
            log.info(f"workflow {name} is suspended through the API; nothing runs", workflow=name)
            return
        resume = self._resume.pop(name, None)
        if resume is not None:
            await self._run(
                lw, status, revision=revision, reason=resume.reason or "resume", resume=resume
            )
            return
        statuses = {
            dep: st
            for dep in workflow.spec.depends_on
            if (st := await self.statuses.get(dep)) is not None
        }
        decision = plan_static(
            workflow, status, revision=revision, statuses=statuses, now=self._now()
        )
        if decision.next is Next.DONE:
            await self._apply(decision, name, durable=False)
            return
        observation = await self._observe(workflow, revision) if workflow.spec.observe else None
        decision = plan_observed(
            workflow,
            status,
            revision=revision,
            digest=lw.digest,
            observation=observation,
            manual=item.manual,
            now=self._now(),
        )
        if decision.next is not Next.RUN:
            await self._apply(decision, name, durable=False)
            return
        observed = observation.observed if observation is not None else None
        await self._run(
            lw,
            decision.status,
            revision=revision,
            reason=str(decision.run_reason),
            why=decision.message,
            observed=observed if isinstance(observed, dict) else None,
        )

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
    ) -> None:
        workflow = lw.workflow
        name = workflow.name
        run_id = resume.id if resume is not None else uuid4().hex
        structlog.contextvars.bind_contextvars(run=run_id)
        base = status or WorkflowStatusRecord(name=name)
        running = base.model_copy(
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
        await self._store_status(running, wait=False)
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
        task = asyncio.create_task(
            self.engine.run(
                workflow,
                reason=reason,
                revision=revision,
                observed=observed,
                resume=resume,
                run_id=None if resume is not None else run_id,
            ),
            name=f"run-{run_id}",
        )
        self._run_tasks[run_id] = task
        self.running[run_id] = name
        cancelled_by_api = False
        try:
            result = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if run_id not in self._cancel_requested or (current and current.cancelling()):
                raise  # shutdown: the run stays resumable
            cancelled_by_api = True
        finally:
            self._run_tasks.pop(run_id, None)
            self.running.pop(run_id, None)
            self._cancel_requested.discard(run_id)
        if cancelled_by_api:
            decision = plan_finished(
                workflow,
                running,
                revision=revision,
                digest=lw.digest,
                run_id=run_id,
                error="Cancelled: the run was cancelled through the API",
                observation=None,
                now=self._now(),
            )
            await self._apply(decision, name, durable=True)
            return
        after = (
            await self._observe(workflow, revision)
            if result.ok and workflow.spec.observe is not None
            else None
        )
        decision = plan_finished(
            workflow,
            running,
            revision=revision,
            digest=lw.digest,
            run_id=run_id,
            error=result.run.error or (str(result.error) if result.error else None),
            observation=after,
            now=self._now(),
        )
        await self._apply(decision, name, durable=True)

    async def _retire(self, name: str, lw: LoadedWorkflow) -> None:
        workflow = lw.workflow
        on_delete = workflow.spec.on_delete
        if on_delete is not None:
            run_id = uuid4().hex
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
                revision=self.target.revision,
                run_id=run_id,
            )
            if not result.ok:
                log.warning(
                    f"onDelete run {short(run_id)} of workflow {name} failed: {result.run.error}; "
                    "retiring it anyway",
                    workflow=name,
                    run=run_id,
                )
        self.target.removed.pop(name, None)
        self.scheduler.remove(name)
        await self.statuses.delete(name)
        self.metrics.workflow_removed(name)
        log.info(f"workflow {name} retired (its run history is kept)", workflow=name)

    async def _abandon(self, record: RunRecord, *, why: str) -> None:
        record = record.model_copy(
            update={
                "status": RunStatus.CANCELLED,
                "finished_at": utcnow(),
                "error": f"Cancelled: not resumed because {why}",
            }
        )
        with contextlib.suppress(StoreError):
            await self.store.run_finished(record)
        log.warning(
            f"run {short(record.id)} of workflow {record.workflow} not resumed: {why}",
            workflow=record.workflow,
            run=record.id,
        )

    # -- applying decisions ------------------------------------------------------------------

    async def _apply(self, decision: Decision, name: str, *, durable: bool) -> None:
        """Store and log ``decision``. ``durable``: it is a run's outcome, which checking the
        workflow again would not decide again (a check's outcome may be written behind)."""
        await self._store_status(decision.status, durable=durable)
        level = "warning" if decision.failed or decision.status.status is Health.INVALID else "info"
        fields: dict[str, Any] = {
            "workflow": name,
            "revision": self.target.revision,
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

    async def _store_status(
        self, record: WorkflowStatusRecord, *, durable: bool = True, wait: bool = True
    ) -> None:
        if record.name in self.suspended:
            record = record.model_copy(
                update={
                    "status": Health.SUSPENDED,
                    "reason": StatusReason.SUSPENDED_MANUALLY,
                    "message": "suspended through the API; resume it to run again",
                    "updated_at": self._now(),
                }
            )
        nxt = self.scheduler.next_check(record.name)
        await self.statuses.put(
            record.model_copy(update={"next_check_at": nxt}), durable=durable, wait=wait
        )
        self.metrics.status_changed(record)

    async def _wake_dependents(self, name: str) -> None:
        for other in self.target.dependents.get(name, []):
            status = await self.statuses.get(other)
            if (
                status is not None
                and status.status is Health.CONVERGED
                and status.last_applied_revision == self.target.revision
            ):
                continue
            self.queue.add(other, Reason.DEPENDENCY)
