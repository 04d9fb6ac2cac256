"""Checking one workflow: the planner's questions in the order the daemon asks them.

:func:`check_workflow` is the whole decision before a run — :func:`~reconciler.daemon.planner.
plan_static` (suspended? dependencies converged?), then the ``observe`` probe when the workflow
has one, then :func:`~reconciler.daemon.planner.plan_observed` (in sync, or run and why).
After a run, :func:`~reconciler.daemon.planner.plan_finished` decides the outcome. The daemon
and the one-shot commands both go through here, so ``reconciler plan`` shows what the daemon
would decide from the same statuses and the same observation.

Called by: :mod:`reconciler.daemon.reconcile` (each workflow the queue hands out) and
:mod:`reconciler.cli.converge` (``reconciler plan``/``apply``). Calls: the planner, and the
``observe`` callable it is given (the engine's probe); it does no other I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TypeVar

from reconciler.config.snapshot import LoadedWorkflow
from reconciler.daemon.planner import Decision, Next, Observation, plan_observed, plan_static
from reconciler.daemon.windows import WindowVerdict
from reconciler.status import WorkflowStatusRecord

ObservationT = TypeVar("ObservationT", bound=Observation)


async def check_workflow(
    lw: LoadedWorkflow,
    status: WorkflowStatusRecord | None,
    *,
    revision: str,
    statuses: Mapping[str, WorkflowStatusRecord],
    observe: Callable[[], Awaitable[ObservationT]],
    manual: bool = False,
    now: Callable[[], datetime],
    window: Callable[[datetime], WindowVerdict | None] = lambda _now: None,
) -> tuple[Decision, ObservationT | None]:
    """The decision for ``lw`` before any run, and the observation it was made with.

    ``status`` is the workflow's stored status (``None``: never seen), ``statuses`` those of
    its dependencies. ``observe`` is awaited only when the statuses leave the decision open
    and the workflow has a probe. The decision's ``next`` is ``DONE`` (store its status) or
    ``RUN`` (store it, run, then :func:`~reconciler.daemon.planner.plan_finished`).
    ``window`` gives the verdict of the workflow's change windows at an instant (default:
    none apply); a run it blocks does not start.
    """
    workflow = lw.workflow
    decision = plan_static(workflow, status, revision=revision, statuses=statuses, now=now())
    if decision.next is Next.DONE:
        return decision, None
    observation = await observe() if workflow.spec.observe is not None else None
    at = now()
    decision = plan_observed(
        workflow,
        status,
        revision=revision,
        digest=lw.digest,
        observation=observation,
        manual=manual,
        now=at,
        window=window(at),
    )
    return decision, observation
