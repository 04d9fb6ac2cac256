"""Health checks around a run: ``pre`` gates it, ``during`` aborts it, ``post`` fails it.

Called by the runner (``engine/runner.py``) before the start state (pre), in a background task
while states run (during) and after the end state (post). Each check is a check-plugin call made
through :meth:`reconciler.engine.actions.RunContext.call_action` and journaled as a ``check``
entry; any failure becomes a :class:`CheckFailed` naming the phase, the check and its plugin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Literal

from reconciler.config.models import Action, DuringChecks
from reconciler.engine.actions import RunContext
from reconciler.engine.journal import EventKind
from reconciler.errors import ActionError, CheckFailed

Phase = Literal["pre", "during", "post"]


async def run_checks(ctx: RunContext, checks: Sequence[Action], *, phase: Phase) -> None:
    """Run every check of ``phase`` in order; raise :class:`CheckFailed` on the first failure.

    A failing ``pre`` check's message starts with "blocked by pre check", which is what the
    journal and ``status`` show for a run that never entered a state.
    """
    for index, check in enumerate(checks):
        try:
            await ctx.call_action(
                check,
                state=None,
                index=index,
                key=f"{ctx.record.id}/checks/{phase}/{index}",
                kind=EventKind.CHECK,
                detail={"phase": phase},
                count_changes=False,
            )
        except ActionError as err:
            lead = "blocked by pre check" if phase == "pre" else f"{phase} check failed:"
            raise CheckFailed(
                f"{lead} #{index} ({check.plugin}): {err}",
                details={"phase": phase, "index": index, "plugin": check.plugin, "error": err.name},
            ) from None


async def during_checks_loop(
    ctx: RunContext, during: DuringChecks, *, on_failure: Callable[[CheckFailed], None]
) -> None:
    """Every ``during.every``, run the during checks; on failure call ``on_failure`` and stop.

    Runs until cancelled (the runner cancels it once the states are done).
    """
    interval = during.every.total_seconds()
    while True:
        await asyncio.sleep(interval)
        try:
            await run_checks(ctx, during.checks, phase="during")
        except CheckFailed as err:
            on_failure(err)
            return
