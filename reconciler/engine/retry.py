"""Retry policy: which policy applies to an action, and how long to wait between tries.

Called by: the action caller (``engine/actions.py``). Calls: nothing. The delay computation is pure: the random source is a
parameter, so tests pass a seeded :class:`random.Random`.
"""

from __future__ import annotations

import random
from typing import Any

from reconciler.plugin import Plugin
from reconciler.types import RetryPolicy

SINGLE_ATTEMPT = RetryPolicy(attempts=1)


def effective_policy(
    state_policy: RetryPolicy | None, plugin_cls: type[Plugin[Any, Any]] | None
) -> RetryPolicy:
    """The state's policy, else the plugin class's default, else a single attempt."""
    if state_policy is not None:
        return state_policy
    if plugin_cls is not None and plugin_cls.retry is not None:
        return plugin_cls.retry
    return SINGLE_ATTEMPT


def base_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed try ``attempt`` (1-based), before jitter.

    ``delay * backoff ** (attempt - 1)``, capped at ``maxDelay``.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    delay = policy.delay.total_seconds()
    cap = policy.max_delay.total_seconds()
    try:
        wait = delay * policy.backoff ** (attempt - 1)
    except OverflowError:
        wait = cap
    return min(wait, cap)


def retry_delay(policy: RetryPolicy, attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed try ``attempt``, jitter applied.

    ``full``: uniform(0, w); ``equal``: w/2 + uniform(0, w/2); ``none``: w.
    """
    wait = base_delay(policy, attempt)
    source = rng if rng is not None else random
    if policy.jitter == "full":
        return source.uniform(0.0, wait)
    if policy.jitter == "equal":
        return wait / 2 + source.uniform(0.0, wait / 2)
    return wait
