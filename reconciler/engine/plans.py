"""How the runner leaves a state: each state's transitions worked out once, and the decision.

The runner (``engine/runner.py``) enters a state, runs what it does, then asks this module which
transition to take. What does not depend on the run (the state's transitions sorted by how they
fire, whether leaving it may take time, and for a state with nothing to do or choose, the
decision itself) is a :class:`Plan`, made on the state's first visit and kept as long as its
workflow object lives (:func:`plans_of`), so re-running a loaded workflow (drift checks, manual
syncs, retries) sorts nothing again.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.config.models import State, Transition, Workflow
from reconciler.engine.actions import RunContext
from reconciler.engine.conditions import Exits, choose_when, choose_when_async, match_error
from reconciler.errors import ActionError


class Decision(NamedTuple):
    """How a state is left: the transition to take (``None`` when none fired, with ``error``
    saying why), the error the state ended with, if any, and the kind of condition that chose
    the transition (``on``, ``when``, ``default``, a racer's kind, or ``none``)."""

    transition: Transition | None
    error: ActionError | None
    condition: str


@dataclass(slots=True)  # not frozen: cheaper to build, and nothing changes it
class Plan:
    """What the runner needs to know of one state, worked out on its first visit.

    ``waits`` is true when leaving the state may take time (actions, a ``foreach``, racing
    conditions); otherwise the transition is decided at once, without yielding to the loop.
    ``settled`` is that decision when nothing about the run can change it (no actions, no
    ``when``, nothing racing: the ``on: success`` or default transition).
    """

    state: State
    exits: Exits
    waits: bool
    settled: Decision | None

    @classmethod
    def of(cls, state: State) -> Plan:
        exits = Exits.of(state.transitions)
        waits = bool(state.do) or state.foreach is not None or bool(exits.racers) or exits.heavy
        settled: Decision | None = None
        if not waits and not exits.choices:
            if exits.success is not None:
                settled = Decision(exits.success, None, "on")
            elif exits.default is not None:
                settled = Decision(exits.default, None, "default")
        return cls(state, exits, waits, settled)


# Workflow models are frozen pydantic models whose hash is over their fields (dicts among them,
# so they are not hashable): a WeakKeyDictionary cannot hold them, and the engine receives the
# bare model, so there is no longer-lived object of ours to keep the table on. The table is keyed
# by identity instead, each entry checked against a weak reference to its workflow and dropped
# when the workflow is garbage-collected. It is per process rather than per engine because
# callers (the one-shot commands, the benchmark) build an engine per run of a loaded workflow.
_PLANS: dict[int, tuple[weakref.ref[Workflow], dict[str, Plan]]] = {}


def plans_of(workflow: Workflow) -> dict[str, Plan]:
    """The plan table of ``workflow``, filled by the caller as its states are first visited.

    Workflows are immutable once loaded, so every run of every engine in the process shares it;
    it goes when ``workflow`` is garbage-collected.
    """
    key = id(workflow)
    known = _PLANS.get(key)
    if known is not None and known[0]() is workflow:
        return known[1]

    def forget(ref: weakref.ref[Workflow]) -> None:
        entry = _PLANS.get(key)
        if entry is not None and entry[0] is ref:
            del _PLANS[key]

    plans: dict[str, Plan] = {}
    _PLANS[key] = (weakref.ref(workflow, forget), plans)
    return plans


def choose(ctx: RunContext, name: str, exits: Exits) -> Decision | None:
    """Decide once the actions succeeded: ``on: success``, then the first true ``when``, then
    (when nothing races) the default branch. ``None`` means the racing conditions decide."""
    if exits.success is not None:
        return Decision(exits.success, None, "on")
    if exits.choices:
        chosen = choose_when(exits.choices, ctx.scope(), cost_limit=ctx.cost_limit)
        if chosen is not None:
            return Decision(chosen, None, "when")
    return _after_choices(name, exits)


async def choose_async(ctx: RunContext, name: str, exits: Exits) -> Decision | None:
    """:func:`choose` for ``when`` choices that may be evaluated off the event loop."""
    if exits.success is not None:
        return Decision(exits.success, None, "on")
    chosen = await choose_when_async(exits.choices, ctx.scope(), cost_limit=ctx.cost_limit)
    if chosen is not None:
        return Decision(chosen, None, "when")
    return _after_choices(name, exits)


def _after_choices(name: str, exits: Exits) -> Decision | None:
    if exits.racers:
        return None
    if exits.default is not None:
        return Decision(exits.default, None, "default")
    return Decision(None, ActionError(f"no transition fired in state {name!r}"), "none")


def failed(ctx: RunContext, state: State, err: ActionError) -> Decision:
    """How ``state`` is left after it failed with ``err``: the matching ``on:`` transition, if
    any, with the error redacted (the decision is journaled)."""
    err = ctx.redact_error(err)
    return Decision(match_error(state.transitions, err), err, "on")


def decide_now(ctx: RunContext, name: str, state: State, exits: Exits) -> Decision:
    """The decision for a state with no actions and nothing racing, made without yielding."""
    try:
        decided = choose(ctx, name, exits)
    except ActionError as err:
        return failed(ctx, state, err)
    assert decided is not None, "a state without racers is always decided"
    return decided
