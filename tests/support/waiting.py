"""Waiting for a signal in tests: poll a condition until it holds, never sleep a fixed time.

Tests that wait for another process, thread or task (a daemon to converge, a child to exit, a
file to appear) call :func:`until` (plain code) or :func:`until_async` (inside a coroutine) with a
predicate and a generous ``within`` (seconds). That is a safety limit that fails the test with
``what`` in the message, never a speed assertion; callers may rely on getting the predicate's first
truthy value back, so a predicate can both test and fetch (``lambda: store_status(...)``).
Called by tests under ``tests/`` and by the other helpers in ``tests/support/``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

INTERVAL = 0.02
"""Seconds between two checks: short enough not to slow a test, long enough not to spin."""


def until(
    predicate: Callable[[], T | None], within: float, what: str, *, interval: float = INTERVAL
) -> T:
    """The first truthy value of ``predicate()``; fails the test after ``within`` seconds.

    ``what`` names the awaited condition in the failure message, next to the last value seen.
    Exceptions from ``predicate`` propagate (catch the expected ones inside it).
    """
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {within}s, still waiting for {what} (last: {value!r})")
        time.sleep(interval)


@overload
async def until_async(
    predicate: Callable[[], Awaitable[T | None]], within: float, what: str, *, interval: float = ...
) -> T: ...
@overload
async def until_async(
    predicate: Callable[[], T | None], within: float, what: str, *, interval: float = ...
) -> T: ...
async def until_async(
    predicate: Callable[[], Any], within: float, what: str, *, interval: float = INTERVAL
) -> Any:
    """Like :func:`until` inside a coroutine; ``predicate`` may be a plain or an async function.

    Between checks the event loop runs other tasks, so the awaited task can make progress.
    """
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {within}s, still waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval)
