"""The state loop: enter a state, run what it does, journal the transition, go on.

Called by the engine (``engine/runner.py``) between a run's start and its finish, once its
secrets are resolved and its pre checks passed. How each state is left is worked out in
``engine/plans.py``; this module runs the states, under their timeouts, and journals every
``state_entered`` and ``transition`` entry, each transition before the next state is entered
(what lets an interrupted run resume where it was). The loop is the engine's hot path: a
state with nothing to do is decided without yielding to the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.clock import earliest, on_clock, utcnow
from reconciler.config.models import State, Workflow
from reconciler.engine.actions import RunContext
from reconciler.engine.conditions import Exits, match_error, race
from reconciler.engine.foreach import run_foreach
from reconciler.engine.journal import SINCE, EventKind, Journal, JournalEntry
from reconciler.engine.plans import (
    Decision,
    Plan,
    choose,
    choose_async,
    decide_now,
    failed,
    plans_of,
)
from reconciler.errors import ActionError, CheckFailed, Timeout
from reconciler.types import format_duration


@dataclass
class Flow:
    """Mutable bookkeeping of one run's machine, shared with its exception handlers.

    ``task`` is the task running the machine: a failed during check (run by ``during``) cancels
    it while states are running, and the run then ends with that check's failure
    (``check_failure``).
    """

    task: asyncio.Task[Any] | None
    during: asyncio.Task[None] | None = None
    path: list[str] = field(default_factory=list)
    end: str | None = None
    states_running: bool = False
    check_failure: CheckFailed | None = None

    def check_failed(self, err: CheckFailed) -> None:
        """A during check failed: stop the states (the first failure is the one reported)."""
        if self.states_running and self.check_failure is None and self.task is not None:
            self.check_failure = err
            self.task.cancel()


async def walk(
    ctx: RunContext,
    workflow: Workflow,
    *,
    journal: Journal,
    start: str,
    flow: Flow,
    run_deadline: float | None,
    entered_at: datetime | None = None,
) -> ActionError | None:
    """Walk states from ``start`` to an end state; the error of a failed run, or ``None``.

    Each state entered and each transition taken is journaled to ``journal`` (the transition
    before the next state is entered) and recorded in ``flow``; ``ctx.record.current_state``
    follows. An error of a state's actions decides its transition rather than being raised;
    what cancels the run (its deadline, a failed during check) propagates.

    ``entered_at`` is given when a resumed run re-enters ``start``, the state it was in: the
    wall-clock instant it first entered it. That state's ``after`` waits and timeout count from
    then (what is left of them, or nothing: a timer that ran out while the run was stopped
    fires at once), and its ``state_entered`` entry carries the instant on (``since``) for a
    later resumption.
    """
    states = workflow.spec.states
    plans = plans_of(workflow)
    record = ctx.record
    run_id = record.id
    entered_kind, transition_kind = EventKind.STATE_ENTERED, EventKind.TRANSITION
    logger = ctx.logger
    narrate = logger.is_enabled_for(logging.INFO)  # once per run: the loop is hot
    name = start
    last_error: ActionError | None = None
    resumed_since = entered_at
    while True:
        plan = plans.get(name)
        if plan is None:
            found = states.get(name)
            if found is None:
                return ActionError(f"unknown state {name!r}")
            plan = plans[name] = Plan.of(found)
        state = plan.state
        flow.path.append(name)
        record.current_state = name
        ctx.seq += 1
        since, resumed_since = resumed_since, None
        await journal.record(
            JournalEntry(
                run_id=run_id,
                seq=ctx.seq,
                kind=entered_kind,
                state=name,
                to_state=None,
                outcome=None,
                detail={} if since is None else {SINCE: since.isoformat()},
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
        decided: Decision
        if plan.settled is not None:
            decided = plan.settled
        elif plan.waits:
            entered = (
                ctx.now()
                if since is None
                else on_clock(since, clock_now=ctx.now(), wall_now=utcnow())
            )
            decided = await _run_state(
                ctx, name, state=state, exits=plan.exits, entered=entered, run_deadline=run_deadline
            )
        else:  # nothing to call or wait for: decided without yielding (so no timeout)
            decided = decide_now(ctx, name, state, plan.exits)
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
            JournalEntry(
                run_id=run_id,
                seq=ctx.seq,
                kind=transition_kind,
                state=name,
                to_state=transition.to,
                outcome="success" if error is None else error.name,
                detail=detail,
            )
        )
        ctx.visit = ctx.seq
        if narrate:
            logger.info("transition", state=name, to=transition.to, condition=condition)
        last_error = error
        name = transition.to


async def _run_state(
    ctx: RunContext,
    name: str,
    *,
    state: State,
    exits: Exits,
    entered: float,
    run_deadline: float | None,
) -> Decision:
    """Run one state under its own timeout, counted from ``entered`` (on the engine's clock: now,
    or earlier for a resumed run); the transition to take and why. A timeout already over
    routes at once, without running the state's actions again."""
    if not state.timeout:  # no timer of its own to arm (nor for a zero timeout, as before)
        return await _decide(
            ctx, name, state=state, exits=exits, entered=entered, deadline=run_deadline
        )
    state_deadline = entered + state.timeout.total_seconds()
    deadline = earliest(state_deadline, run_deadline)
    if state_deadline <= ctx.now():
        return _timed_out(name, state)
    try:
        async with asyncio.timeout_at(loop_deadline(ctx, state_deadline)):
            return await _decide(
                ctx, name, state=state, exits=exits, entered=entered, deadline=deadline
            )
    except TimeoutError:
        return _timed_out(name, state)


def _timed_out(name: str, state: State) -> Decision:
    """How ``state`` is left once its timeout has passed: like any ``Timeout`` error."""
    limit = format_duration(state.timeout) if state.timeout else "0s"
    err = Timeout(f"state {name!r} timed out after {limit}")
    return Decision(match_error(state.transitions, err), err, "on")


async def _decide(
    ctx: RunContext,
    name: str,
    *,
    state: State,
    exits: Exits,
    entered: float,
    deadline: float | None,
) -> Decision:
    """Run the state's ``foreach`` and actions, then choose its transition."""
    try:
        if state.foreach is not None:
            await run_foreach(ctx, state.foreach, state=name, retry=state.retry, deadline=deadline)
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
            decided = await choose_async(ctx, name, exits)
        else:
            decided = choose(ctx, name, exits)
        if decided is not None:
            return decided
        chosen = await race(ctx, exits.racers, state=name, entered_at=entered, deadline=deadline)
        return Decision(chosen, None, chosen.kind)
    except ActionError as err:
        return failed(ctx, state, err)


def loop_deadline(ctx: RunContext, deadline: float | None) -> float | None:
    """Translate a deadline on the engine's clock to event-loop time (they differ in tests)."""
    if deadline is None or ctx.clock is None:
        return deadline
    return asyncio.get_running_loop().time() + (deadline - ctx.now())
