"""The engine: observe a workflow, and run its state machine from start to an end state.

Called by: the daemon's :mod:`~reconciler.daemon.reconcile` (:meth:`Engine.observe`, to decide
whether a workflow drifted) and :mod:`~reconciler.daemon.runs` (:meth:`Engine.run`, for the
workflows that need a run), ``reconciler plan``/``apply`` and :mod:`reconciler.testing`;
everything the run does is written to a :class:`~reconciler.engine.journal.Journal` (the store
implements it). This module holds a
run's life cycle (start or resume, secrets, checks, finish, child runs) and the observe probe;
the state loop is ``engine/machine.py``, how a state is left ``engine/plans.py``, and plugin
calls go through ``engine/actions.py``; ``foreach.py``, ``conditions.py``, ``checks.py``,
``retry.py`` and ``drift.py`` hold one concept each. Secrets come from a
:class:`~reconciler.secrets.resolver.SecretResolver` and are masked by a per-run
:class:`~reconciler.secrets.redaction.Redactor` before anything leaves the engine.

A run: ``run_started`` → resolve secrets → pre checks → start state → ... → end state → post
checks → ``run_finished``. Each ``transition`` entry is journaled before the next state starts,
so :meth:`Engine.run` with ``resume=`` can re-enter the state an interrupted run was in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import structlog

from reconciler.clock import on_clock, utcnow
from reconciler.config.expressions import (
    DEFAULT_COST_LIMIT,
    INLINE_COST,
    NeedsWorker,
    evaluate_bool_async,
    render,
    render_async,
)
from reconciler.config.models import Workflow
from reconciler.config.parameters import parameter_defaults
from reconciler.engine.actions import RunContext
from reconciler.engine.approvals import ApprovalDesk
from reconciler.engine.checks import during_checks_loop, run_checks
from reconciler.engine.drift import FieldDiff, diff_subset
from reconciler.engine.journal import (
    EventKind,
    Journal,
    RunRecord,
    RunStatus,
    copy_data,
    entered_at,
)
from reconciler.engine.machine import Flow, loop_deadline, walk
from reconciler.errors import (
    ActionError,
    Cancelled,
    ChildRunFailed,
    NotFound,
    PluginError,
    RunLeftUnfinished,
    SecretUnavailable,
    Timeout,
)
from reconciler.grants import Grants
from reconciler.plugin import ChildRunner, Plugin, PluginRegistry, RunInfo
from reconciler.secrets.redaction import RedactingLogger, Redactor
from reconciler.secrets.resolver import DefaultResolver, SecretResolver
from reconciler.types import format_duration

MAX_CHILD_DEPTH = 16
"""``workflow.run`` nesting limit, so a workflow that runs itself fails instead of looping."""


@dataclass(frozen=True)
class Observation:
    """What the observe probe saw and whether it matches the desired state.

    ``in_sync`` is ``None`` when the workflow has no probe (or no ``desired``/``inSync`` to
    compare with) and when the probe failed (then ``error`` says why). ``observed`` and ``diff``
    are redacted.
    """

    observed: Any
    in_sync: bool | None
    diff: list[FieldDiff]
    error: ActionError | None = None


@dataclass
class RunResult:
    """How a run ended. ``error`` is ``None`` exactly when the run succeeded.

    ``path`` lists the states entered, in order (the end state included); ``outputs`` are the
    run's redacted outputs; ``changed`` is true when any action reported ``changed``; ``end`` is
    the ``end:`` value of the end state reached, if one was reached.
    """

    run: RunRecord
    path: list[str]
    outputs: dict[str, Any]
    changed: bool
    error: ActionError | None
    end: str | None = None

    @property
    def ok(self) -> bool:
        return self.run.status is RunStatus.SUCCEEDED


_ENGINE_LOG = structlog.get_logger("reconciler.engine")


class Engine:
    """Runs workflows. One engine serves every run of a process; runs may proceed concurrently.

    ``workflows`` are the ones ``workflow.run`` may start by name; ``grants`` are what the
    operator allows plugins to reach (default :meth:`Grants.local` of ``workdir``); ``secrets``
    defaults to
    :class:`DefaultResolver` (``env:``/``file:``, checked against the same ``grants``); ``clock`` is the time source used for
    durations and deadlines (event-loop time by default; deadlines are always enforced with
    the event loop); ``rng`` drives retry jitter; ``retry_sleep`` spends the waits between
    retries (``asyncio.sleep`` by default; the test harness passes one that does not wait);
    ``expression_cost_limit`` is the budget of one CEL evaluation (the daemon's setting of that
    name): an expression estimated over it fails with ``ExpressionBudgetExceeded``;
    ``approvals`` is where ``approval`` conditions wait for decisions (without one they fail
    with ``ApprovalUnavailable``).
    """

    def __init__(
        self,
        registry: PluginRegistry,
        *,
        journal: Journal,
        workflows: Mapping[str, Workflow] | None = None,
        workdir: Path | None = None,
        grants: Grants | None = None,
        secrets: SecretResolver | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        retry_sleep: Callable[[float], Awaitable[None]] | None = None,
        expression_cost_limit: int = DEFAULT_COST_LIMIT,
        approvals: ApprovalDesk | None = None,
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.workflows: dict[str, Workflow] = dict(workflows or {})
        self.workdir = workdir if workdir is not None else Path.cwd()
        self.grants = grants if grants is not None else Grants.local(self.workdir)
        self.secrets: SecretResolver = (
            secrets if secrets is not None else DefaultResolver(grants=self.grants)
        )
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.retry_sleep = retry_sleep if retry_sleep is not None else asyncio.sleep
        self.expression_cost_limit = expression_cost_limit
        self.approvals = approvals
        self._ready: dict[int, Plugin[Any, Any]] = {}
        self._init_locks: dict[int, asyncio.Lock] = {}

    # -- helpers ------------------------------------------------------------------------------

    def _context(
        self,
        workflow: Workflow,
        record: RunRecord,
        *,
        journal: Journal | None,
        inputs: Mapping[str, Any] | None,
        observed: Any = None,
        inherited: Iterable[str] = (),
    ) -> RunContext:
        redactor = Redactor(inherited)
        logger = RedactingLogger(
            _ENGINE_LOG,
            redactor,
            {
                "workflow": workflow.name,
                "run": record.id,
                "state": None,
                "revision": record.revision,
            },
        )
        return RunContext(
            registry=self.registry,
            record=record,
            redactor=redactor,
            logger=logger,
            journal=journal,
            inputs={
                **workflow.spec.inputs,
                **parameter_defaults(workflow.spec.parameters),
                **dict(inputs or {}),
            },
            observed=observed,
            workdir=self.workdir,
            grants=self.grants,
            clock=self.clock,
            rng=self.rng,
            sleep=self.retry_sleep,
            ready=self._ensure_ready,
            cost_limit=self.expression_cost_limit,
            approvals=self.approvals,
        )

    async def prepare(self, names: Iterable[str]) -> dict[str, ActionError]:
        """Initialise the plugins ``names`` now (each one's ``init()``, as before its first call),
        concurrently, and return those that failed with their errors.

        A plugin that initialised is not initialised again; one that failed is tried again at
        its first call, as if this had not been called. Names the registry does not hold are
        skipped.
        """
        failures: dict[str, ActionError] = {}

        async def one(name: str) -> None:
            if name not in self.registry:
                return
            try:
                plugin = self.registry.instance(name)
            except Exception as exc:  # a plugin's constructor bug must not stop the others
                failures[name] = PluginError(
                    f"{name} could not be created: {type(exc).__name__}: {exc}"
                )
                return
            try:
                await self._ensure_ready(plugin)
            except ActionError as err:
                failures[name] = err

        await asyncio.gather(*(one(name) for name in dict.fromkeys(names)))
        return failures

    async def _ensure_ready(self, plugin: Plugin[Any, Any]) -> None:
        """Run ``plugin.init()`` once, before its first call; a failure is retried next call."""
        key = id(plugin)
        if key in self._ready:
            return
        lock = self._init_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._ready:
                return
            try:
                await plugin.init()
            except ActionError:
                raise
            except Exception as exc:  # a plugin bug must never crash the run loop
                raise PluginError(
                    f"{plugin.name or type(plugin).__name__} failed to initialise: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            self._ready[key] = plugin

    async def _resolve(self, ctx: RunContext, refs: Mapping[str, str]) -> dict[str, str]:
        if not refs:
            return {}
        try:
            values = await self.secrets.resolve(dict(refs))
        except ActionError:
            raise
        except Exception as exc:  # a resolver bug must not crash the run loop
            raise SecretUnavailable(
                f"secret resolution failed ({type(exc).__name__}); references: "
                + ", ".join(sorted(refs))
            ) from None
        for value in values.values():
            ctx.redactor.add(value)
        return values

    # -- observe ------------------------------------------------------------------------------

    async def observe(
        self,
        workflow: Workflow,
        *,
        run_info: RunInfo | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Run the workflow's ``observe`` probe and compare it with ``desired``/``inSync``.

        Never raises an :class:`ActionError`: a failing probe (or secret, or CEL) is returned in
        :attr:`Observation.error`. Nothing is journaled.
        """
        spec = workflow.spec
        if spec.observe is None:
            return Observation(None, None, [])
        info = run_info or RunInfo(id=uuid4().hex, workflow=workflow.name)
        record = RunRecord(
            id=info.id,
            workflow=workflow.name,
            revision=info.revision,
            parent_id=info.parent_id,
            reason="observe",
        )
        ctx = self._context(workflow, record, journal=None, inputs=inputs)
        try:
            ctx.secrets = await self._resolve(ctx, spec.secrets)
            observed = await ctx.call_action(
                spec.observe,
                state=None,
                index=0,
                key=f"{info.id}/observe/0",
                count_changes=False,
            )
            scope = {"inputs": ctx.inputs, "run": ctx.run_info().as_scope(), "observed": observed}
            diff: list[FieldDiff] = []
            in_sync: bool | None = None
            if spec.desired is not None:
                desired_scope = {k: v for k, v in scope.items() if k != "observed"}
                try:  # inline unless an expression is too costly for the event loop
                    desired = render(
                        spec.desired,
                        desired_scope,
                        cost_limit=ctx.cost_limit,
                        inline_limit=INLINE_COST,
                    )
                except NeedsWorker:
                    desired = await render_async(
                        spec.desired, desired_scope, cost_limit=ctx.cost_limit
                    )
                diff = diff_subset(desired, observed)
                in_sync = not diff
            elif spec.in_sync is not None:
                in_sync = await evaluate_bool_async(spec.in_sync, scope, cost_limit=ctx.cost_limit)
        except ActionError as err:
            return Observation(None, None, [], ctx.redact_error(err))
        redact = ctx.redactor.redact_obj
        safe_diff = [
            FieldDiff(d.path, redact(d.desired), redact(d.observed), d.missing) for d in diff
        ]
        return Observation(redact(observed), in_sync, safe_diff)

    # -- run ----------------------------------------------------------------------------------

    async def run(
        self,
        workflow: Workflow,
        *,
        reason: str = "",
        revision: str = "",
        observed: dict[str, Any] | None = None,
        resume: RunRecord | None = None,
        parent_id: str | None = None,
        run_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        document: dict[str, Any] | None = None,
        plan: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run ``workflow``'s machine to an end state and return how it ended.

        ``observed`` is the last observation (the ``observed`` CEL variable); ``inputs`` are
        merged over ``spec.inputs`` and the defaults of ``spec.parameters`` (the caller has
        validated them: :func:`~reconciler.config.parameters.accept_inputs`), kept in the run's
        record and its ``run_started`` entry; ``document`` is kept with a new run's record
        (:attr:`RunRecord.document`: ``workflow`` as JSON, which the caller already has), so
        that whoever resumes the run can resume it with the same spec. ``plan`` is what made
        the caller start the run (the daemon's planner message and field diff), kept in the
        ``run_started`` entry (redacted) for whoever is asked to approve the run.

        ``resume`` re-enters ``resume.current_state`` of an interrupted run with its outputs and
        the same run id (and so the same idempotency keys); ``workflow`` should then be the spec
        the run started with. Its timers go on from where they were: the run's deadline counts
        from ``resume.started_at``, and the ``after`` waits and timeout of the state it resumes
        in from when the journal says it entered that state; one that ran out while the run was
        stopped fires at once (a passed run deadline fails the run before anything else runs).

        Failures are reported in :attr:`RunResult.error`, never raised. If the task running this
        is cancelled, the run is journaled as ``cancelled`` and :class:`asyncio.CancelledError`
        propagates.
        """
        return await self._run(
            workflow,
            reason=reason,
            revision=revision,
            observed=observed,
            resume=resume,
            parent_id=parent_id,
            run_id=run_id,
            inputs=inputs,
            document=document,
            plan=plan,
        )

    async def _run(
        self,
        workflow: Workflow,
        *,
        reason: str,
        revision: str,
        observed: dict[str, Any] | None,
        resume: RunRecord | None,
        parent_id: str | None,
        run_id: str | None,
        inputs: Mapping[str, Any] | None,
        document: dict[str, Any] | None = None,
        plan: Mapping[str, Any] | None = None,
        inherited: Iterable[str] = (),
        depth: int = 0,
    ) -> RunResult:
        spec = workflow.spec
        if resume is not None:
            record = _resumed(resume, revision=revision)
            if inputs is None:
                inputs = resume.inputs
        else:
            record = RunRecord(
                id=run_id or uuid4().hex,
                workflow=workflow.name,
                revision=revision,
                parent_id=parent_id,
                reason=reason,
                document=document,
            )
        ctx = self._context(
            workflow,
            record,
            journal=self.journal,
            inputs=inputs,
            observed=observed,
            inherited=inherited,
        )
        if resume is None and inputs:
            record.inputs = ctx.redactor.redact_obj(dict(inputs))
        ctx.run_child = self._child_runner(ctx, depth)
        flow = Flow(task=asyncio.current_task())
        entered_at = await self._open(
            ctx, resume=resume, reason=reason, revision=revision, parent_id=parent_id, plan=plan
        )
        error: ActionError | None = None
        try:
            try:
                error = await self._walk(
                    ctx, workflow, resumed=resume is not None, flow=flow, entered_at=entered_at
                )
            except TimeoutError:
                limit = f" of {format_duration(spec.timeout)}" if spec.timeout else ""
                error = Timeout(f"run deadline{limit} passed")
        except ActionError as err:
            error = ctx.redact_error(err)
        except asyncio.CancelledError:
            if flow.check_failure is None or flow.task is None:
                await self._finish(
                    ctx, RunStatus.CANCELLED, error=Cancelled("the run was cancelled")
                )
                raise
            flow.task.uncancel()
            error = flow.check_failure
        finally:
            if flow.during is not None:
                flow.during.cancel()
                await asyncio.gather(flow.during, return_exceptions=True)
        status = RunStatus.SUCCEEDED if error is None else RunStatus.FAILED
        await self._finish(ctx, status, error=error)
        return RunResult(
            run=record,  # the engine is done with it: no copy
            path=flow.path,
            outputs=ctx.redacted_outputs(),
            changed=ctx.changed,
            error=error,
            end=flow.end,
        )

    async def _open(
        self,
        ctx: RunContext,
        *,
        resume: RunRecord | None,
        reason: str,
        revision: str,
        parent_id: str | None,
        plan: Mapping[str, Any] | None = None,
    ) -> datetime | None:
        """Journal the run's start (``run_started``) or its resumption (``run_resumed``, the run
        carrying on after its last entry, with the outputs it had). For a resumption, returns
        when the run entered the state it resumes in, as its journal says (``None`` if unknown
        or for a new run)."""
        record = ctx.record
        entered: datetime | None = None
        if resume is not None:
            ctx.outputs = dict(record.outputs)
            entries = await self.journal.entries(record.id)
            ctx.seq = max((e.seq for e in entries), default=0)
            ctx.visit = max((e.seq for e in entries if e.kind == EventKind.TRANSITION), default=0)
            entered = entered_at(entries, record.current_state)
            await ctx.write(
                EventKind.RUN_RESUMED,
                state=record.current_state,
                detail={"attempt": record.attempt, "reason": reason},
            )
        else:
            await self.journal.run_started(record)
            detail: dict[str, Any] = {"reason": reason, "revision": revision, "parentId": parent_id}
            if plan:
                detail["plan"] = copy_data(dict(plan))
            if record.inputs:
                detail["inputs"] = record.inputs  # redacted when the record got them
            await ctx.write(EventKind.RUN_STARTED, detail=detail)
        ctx.logger.info("run started", reason=reason, resumed=resume is not None)
        return entered

    async def _walk(
        self,
        ctx: RunContext,
        workflow: Workflow,
        *,
        resumed: bool,
        flow: Flow,
        entered_at: datetime | None,
    ) -> ActionError | None:
        """Everything between the run's start and its finish, under the run's deadline: its
        secrets, pre checks, the machine with the during checks beside it, then post checks.
        Returns the error the machine ended with; raises what the checks or secrets raise, and
        ``TimeoutError`` when the run's deadline passes (at once for a resumed run whose
        deadline passed while it was stopped). The caller stops ``flow.during``.
        ``entered_at`` is when a resumed run entered the state it resumes in."""
        spec = workflow.spec
        record = ctx.record
        run_deadline = _run_deadline(ctx, workflow, resumed=resumed)
        if run_deadline is not None and run_deadline <= ctx.now():
            raise TimeoutError
        async with asyncio.timeout_at(loop_deadline(ctx, run_deadline)):
            ctx.secrets = await self._resolve(ctx, spec.secrets)
            # a resumed run that had entered a state already passed its pre checks
            if spec.checks.pre and not (resumed and record.current_state is not None):
                await run_checks(ctx, spec.checks.pre, phase="pre")
            checks_during = spec.checks.during
            if checks_during is not None and checks_during.checks:
                flow.during = asyncio.create_task(
                    during_checks_loop(ctx, checks_during, on_failure=flow.check_failed)
                )
            start = record.current_state if resumed and record.current_state else spec.start
            flow.states_running = True
            try:
                error = await walk(
                    ctx,
                    workflow,
                    journal=self.journal,
                    start=start,
                    flow=flow,
                    run_deadline=run_deadline,
                    entered_at=entered_at,
                )
            finally:
                flow.states_running = False
            if flow.during is not None:
                flow.during.cancel()
            if error is None and spec.checks.post:
                await run_checks(ctx, spec.checks.post, phase="post")
            return error

    async def _finish(
        self, ctx: RunContext, status: RunStatus, *, error: ActionError | None
    ) -> None:
        record = ctx.record
        record.status = status
        record.finished_at = utcnow()
        record.error = ctx.redactor.redact(str(error)) if error is not None else None
        record.outputs = ctx.redacted_outputs()
        await ctx.write(
            EventKind.RUN_FINISHED,
            state=record.current_state,
            outcome=status.value,
            detail={"status": status.value, "error": record.error, "changed": ctx.changed},
        )
        try:
            await self.journal.run_finished(record)
        except RunLeftUnfinished:
            # the journal kept it running (a shutdown): it did not finish, it resumes later
            ctx.logger.debug("run left unfinished to resume", state=record.current_state)
            return
        ctx.logger.info("run finished", status=status.value, error=record.error)

    def _child_runner(self, parent: RunContext, depth: int) -> ChildRunner:
        """What ``workflow.run`` calls to start a child of ``parent``'s run.

        It holds ``parent`` weakly: ``parent`` holds it, and a cycle would keep every run's
        context (and through it the journal and the engine) alive until the collector's next
        full pass instead of freeing it when the run returns.
        """
        parent_ref = weakref.ref(parent)

        async def run_child(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
            workflow = self.workflows.get(name)
            if workflow is None:
                raise NotFound(f"no workflow named {name!r} to run as a child")
            if depth >= MAX_CHILD_DEPTH:
                raise ChildRunFailed(
                    f"workflow.run nested deeper than {MAX_CHILD_DEPTH} levels at {name!r}"
                )
            parent = parent_ref()
            if parent is None:  # only a plugin that kept the runner past its call gets here
                raise ChildRunFailed(f"cannot start {name!r}: its parent run is over")
            result = await self._run(
                workflow,
                reason=f"child of run {parent.record.id}",
                revision=parent.record.revision,
                observed=None,
                resume=None,
                parent_id=parent.record.id,
                run_id=None,
                inputs=inputs,
                inherited=parent.secrets.values(),
                depth=depth + 1,
            )
            if result.error is not None:
                raise ChildRunFailed(
                    f"child run {result.run.id} of workflow {name!r} failed: {result.run.error}",
                    details={"runId": result.run.id, "workflow": name},
                )
            return {"runId": result.run.id, "outputs": result.outputs, "changed": result.changed}

        return run_child


def _run_deadline(ctx: RunContext, workflow: Workflow, *, resumed: bool) -> float | None:
    """The run's deadline on the engine's clock: ``spec.timeout`` from now for a new run, from
    the run's (wall-clock, journaled) ``started_at`` for a resumed one."""
    timeout = workflow.spec.timeout
    if not timeout:
        return None
    now = ctx.now()
    if resumed:
        now = on_clock(ctx.record.started_at, clock_now=now, wall_now=utcnow())
    return now + timeout.total_seconds()


def _resumed(resume: RunRecord, *, revision: str) -> RunRecord:
    """The record of ``resume``'s next attempt: running again, at ``revision`` if one is given,
    with a copy of its outputs (the record passed in is left as it was)."""
    return dataclasses.replace(
        resume,
        status=RunStatus.RUNNING,
        attempt=resume.attempt + 1,
        finished_at=None,
        error=None,
        revision=revision or resume.revision,
        outputs=copy_data(resume.outputs),
    )
