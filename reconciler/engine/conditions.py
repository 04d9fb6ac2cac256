"""How a state is left: ``on`` outcomes, ``when`` choices, and the race of waiting conditions.

Called by the runner (``engine/runner.py``) once a state's actions are done. Order of decision
(what ``docs/workflows.md`` promises): an error goes to the first transition whose ``on`` matches it; success goes to the
first ``on: success``, else the first true ``when``, else the race of every ``after``, ``poll``,
``subscribe`` and ``approval`` condition (first to fire wins, the others are cancelled), else the
default branch.
Poll and subscribe plugin calls go through :class:`reconciler.engine.actions.RunContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.config.cost import shape_of
from reconciler.config.expressions import evaluate_bool, evaluate_bool_async
from reconciler.config.models import Poll, Subscribe, Transition
from reconciler.engine.actions import RunContext
from reconciler.engine.approvals import wait_for_approval
from reconciler.errors import ActionError, PluginError

RACE_KINDS = frozenset({"after", "poll", "subscribe", "approval"})


def match_error(transitions: Sequence[Transition], error: ActionError) -> Transition | None:
    """The first transition whose ``on`` names the error, an ancestor of it, or ``error``."""
    for t in transitions:
        if t.on is not None and any(n != "success" and error.matches(n) for n in t.on):
            return t
    return None


def match_success(transitions: Sequence[Transition]) -> Transition | None:
    """The first ``on: success`` transition."""
    for t in transitions:
        if t.on is not None and "success" in t.on:
            return t
    return None


def choose_when(
    transitions: Sequence[Transition], scope: Mapping[str, Any], *, cost_limit: int
) -> Transition | None:
    """The first ``when`` choice whose CEL is true (raises EvaluationError on a bad one)."""
    for t in transitions:
        if t.when is not None and evaluate_bool(t.when, scope, cost_limit=cost_limit):
            return t
    return None


async def choose_when_async(
    transitions: Sequence[Transition], scope: Mapping[str, Any], *, cost_limit: int
) -> Transition | None:
    """:func:`choose_when`, evaluating expensive choices off the event loop."""
    for t in transitions:
        if t.when is not None and await evaluate_bool_async(t.when, scope, cost_limit=cost_limit):
            return t
    return None


def default_branch(transitions: Sequence[Transition]) -> Transition | None:
    for t in transitions:
        if t.kind == "default":
            return t
    return None


def racers(transitions: Sequence[Transition]) -> list[Transition]:
    return [t for t in transitions if t.kind in RACE_KINDS]


@dataclass(slots=True)  # not frozen: cheaper to build, and nothing changes it
class Exits:
    """A state's transitions sorted once by how they fire (the runner caches one per state).

    ``success`` is :func:`match_success`, ``choices`` the ``when`` transitions in order,
    ``racers`` what :func:`racers` returns and ``default`` :func:`default_branch`. ``heavy``
    is true when a ``when`` has comprehensions: it may have to be evaluated off the event loop.
    """

    success: Transition | None
    choices: tuple[Transition, ...]
    racers: tuple[Transition, ...]
    default: Transition | None
    heavy: bool = False

    @classmethod
    def of(cls, transitions: Sequence[Transition]) -> Exits:
        # one pass; a transition has at most one condition (models.Transition checks it)
        success: Transition | None = None
        default: Transition | None = None
        choices: list[Transition] = []
        racing: list[Transition] = []
        for t in transitions:
            if t.on is not None:
                if success is None and "success" in t.on:
                    success = t
            elif t.when is not None:
                choices.append(t)
            elif (
                t.after is not None
                or t.poll is not None
                or t.subscribe is not None
                or t.approval is not None
            ):
                racing.append(t)
            elif default is None:
                default = t
        heavy = bool(choices) and any(t.when and shape_of(t.when) is not None for t in choices)
        return cls(success, tuple(choices), tuple(racing), default, heavy)


async def _wait_after(ctx: RunContext, fire_at: float) -> None:
    await asyncio.sleep(max(0.0, fire_at - ctx.now()))


async def _poll(
    ctx: RunContext, poll: Poll, *, state: str, index: int, deadline: float | None
) -> None:
    """Call the check plugin every ``poll.every`` until ``until`` holds over ``result``.

    A retryable error (the target is not reachable yet) means "not yet"; a non-retryable one ends
    the wait with that error, routed by the state's ``on`` transitions.
    """
    key = f"{ctx.record.id}/{state}/poll/{index}"
    every = poll.every.total_seconds()
    while True:
        try:
            result = await ctx.call_once(
                poll.plugin, poll.with_, key=key, deadline=deadline, state=state
            )
        except ActionError as err:
            if not err.retryable:
                raise
            ctx.logger.info("poll not ready", state=state, plugin=poll.plugin, error=str(err))
        else:
            scope = ctx.scope(extra={"result": result})
            if await evaluate_bool_async(poll.until, scope, cost_limit=ctx.cost_limit):
                return
        await asyncio.sleep(every)


async def _subscribe(ctx: RunContext, sub: Subscribe, *, state: str, index: int) -> None:
    """Read messages until one satisfies ``match``; the iterator is always closed."""
    key = f"{ctx.record.id}/{state}/subscribe/{index}"
    stream = await ctx.subscribe(sub.plugin, sub.with_, key=key, state=state)
    try:
        async for message in stream:
            if sub.match is None or await evaluate_bool_async(
                sub.match, ctx.scope(extra={"message": dict(message)}), cost_limit=ctx.cost_limit
            ):
                return
        # the stream ended without a match: this condition never fires
        await asyncio.Event().wait()
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def race(
    ctx: RunContext,
    transitions: Sequence[Transition],
    *,
    state: str,
    entered_at: float,
    deadline: float | None = None,
) -> Transition:
    """Run every ``after``/``poll``/``subscribe``/``approval`` condition at once; return the
    first to fire.

    The losers are cancelled and awaited before this returns (a poll or subscribe plugin sees
    :class:`asyncio.CancelledError`). An :class:`ActionError` raised by a condition (a
    non-retryable poll failure, a failing subscription, a bad CEL, a rejection) ends the race with
    that error.
    ``after`` counts from ``entered_at``, the moment the state was entered.
    """
    tasks: dict[asyncio.Task[None], Transition] = {}
    for index, t in enumerate(transitions):
        if t.after is not None:
            coro = _wait_after(ctx, entered_at + t.after.total_seconds())
        elif t.poll is not None:
            coro = _poll(ctx, t.poll, state=state, index=index, deadline=deadline)
        elif t.subscribe is not None:
            coro = _subscribe(ctx, t.subscribe, state=state, index=index)
        elif t.approval is not None:
            coro = wait_for_approval(ctx, t.approval, state=state)
        else:
            continue
        tasks[asyncio.create_task(coro, name=f"{state}:{t.kind}:{index}")] = t
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # several may finish in the same loop iteration: the earlier transition wins
        winner = next(task for task in tasks if task in done)
        try:
            winner.result()  # re-raises the condition's error, if any
        except ActionError as err:
            raise ctx.redact_error(err) from None
        except Exception as exc:  # a subscribe plugin's bug must not crash the run loop
            raise PluginError(
                ctx.redactor.redact(f"{tasks[winner].kind} condition failed: {exc!r}")
            ) from None
        return tasks[winner]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
