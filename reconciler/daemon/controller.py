"""The controller: builds the daemon's parts, runs them until stopped, and steers them.

The daemon is a loop with feedback, not a pipeline (``docs/architecture.md`` draws it):

- The source delivers revisions; :mod:`~reconciler.daemon.revision` loads each one
  incrementally, selects the new :class:`~reconciler.daemon.target.Target` (valid, invalid,
  removed workflows) and queues every workflow in the
  :class:`~reconciler.daemon.queue.WorkQueue`. Drift checks
  (:class:`~reconciler.daemon.scheduler.DriftScheduler`), back-off expiry, manual syncs
  (:meth:`Controller.request_sync`), replica take-overs and dependencies feed the same queue.
- ``max_concurrent_runs`` workers (:mod:`~reconciler.daemon.reconcile`) take workflows from the
  queue and ask the :mod:`~reconciler.daemon.planner` what to do, with the stored status as
  input; runs go to the :class:`~reconciler.daemon.runs.RunSupervisor` and their outcome is
  stored through the :class:`~reconciler.daemon.statuses.StatusBook`. Statuses feed the next
  decision; failures feed back-off into the queue; convergence wakes dependents through it.
- The HTTP API steers through :meth:`Controller.request_sync`, :meth:`Controller.suspend` /
  :meth:`Controller.resume` (a daemon-side override kept in the workflow's status row, its
  ``suspended`` flag, so it survives a restart and no replica's status write undoes it) and
  :meth:`Controller.cancel` (the run is journaled ``cancelled`` and the workflow backs off like
  after a failure) and :meth:`Controller.decide` (an approval or rejection for a run waiting
  at an approval gate, :mod:`~reconciler.daemon.approvals`). Each is recorded in the store's command log before the seam returns, and
  applied here at once; every replica reads the log and applies what concerns it
  (:mod:`~reconciler.daemon.commands`). The API reads through
  :class:`~reconciler.daemon.view.ControllerView`.
- At start, runs the store still marks running are resumed in the state they were in. On a
  PostgreSQL store several replicas share the work (:mod:`~reconciler.daemon.replicas`): each
  workflow is reconciled under its lease, the run's journal writes are fenced by it, and a run
  whose replica died or lost the lease is resumed by the replica that claims the workflow next.
  On SQLite, a second daemon on the same file is refused at start.
- :meth:`Controller.run` returns once ``stop`` is set: no new work is taken, running work gets
  ``grace_period`` to finish; runs still going after that are interrupted *without* being
  marked finished, so they resume on the next start.

Called by: ``reconciler run`` (:mod:`reconciler.cli.run`) and the test harnesses. Calls: every
module of this package; the engine, the source, the store and the metrics are built or handed
in here and passed down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import structlog

from reconciler.clock import utcnow
from reconciler.config.notifications import ProviderType
from reconciler.config.parameters import accept_inputs
from reconciler.config.snapshot import Snapshot
from reconciler.daemon.approvals import ApprovalInbox, Refusal, refusal, top_level
from reconciler.daemon.approvals import payload as approval_payload
from reconciler.daemon.commands import CommandReader
from reconciler.daemon.journal import DaemonJournal
from reconciler.daemon.policy import UNRESTRICTED_PLUGINS_WARNING
from reconciler.daemon.preview import Previewer, PullRequestPreviews
from reconciler.daemon.queue import Reason, WorkQueue
from reconciler.daemon.reconcile import Reconciler
from reconciler.daemon.replicas import WorkflowLeases
from reconciler.daemon.revision import RevisionApplier
from reconciler.daemon.runs import RunSupervisor, run_keys, short
from reconciler.daemon.scheduler import DriftScheduler
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.snapshot_cache import SnapshotCache
from reconciler.daemon.state import DaemonState
from reconciler.daemon.statuses import StatusBook
from reconciler.daemon.target import Target
from reconciler.daemon.windows import (
    WindowVerdict,
    applicable,
    blocked_at,
    load_windows_file,
    verdict_for,
)
from reconciler.engine.approvals import ApprovalRequest, pending_approval
from reconciler.engine.journal import RunStatus
from reconciler.engine.runner import Engine
from reconciler.errors import InputRejected, SourceError, StoreError
from reconciler.grants import Grants
from reconciler.notify import Notifier, NotifyPolicy, watch_source
from reconciler.notify.previews import ForgeAccess, PreviewPublisher
from reconciler.plugin import PluginRegistry
from reconciler.secrets.resolver import SecretResolver
from reconciler.sources import Revision, Source
from reconciler.store import CommandKind, Store, prune_periodically
from reconciler.telemetry.instrument import DaemonMetrics

log = structlog.get_logger("reconciler.daemon")

MAX_WAITING_INPUT_RUNS = 16
"""Requests with inputs that may wait per workflow (each gets a run of its own, never merged,
with up to 64 KiB of inputs in the command log): the next is refused (429
``too_many_waiting_runs``), so one operate token cannot queue an unbounded backlog."""


class Controller:
    """Runs the reconcile loop for one repository until stopped.

    ``grants`` are what workflows may reach (default: from the settings, the data directory
    denied); ``secrets`` is the resolver runs use (default: ``env:``/``file:`` only;
    ``reconciler run`` passes one with Vault when configured); ``clock`` (monotonic seconds, for
    back-off) and ``now`` (UTC timestamps in statuses) are injectable for tests.
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
        self.approvals = ApprovalInbox(store, on_request=self._approval_requested)
        """Where runs waiting at an approval gate get their decisions (daemon/approvals.py)."""
        self.engine = Engine(
            registry,
            journal=self.metrics.journal(self.journal),
            workdir=settings.workdir.resolve(),
            grants=grants
            if grants is not None
            else settings.grants(private=source.private_paths()),
            secrets=self.metrics.resolver(secrets),
            expression_cost_limit=settings.expression_cost_limit,
            approvals=self.approvals,
        )
        self.state = DaemonState(
            windows=load_windows_file(settings.windows_file)
            if settings.windows_file is not None
            else ()
        )
        self.queue = WorkQueue(
            max_concurrent=settings.max_concurrent_runs,
            clock=clock,
            dependencies=self._dependencies,
        )
        self.scheduler = DriftScheduler(
            self._drift_check_due, default_interval=settings.default_interval
        )
        self.metrics.watch_queue(self.queue)
        self.metrics.watch_windows(self._windows_blocked)
        self.metrics.watch_source(source)
        self.ready = asyncio.Event()
        """Set once the first revision has been loaded (the seam for ``/readyz``)."""
        self.leases = WorkflowLeases(store, owner=settings.replica_id, ttl=settings.lease_ttl)
        """Claims on workflows shared with other replicas (PostgreSQL; see daemon/replicas.py)."""
        self.statuses = StatusBook(
            store,
            shared=self.leases.shared,
            idle=lambda: not (len(self.queue) or self.queue.processing),
        )
        """Every workflow's status row: read and written here, never in the store directly."""
        self.runs = RunSupervisor(self.engine, store)
        self.notifier = Notifier(
            NotifyPolicy.of(settings.notify_hosts, settings.notify_provider_types),
            secrets=self.engine.secrets,
            external_url=settings.external_url,
        )
        """The event sink: the repository's alerts, delivered to its providers."""
        self.reconciler = Reconciler(
            self.state,
            settings,
            queue=self.queue,
            statuses=self.statuses,
            leases=self.leases,
            scheduler=self.scheduler,
            runs=self.runs,
            engine=self.engine,
            metrics=self.metrics,
            store=store,
            now=now,
            events=self.notifier,
        )
        self.commands = CommandReader(
            store,
            self.state,
            queue=self.queue,
            statuses=self.statuses,
            runs=self.runs,
            approvals=self.approvals,
            metrics=self.metrics,
            interval=settings.command_interval.total_seconds(),
            events=self.notifier,
        )
        """What the API accepted through any replica, applied here (see daemon/commands.py)."""
        self.previewer = Previewer(
            source=source,
            registry=registry,
            grants=self.engine.grants,
            workdir=self.engine.workdir,
            current=lambda: self.state.target,
            statuses=self.statuses.load,
            observe=lambda lw: self.engine.observe(lw.workflow),
            now=now,
            window=lambda lw, at: verdict_for(lw.workflow, self.state.windows, at),
            limit=settings.preview_max_workflows,
            timeout=settings.preview_timeout.total_seconds(),
        )
        """Previews of a ref (``POST /api/v1/previews``): read-only, see daemon/preview.py."""
        self.pull_requests = PullRequestPreviews(
            self.previewer,
            PreviewPublisher(NotifyPolicy.of(settings.notify_hosts, None), self._forge_access),
        )
        """Previews of pull/merge requests from the webhooks, posted back to the forge."""
        self.revisions = RevisionApplier(
            self.state,
            registry,
            grants=self.engine.grants,
            workdir=self.engine.workdir,
            queue=self.queue,
            statuses=self.statuses,
            scheduler=self.scheduler,
            runs=self.runs,
            leases=self.leases,
            metrics=self.metrics,
            now=now,
            on_loaded=self._notifications_loaded,
            cache=SnapshotCache(settings.data_dir),
        )

    def _forge_access(self, forge: ProviderType) -> ForgeAccess | None:
        """The operator's URL and token for ``forge`` (``None``: no token, nothing is sent)."""
        s = self.settings
        token, url = (
            (s.preview_github_token, s.preview_github_url)
            if forge is ProviderType.GITHUB
            else (s.preview_gitlab_token, s.preview_gitlab_url)
        )
        if token is None or not token.get_secret_value():
            return None
        return ForgeAccess(url, token.get_secret_value())

    # -- what the view and the tests read ------------------------------------------------------

    @property
    def target(self) -> Target:
        """The workflows of the current revision: valid, invalid, removed."""
        return self.state.target

    @property
    def snapshot(self) -> Snapshot | None:
        """The current revision as loaded (``None`` before the first one)."""
        return self.state.target.snapshot

    @property
    def suspended(self) -> set[str]:
        """Workflows suspended through the API."""
        return self.state.suspended

    @property
    def running(self) -> dict[str, str]:
        """Runs in progress in this process: run id → workflow name."""
        return self.runs.running

    def window(self, name: str) -> WindowVerdict | None:
        """The verdict now of the change windows of workflow ``name`` (``None``: none apply,
        or the workflow does not parse)."""
        lw = self.state.target.valid.get(name) or self.state.target.removed.get(name)
        if lw is None:
            return None
        return verdict_for(lw.workflow, self.state.windows, self._now())

    def _windows_blocked(self) -> dict[str, bool]:
        """For the metric: each valid workflow a window applies to, and whether one blocks it."""
        now = self._now()
        out: dict[str, bool] = {}
        for name, lw in self.state.target.valid.items():
            applied = applicable(lw.workflow, self.state.windows)
            if applied:
                out[name] = blocked_at(applied, now)
        return out

    # -- public seams ------------------------------------------------------------------------

    async def request_sync(
        self,
        name: str,
        *,
        requested_by: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Queue a manual sync of ``name`` (runs even when in sync), recorded in the store first
        so that it survives a crash and reaches the replica that holds the workflow.
        ``requested_by`` (the API token's name; default: this replica's id) goes into the
        command log and the run it causes. False for unknown names.

        ``inputs`` (a run with inputs): validated against the workflow's ``spec.parameters``
        (:class:`~reconciler.errors.InputRejected` before anything is recorded; a workflow that
        is not valid now has no parameters to accept them) and recorded as the command's
        payload; the run answering it runs with exactly these, and is not merged with a plain
        sync or one with other inputs."""
        if not self.state.target.knows(name):
            return False
        payload: dict[str, Any] | None = None
        if inputs:
            lw = self.state.target.valid.get(name)
            parameters = lw.workflow.spec.parameters if lw is not None else {}
            payload = {"inputs": accept_inputs(name, parameters, inputs)}
            await self._check_backlog(name)
        who = requested_by or self.leases.owner
        command = await self.store.request(
            CommandKind.SYNC, name, requested_by=who, payload=payload
        )
        self.commands.seen(command)
        with_inputs = f" with inputs {', '.join(sorted(inputs))}" if inputs else ""
        log.info(
            f"manual sync of workflow {name}{with_inputs} requested by {who}",
            workflow=name,
            requested_by=who,
        )
        self.queue.add(name, Reason.MANUAL)
        return True

    async def _check_backlog(self, name: str) -> None:
        """Raise :class:`InputRejected` (``too_many_waiting_runs``) when
        :data:`MAX_WAITING_INPUT_RUNS` requests with inputs already wait for ``name``."""
        waiting = await self.store.unhandled_commands(CommandKind.SYNC, target=name)
        if sum(1 for c in waiting if (c.payload or {}).get("inputs")) >= MAX_WAITING_INPUT_RUNS:
            raise InputRejected(
                f"workflow {name!r} already has {MAX_WAITING_INPUT_RUNS} runs with inputs "
                "waiting to start; ask again once some have run",
                code="too_many_waiting_runs",
                input="",
            )

    async def suspend(self, name: str, *, requested_by: str | None = None) -> bool:
        """Stop starting runs of ``name`` until :meth:`resume` (a run in progress finishes;
        cancel it to stop it). Committed in the status row (its ``suspended`` flag) before it
        returns, so it survives a restart and holds on every replica. False for unknown names."""
        if not self.state.target.knows(name):
            return False
        who = requested_by or self.leases.owner
        command, status = await self.store.request_suspension(
            name, suspended=True, requested_by=who
        )
        await self.commands.applied(command, status)
        log.info(
            f"workflow {name} suspended by {who}; nothing runs", workflow=name, requested_by=who
        )
        return True

    async def resume(self, name: str, *, requested_by: str | None = None) -> bool:
        """Undo :meth:`suspend` and check ``name`` at once (it runs if it is out of sync or its
        spec changed meanwhile). False for unknown names."""
        if not self.state.target.knows(name):
            return False
        was = name in self.state.suspended
        who = requested_by or self.leases.owner
        command, status = await self.store.request_suspension(
            name, suspended=False, requested_by=who
        )
        await self.commands.applied(command, status)
        if was:
            log.info(f"workflow {name} resumed by {who}", workflow=name, requested_by=who)
        self.queue.add(name, Reason.DRIFT_CHECK)  # a check: it runs only if out of sync
        return True

    async def cancel(self, run_id: str, *, requested_by: str | None = None) -> bool:
        """Cancel run ``run_id`` wherever it runs: recorded in the store, applied at once when
        the run is in this process, else by the replica that holds it (or resumes it). False
        when the store has no such run in progress."""
        run = await self.store.get_run(run_id)
        if run is None or run.status is not RunStatus.RUNNING:
            return False
        who = requested_by or self.leases.owner
        command = await self.store.request(CommandKind.CANCEL, run_id, requested_by=who)
        self.commands.seen(command)
        log.info(
            f"cancel of run {short(run_id)} of workflow {run.workflow} requested by {who}",
            **run_keys(run),
            requested_by=who,
        )
        # handled by the command reader once the run is recorded cancelled (not before: a
        # crash in between would resume the run with its cancel forgotten)
        if not self.runs.cancel(run_id):
            log.info(
                f"cancel of run {short(run_id)} of workflow {run.workflow} recorded; the "
                "replica that holds it applies it",
                **run_keys(run),
            )
        return True

    async def decide(
        self,
        run_id: str,
        *,
        approved: bool,
        comment: str = "",
        requested_by: str | None = None,
        seen: int | None = None,
    ) -> Refusal | None:
        """Approve (or reject) run ``run_id`` waiting at an approval gate, wherever it runs:
        checked (see :func:`~reconciler.daemon.approvals.refusal`), recorded in the store, and
        handed to the run at once when it waits here (else the replica holding it, or the run
        when it resumes, reads it). ``None`` when recorded, else why not."""
        run = await self.store.get_run(run_id)
        if run is None:
            return Refusal("not_found", f"no run with id {run_id!r}")
        who = requested_by or self.leases.owner
        pending = pending_approval(await self.store.entries(run_id))
        # handled ones too: a decision the run has taken but not journaled yet still counts
        decided = await self.store.commands_of(CommandKind.APPROVE, run_id)
        top = await top_level(self.store, run)
        refused = refusal(run, pending, who=who, decided=decided, top=top, seen=seen)
        if refused is not None or pending is None:
            return refused
        command = await self.store.request(
            CommandKind.APPROVE,
            run_id,
            requested_by=who,
            payload=approval_payload(approved=approved, comment=comment, pending=pending),
        )
        self.commands.seen(command)
        verdict = "approval" if approved else "rejection"
        log.info(
            f"{verdict} of run {short(run_id)} of workflow {run.workflow} in state "
            f"{pending.state} recorded, by {who}",
            **run_keys(run),
            requested_by=who,
        )
        self.approvals.deliver(command)
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` is set, then shut down gracefully (see module docstring).

        Raises :class:`~reconciler.errors.SourceError` (after the same graceful shutdown) if the
        source stops on its own, since no new revision could arrive after that.
        """
        self.leases.start()
        await self._load_unfinished_runs()
        self.scheduler.start()
        self.notifier.start()
        source_stop = asyncio.Event()
        source_health = asyncio.create_task(
            watch_source(self.source, self.notifier, stop=source_stop), name="source-health"
        )
        workers = [
            asyncio.create_task(self.reconciler.work(), name=f"reconcile-worker-{i}")
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
        commands_task = asyncio.create_task(self.commands.follow(self.ready), name="commands")
        plugins_task = asyncio.create_task(self._prepare_plugins(), name="plugins")
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
            commands_task.cancel()
            plugins_task.cancel()
            await self._shutdown(workers, source_task, prune_task, source_stop)
            await asyncio.gather(commands_task, plugins_task, source_health, return_exceptions=True)
            await self.notifier.close()
            leases_task.cancel()
            await asyncio.gather(leases_task, return_exceptions=True)
            await self.leases.stop()
            await self.statuses.close()
        if not stop.is_set():
            # The source only returns when asked to; anything else means no more revisions.
            failure = source_task.exception() if not source_task.cancelled() else None
            what = type(failure).__name__ if failure is not None else "it returned"
            raise SourceError(f"the source of workflow files stopped unexpectedly ({what})")

    def _approval_requested(self, request: ApprovalRequest) -> None:
        """Tell the notifications that a run waits for an approval (``run.awaiting_approval``)."""
        if not self.notifier.active:
            return
        lw = self.state.target.valid.get(request.workflow)
        self.notifier.approval_requested(
            workflow=request.workflow,
            run=request.run_id,
            revision=request.revision,
            state=request.state,
            message=request.message,
            labels=lw.workflow.metadata.labels if lw is not None else {},
        )

    async def _prepare_plugins(self) -> None:
        """Initialise every plugin the daemon may use at start, so that one that cannot work
        (a server it checks is down, a bad setting) is named in the log now rather than at the
        first run that calls it. Runs beside the loop: nothing waits for it."""
        names = self.registry.names()
        failures = await self.engine.prepare(names)
        for name, error in sorted(failures.items()):
            log.error(
                f"plugin {name} failed to initialise: {error}; runs that call it fail until "
                "it can (it is tried again at each call)",
                plugin=name,
            )
        log.info(f"{len(names) - len(failures)} of {len(names)} plugins initialised")

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
        await self.pull_requests.close()
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
        if name in self.state.target.valid:
            self.queue.add(name, Reason.DRIFT_CHECK)

    def _dependencies(self, name: str) -> list[str]:
        lw = self.state.target.valid.get(name)
        return list(lw.workflow.spec.depends_on) if lw is not None else []

    def _take_over(self, names: Iterable[str]) -> None:
        """Queue workflows whose unfinished run may have lost its replica (the claim decides)."""
        target = self.state.target
        for name in names:
            if name in target.valid:
                self.queue.add(name, Reason.RESUME)
            elif name in target.removed:
                self.queue.add(name, Reason.DELETE)

    async def _load_unfinished_runs(self) -> None:
        for status in await self.statuses.load():
            if status.suspended:
                self.state.suspended.add(status.name)
        if not self.leases.shared:  # replicas: resumed under the workflow's lease
            await self.runs.load_unfinished()

    async def _on_revision(self, revision: Revision) -> None:
        """The source's callback: apply ``revision``; the daemon is ready after the first, once
        the syncs accepted before a restart are queued again (the command reader retries a
        failure at its next poll)."""
        await self.revisions.apply(revision)
        if not self.ready.is_set():
            with contextlib.suppress(StoreError):
                await self.commands.catch_up()
        self.ready.set()

    def _notifications_loaded(self, snapshot: Snapshot) -> None:
        self.notifier.configure(snapshot.providers, snapshot.alerts, problems=snapshot.problems)
