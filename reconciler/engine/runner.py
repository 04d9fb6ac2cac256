"""The engine: observe a workflow, and run its state machine from start to an end state.

Sits at **runner** in the flow sources → snapshot → planner → queue → **runner** → store: the
planner calls :meth:`Engine.observe` to decide whether a workflow drifted, the queue calls
:meth:`Engine.run` for the workflows that need a run, and everything the run does is written to a
:class:`~reconciler.engine.journal.Journal` (the store implements it). Plugin calls go through
``engine/actions.py``; ``foreach.py``, ``conditions.py``, ``checks.py``, ``retry.py`` and
``drift.py`` hold one concept each. Secrets come from a
:class:`~reconciler.secrets.resolver.SecretResolver` and are masked by a per-run
:class:`~reconciler.secrets.redaction.Redactor` before anything leaves the engine.

A run: ``run_started`` → resolve secrets → pre checks → start state → ... → end state → post
checks → ``run_finished``. Each ``transition`` entry is journaled before the next state starts,
so :meth:`Engine.run` with ``resume=`` can re-enter the state an interrupted run was in.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from uuid import uuid4

import structlog

from reconciler.clock import earliest, utcnow
from reconciler.config.expressions import (
    DEFAULT_COST_LIMIT,
    INLINE_COST,
    NeedsWorker,
    evaluate_bool_async,
    render,
    render_async,
)
from reconciler.config.models import State, Transition, Workflow
from reconciler.engine.actions import RunContext
from reconciler.engine.checks import during_checks_loop, run_checks
from reconciler.engine.conditions import (
    Exits,
    choose_when,
    choose_when_async,
    match_error,
    race,
)
from reconciler.engine.drift import FieldDiff, diff_subset
from reconciler.engine.foreach import run_foreach
from reconciler.engine.journal import (
    EventKind,
    Journal,
    RunRecord,
    RunStatus,
    trusted_entry,
)
from reconciler.errors import (
    ActionError,
    Cancelled,
    CheckFailed,
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

_STATE_ENTERED = EventKind.STATE_ENTERED  # enum members as globals: faster in the state loop
_TRANSITION = EventKind.TRANSITION

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


class _Decision(NamedTuple):
    """How a state is left: the transition to take (``None`` when none fired, with ``error``
    saying why), the error the state ended with, if any, and the kind of condition that chose
    the transition (``on``, ``when``, ``default``, a racer's kind, or ``none``)."""

    transition: Transition | None
    error: ActionError | None
    condition: str


@dataclass(slots=True)  # not frozen: cheaper to build, and nothing changes it
class _Plan:
    """What the runner needs to know of one state, worked out on its first visit.

    ``waits`` is true when leaving the state may take time (actions, a ``foreach``, racing
    conditions); otherwise the transition is decided at once, without yielding to the loop.
    ``settled`` is that decision when nothing about the run can change it (no actions, no
    ``when``, nothing racing: the ``on: success`` or default transition).
    """

    state: State
    exits: Exits
    waits: bool
    settled: _Decision | None

    @classmethod
    def of(cls, state: State) -> _Plan:
        exits = Exits.of(state.transitions)
        waits = bool(state.do) or state.foreach is not None or bool(exits.racers) or exits.heavy
        settled: _Decision | None = None
        if not waits and not exits.choices:
            if exits.success is not None:
                settled = _Decision(exits.success, None, "on")
            elif exits.default is not None:
                settled = _Decision(exits.default, None, "default")
        return cls(state, exits, waits, settled)


@dataclass
class _Flow:
    """Mutable bookkeeping of one run's machine, shared with its exception handlers."""

    path: list[str] = field(default_factory=list)
    end: str | None = None
    states_running: bool = False
    check_failure: CheckFailed | None = None


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
    name): an expression estimated over it fails with ``ExpressionBudgetExceeded``.
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
            inputs={**workflow.spec.inputs, **dict(inputs or {})},
            observed=observed,
            workdir=self.workdir,
            grants=self.grants,
            clock=self.clock,
            rng=self.rng,
            sleep=self.retry_sleep,
            ready=self._ensure_ready,
            cost_limit=self.expression_cost_limit,
        )

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
    ) -> RunResult:
        """Run ``workflow``'s machine to an end state and return how it ended.

        ``observed`` is the last observation (the ``observed`` CEL variable); ``inputs`` are
        merged over ``spec.inputs``; ``resume`` re-enters ``resume.current_state`` of an
        interrupted run with its outputs and the same run id (and so the same idempotency keys).
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
        inherited: Iterable[str] = (),
        depth: int = 0,
    ) -> RunResult:
        spec = workflow.spec
        if resume is not None:
            record = resume.model_copy(deep=True)
            record.status = RunStatus.RUNNING
            record.attempt += 1
            record.finished_at = None
            record.error = None
            record.revision = revision or record.revision
        else:
            record = RunRecord(
                id=run_id or uuid4().hex,
                workflow=workflow.name,
                revision=revision,
                parent_id=parent_id,
                reason=reason,
            )
        ctx = self._context(
            workflow,
            record,
            journal=self.journal,
            inputs=inputs,
            observed=observed,
            inherited=inherited,
        )
        ctx.run_child = self._child_runner(ctx, depth)
        flow = _Flow()
        task = asyncio.current_task()

        if resume is not None:
            ctx.outputs = dict(record.outputs)
            ctx.seq = max((e.seq for e in await self.journal.entries(record.id)), default=0)
            await ctx.write(
                EventKind.RUN_RESUMED,
                state=record.current_state,
                detail={"attempt": record.attempt, "reason": reason},
            )
        else:
            await self.journal.run_started(record)
            await ctx.write(
                EventKind.RUN_STARTED,
                detail={"reason": reason, "revision": revision, "parentId": parent_id},
            )
        ctx.logger.info("run started", reason=reason, resumed=resume is not None)

        def on_check_failure(err: CheckFailed) -> None:
            if flow.states_running and flow.check_failure is None and task is not None:
                flow.check_failure = err
                task.cancel()

        run_deadline = ctx.now() + spec.timeout.total_seconds() if spec.timeout else None
        error: ActionError | None = None
        during: asyncio.Task[None] | None = None
        try:
            try:
                async with asyncio.timeout_at(_loop_deadline(ctx, run_deadline)):
                    ctx.secrets = await self._resolve(ctx, spec.secrets)
                    # a resumed run that had entered a state already passed its pre checks
                    if spec.checks.pre and (resume is None or resume.current_state is None):
                        await run_checks(ctx, spec.checks.pre, phase="pre")
                    checks_during = spec.checks.during
                    if checks_during is not None and checks_during.checks:
                        during = asyncio.create_task(
                            during_checks_loop(ctx, checks_during, on_failure=on_check_failure)
                        )
                    start = (
                        record.current_state
                        if resume is not None and record.current_state
                        else spec.start
                    )
                    flow.states_running = True
                    try:
                        error = await self._machine(
                            ctx, workflow, start=start, flow=flow, run_deadline=run_deadline
                        )
                    finally:
                        flow.states_running = False
                    if during is not None:
                        during.cancel()
                    if error is None and spec.checks.post:
                        await run_checks(ctx, spec.checks.post, phase="post")
            except TimeoutError:
                limit = f" of {format_duration(spec.timeout)}" if spec.timeout else ""
                error = Timeout(f"run deadline{limit} passed")
        except ActionError as err:
            error = ctx.redact_error(err)
        except asyncio.CancelledError:
            if flow.check_failure is not None and task is not None:
                task.uncancel()
                error = flow.check_failure
            else:
                await self._finish(
                    ctx, RunStatus.CANCELLED, error=Cancelled("the run was cancelled")
                )
                raise
        finally:
            if during is not None:
                during.cancel()
                await asyncio.gather(during, return_exceptions=True)
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

    async def _machine(
        self,
        ctx: RunContext,
        workflow: Workflow,
        *,
        start: str,
        flow: _Flow,
        run_deadline: float | None,
    ) -> ActionError | None:
        """Walk states from ``start``; the error of a failed run, or ``None`` on success."""
        states = workflow.spec.states
        plans = _plans_of(workflow)
        record = ctx.record
        record_fields, record_set = record.__dict__, record.__pydantic_fields_set__
        run_id = record.id
        journal = self.journal
        logger = ctx.logger
        narrate = logger.is_enabled_for(logging.INFO)  # once per run: the loop is hot
        name = start
        last_error: ActionError | None = None
        while True:
            plan = plans.get(name)
            if plan is None:
                found = states.get(name)
                if found is None:
                    return ActionError(f"unknown state {name!r}")
                plan = plans[name] = _Plan.of(found)
            state = plan.state
            flow.path.append(name)
            # `record.current_state = name` minus pydantic's __setattr__ dispatch
            record_fields["current_state"] = name
            record_set.add("current_state")
            ctx.seq += 1
            await journal.record(
                trusted_entry(
                    run_id,
                    ctx.seq,
                    kind=_STATE_ENTERED,
                    state=name,
                    to_state=None,
                    outcome=None,
                    detail={},
                )
            )
            if narrate:
                logger.info("state entered", state=name)
            if state.end is not None:
                flow.end = state.end
                if state.end == "success":
                    return None
                cause = f" after {last_error}" if last_error is not None else ""
                return ActionError(f"reached failure end state {name!r}{cause}")
            decided: _Decision
            if plan.settled is not None:
                decided = plan.settled
            elif plan.waits:
                decided = await self._run_state(
                    ctx, name, state=state, exits=plan.exits, run_deadline=run_deadline
                )
            else:  # nothing to call or wait for: decided without yielding (so no timeout)
                decided = _decide_now(ctx, name, state, plan.exits)
            transition, error, condition = decided
            if transition is None:
                assert error is not None
                return error
            # every part is redacted already: the condition kind is a keyword of the format
            detail: dict[str, Any] = {"condition": condition, "outputs": ctx.outputs_snapshot()}
            if error is not None:
                detail["error"] = ctx.error_detail(error)
            ctx.seq += 1
            await journal.record(
                trusted_entry(
                    run_id,
                    ctx.seq,
                    kind=_TRANSITION,
                    state=name,
                    to_state=transition.to,
                    outcome="success" if error is None else error.name,
                    detail=detail,
                )
            )
            if narrate:
                logger.info("transition", state=name, to=transition.to, condition=condition)
            last_error = error
            name = transition.to

    async def _run_state(
        self,
        ctx: RunContext,
        name: str,
        *,
        state: State,
        exits: Exits,
        run_deadline: float | None,
    ) -> _Decision:
        """Run one state under its own (fresh) timeout; the transition to take and why."""
        entered = ctx.now()
        if not state.timeout:  # no timer of its own to arm (nor for a zero timeout, as before)
            return await self._decide(
                ctx, name, state=state, exits=exits, entered=entered, deadline=run_deadline
            )
        state_deadline = entered + state.timeout.total_seconds()
        deadline = earliest(state_deadline, run_deadline)
        try:
            async with asyncio.timeout_at(_loop_deadline(ctx, state_deadline)):
                return await self._decide(
                    ctx, name, state=state, exits=exits, entered=entered, deadline=deadline
                )
        except TimeoutError:
            err = Timeout(f"state {name!r} timed out after {format_duration(state.timeout)}")
            return _Decision(match_error(state.transitions, err), err, "on")

    async def _decide(
        self,
        ctx: RunContext,
        name: str,
        *,
        state: State,
        exits: Exits,
        entered: float,
        deadline: float | None,
    ) -> _Decision:
        try:
            if state.foreach is not None:
                await run_foreach(
                    ctx, state.foreach, state=name, retry=state.retry, deadline=deadline
                )
            for index, action in enumerate(state.do):
                data = await ctx.call_action(
                    action,
                    state=name,
                    index=index,
                    key=f"{ctx.record.id}/{name}/{index}",
                    retry=state.retry,
                    deadline=deadline,
                )
                if action.as_:
                    ctx.outputs[action.as_] = data
            if exits.heavy:
                decided = await _choose_async(ctx, name, exits)
            else:
                decided = _choose(ctx, name, exits)
            if decided is not None:
                return decided
            chosen = await race(
                ctx, exits.racers, state=name, entered_at=entered, deadline=deadline
            )
            return _Decision(chosen, None, chosen.kind)
        except ActionError as err:
            err = ctx.redact_error(err)
            return _Decision(match_error(state.transitions, err), err, "on")

    def _child_runner(self, parent: RunContext, depth: int) -> ChildRunner:
        async def run_child(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
            workflow = self.workflows.get(name)
            if workflow is None:
                raise NotFound(f"no workflow named {name!r} to run as a child")
            if depth >= MAX_CHILD_DEPTH:
                raise ChildRunFailed(
                    f"workflow.run nested deeper than {MAX_CHILD_DEPTH} levels at {name!r}"
                )
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


_PLANS: dict[int, tuple[weakref.ref[Workflow], dict[str, _Plan]]] = {}
"""Per workflow (by ``id()``), the plans of the states visited so far; an entry goes when its
workflow is garbage-collected."""


def _plans_of(workflow: Workflow) -> dict[str, _Plan]:
    """The plan table of ``workflow``, filled as its states are first visited.

    Workflows are immutable once loaded, so every run of every engine in the process shares it.
    """
    key = id(workflow)
    known = _PLANS.get(key)
    if known is not None and known[0]() is workflow:
        return known[1]

    def forget(ref: weakref.ref[Workflow]) -> None:
        entry = _PLANS.get(key)
        if entry is not None and entry[0] is ref:
            del _PLANS[key]

    plans: dict[str, _Plan] = {}
    _PLANS[key] = (weakref.ref(workflow, forget), plans)
    return plans


def _choose(ctx: RunContext, name: str, exits: Exits) -> _Decision | None:
    """Decide once the actions succeeded: ``on: success``, then the first true ``when``, then
    (when nothing races) the default branch. ``None`` means the racing conditions decide."""
    if exits.success is not None:
        return _Decision(exits.success, None, "on")
    if exits.choices:
        chosen = choose_when(exits.choices, ctx.scope(), cost_limit=ctx.cost_limit)
        if chosen is not None:
            return _Decision(chosen, None, "when")
    return _after_choices(name, exits)


async def _choose_async(ctx: RunContext, name: str, exits: Exits) -> _Decision | None:
    """:func:`_choose` for ``when`` choices that may be evaluated off the event loop."""
    if exits.success is not None:
        return _Decision(exits.success, None, "on")
    chosen = await choose_when_async(exits.choices, ctx.scope(), cost_limit=ctx.cost_limit)
    if chosen is not None:
        return _Decision(chosen, None, "when")
    return _after_choices(name, exits)


def _after_choices(name: str, exits: Exits) -> _Decision | None:
    if exits.racers:
        return None
    if exits.default is not None:
        return _Decision(exits.default, None, "default")
    return _Decision(None, ActionError(f"no transition fired in state {name!r}"), "none")


def _decide_now(ctx: RunContext, name: str, state: State, exits: Exits) -> _Decision:
    """:meth:`Engine._decide` for a state with no actions and nothing racing."""
    try:
        decided = _choose(ctx, name, exits)
    except ActionError as err:
        err = ctx.redact_error(err)
        return _Decision(match_error(state.transitions, err), err, "on")
    assert decided is not None, "a state without racers is always decided"
    return decided


def _loop_deadline(ctx: RunContext, deadline: float | None) -> float | None:
    """Translate a deadline on the engine's clock to event-loop time (they differ in tests)."""
    if deadline is None or ctx.clock is None:
        return deadline
    return asyncio.get_running_loop().time() + (deadline - ctx.now())
