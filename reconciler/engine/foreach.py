"""``foreach`` states: run the same actions once per item, a bounded number at a time.

Called by the runner (``engine/runner.py``) in place of a state's ``do`` list; every plugin call
goes through :meth:`reconciler.engine.actions.RunContext.call_action`, so retries, journaling and
redaction are the same as for plain actions. The result — one ``{item, ok, output | error}`` per
item, in item order — is kept as ``outputs.<state name>`` even when too many items failed, so one
failure never hides the other successes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.config.expressions import evaluate_async
from reconciler.config.models import ForEach
from reconciler.engine.actions import RunContext
from reconciler.errors import ActionError, EvaluationError, TooManyFailures
from reconciler.types import RetryPolicy


async def foreach_items(ctx: RunContext, foreach: ForEach) -> list[Any]:
    """The items: the literal list, or the list a CEL expression yields."""
    if isinstance(foreach.items, list):
        return list(foreach.items)
    value = await evaluate_async(foreach.items, ctx.scope(), cost_limit=ctx.cost_limit)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise EvaluationError(
            f"foreach items {foreach.items!r} must yield a list, got {type(value).__name__}"
        )
    return value


async def run_foreach(
    ctx: RunContext,
    foreach: ForEach,
    *,
    state: str,
    retry: RetryPolicy | None = None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Run ``foreach.do`` for every item, at most ``concurrency`` items at once.

    Each item's actions run in order; its ``output`` is the last action's response (an action's
    ``as`` is visible to the later actions of the same item as ``outputs.<as>``). Raises
    :class:`TooManyFailures` when more items failed than ``tolerate`` allows, after storing the
    complete result list in ``ctx.outputs[state]``.
    """
    items = await foreach_items(ctx, foreach)
    semaphore = asyncio.Semaphore(foreach.concurrency)
    results: list[dict[str, Any]] = [{} for _ in items]

    async def one(i: int, item: Any) -> None:
        async with semaphore:
            local: dict[str, Any] = {}
            output: Any = None
            try:
                for j, action in enumerate(foreach.do):
                    outputs = {**ctx.outputs, **local} if local else ctx.outputs
                    extra = {foreach.as_: item, "outputs": outputs}
                    output = await ctx.call_action(
                        action,
                        state=state,
                        index=j,
                        key=f"{ctx.record.id}/{state}/{i}/{j}",
                        retry=retry,
                        deadline=deadline,
                        extra=extra,
                        detail={"item": i},
                    )
                    if action.as_:
                        local[action.as_] = output
            except ActionError as err:
                results[i] = {"item": item, "ok": False, "error": ctx.error_detail(err)}
            else:
                results[i] = {"item": item, "ok": True, "output": output}

    await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    ctx.outputs[state] = results
    failed = sum(1 for r in results if not r["ok"])
    allowed = foreach.tolerated(len(items))
    if failed > allowed:
        raise TooManyFailures(
            f"{failed} of {len(items)} items failed in state {state!r} (tolerated {allowed})",
            details={"failed": failed, "total": len(items), "tolerated": allowed},
        )
    return results
