"""The work queue: which workflows wait to be reconciled, modelled on controller-runtime's workqueue.

Every trigger (new revision, drift check, back-off expiry, manual sync, a dependency converging)
calls :meth:`WorkQueue.add` with a workflow name; the controller's workers call
:meth:`WorkQueue.get`, reconcile the workflow, and call :meth:`WorkQueue.done`. What callers may
rely on:

- one key per workflow: adding a key already waiting merges the reasons (so a manual sync is
  never lost behind a drift check) and does not queue it twice;
- at most one item per key in flight: a key added while it is processing is marked *dirty* and
  handed out again after :meth:`done` — so a new revision arriving during a run never cancels it,
  the workflow is simply re-evaluated when the run ends;
- at most ``max_concurrent`` keys in flight overall;
- ``dependsOn`` order: a key is held back while one of its dependencies (from the
  ``dependencies`` callable) is waiting or in flight, so dependencies are reconciled first;
- back-off: :meth:`fail` re-adds a key after ``10s · 2^(failures-1)`` capped at 10 minutes;
  :meth:`forget` (a success, a new revision) resets the count;
- :meth:`hurry` moves keys ahead of everything waiting (what a new revision changed, so its run
  does not wait behind re-checks of every unchanged workflow still queued from earlier).

Time comes from an injectable ``clock`` (seconds, monotonic), so tests drive back-off and delays
without sleeping; :meth:`try_get` is the pure, non-blocking core and :meth:`get` only adds waiting.

Neighbours: fed by :mod:`reconciler.daemon.controller` and :mod:`reconciler.daemon.scheduler`;
drained by the controller's workers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Clock = Callable[[], float]

BACKOFF_BASE = 10.0
BACKOFF_MAX = 600.0


class Reason:
    """Names of the triggers that put a key in the queue (kept as plain strings)."""

    REVISION = "revision"
    DRIFT_CHECK = "drift-check"
    BACKOFF = "backoff"
    MANUAL = "manual"
    DEPENDENCY = "dependency"
    RESUME = "resume"
    DELETE = "delete"
    WINDOW = "window"
    """A change window that blocked a due run opens: check the workflow again."""


@dataclass(frozen=True)
class WorkItem:
    """One key handed to a worker, with every reason it was queued for since it last ran."""

    key: str
    reasons: frozenset[str]

    @property
    def manual(self) -> bool:
        return Reason.MANUAL in self.reasons


@dataclass(order=True)
class _Delayed:
    due: float
    seq: int
    key: str = field(compare=False)
    reason: str = field(compare=False)


def backoff_delay(failures: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure: 10s, 20s, 40s … 10m."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(failures - 1, 62))


class WorkQueue:
    """A deduplicating, rate-limited, dependency-ordered queue of workflow names."""

    def __init__(
        self,
        *,
        max_concurrent: int = 4,
        clock: Clock = time.monotonic,
        dependencies: Callable[[str], Iterable[str]] | None = None,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._dependencies = dependencies or (lambda _key: ())
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._order: dict[str, None] = {}
        """Keys waiting to be handed out, in arrival order (a dict keeps order, dedupes)."""
        self._reasons: dict[str, set[str]] = {}
        """Reasons of keys that are waiting or dirty."""
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._urgent: set[str] = set()
        """Dirty keys :meth:`hurry` asked for: back at the front when their run is done."""
        self._delayed: list[_Delayed] = []
        self._seq = itertools.count()
        self._failures: dict[str, int] = {}
        self._closed = False
        self._changed = asyncio.Event()

    # -- feeding ---------------------------------------------------------------------------

    def add(self, key: str, reason: str = Reason.REVISION) -> None:
        """Queue ``key`` now (deduplicated); while it is processing, mark it to run again after."""
        if self._closed:
            return
        self._reasons.setdefault(key, set()).add(reason)
        if key in self._processing:
            self._dirty.add(key)
        else:
            self._order.setdefault(key, None)
        self._wake()

    def add_after(self, key: str, delay: float, *, reason: str = Reason.BACKOFF) -> None:
        """Queue ``key`` once ``delay`` seconds have passed on the clock."""
        if self._closed:
            return
        if delay <= 0:
            self.add(key, reason)
            return
        heapq.heappush(self._delayed, _Delayed(self._clock() + delay, next(self._seq), key, reason))
        self._wake()

    def hurry(self, keys: Iterable[str]) -> None:
        """Hand ``keys`` out before every other waiting key, in the order given.

        Only keys already added count: a waiting one moves to the front, one in flight with
        another run due after it (dirty) goes to the front when :meth:`done`. Dependency order
        still holds (a hurried key waits for its dependencies). Costs one copy of the waiting
        order, whatever the number of keys.
        """
        front: dict[str, None] = {}
        for key in keys:
            if key in self._order:
                front[key] = None
            elif key in self._dirty:
                self._urgent.add(key)
        if front:
            self._order = {**front, **self._order}  # the merge keeps the first position
            self._wake()

    def fail(self, key: str) -> float:
        """Record a failure of ``key`` and queue it again after its back-off; returns the delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = backoff_delay(failures, base=self._backoff_base, cap=self._backoff_max)
        self.add_after(key, delay, reason=Reason.BACKOFF)
        return delay

    def failures(self, key: str) -> int:
        """Consecutive failures of ``key`` since it last succeeded or saw a new revision."""
        return self._failures.get(key, 0)

    def forget(self, *keys: str) -> None:
        """Reset the back-off of ``keys`` and drop their pending back-off retries (a success, a
        new revision). Many keys at once cost one pass over the delayed entries."""
        for key in keys:
            self._failures.pop(key, None)
        if not self._delayed:
            return
        gone = set(keys)
        before = len(self._delayed)
        self._delayed = [
            d for d in self._delayed if not (d.key in gone and d.reason == Reason.BACKOFF)
        ]
        if len(self._delayed) != before:
            heapq.heapify(self._delayed)

    def remove(self, key: str) -> None:
        """Drop every trace of ``key`` except a run in flight (a retired workflow)."""
        self._order.pop(key, None)
        self._reasons.pop(key, None)
        self._dirty.discard(key)
        self._urgent.discard(key)
        self._failures.pop(key, None)
        self._delayed = [d for d in self._delayed if d.key != key]
        heapq.heapify(self._delayed)

    # -- draining --------------------------------------------------------------------------

    def try_get(self) -> WorkItem | None:
        """The next key that may start now, or ``None``. Marks it processing."""
        self._promote_due()
        if self._closed or len(self._processing) >= self.max_concurrent:
            return None
        for key in self._order:
            if key in self._processing or self._blocked(key):
                continue
            del self._order[key]
            reasons = frozenset(self._reasons.pop(key, set()))
            self._processing.add(key)
            return WorkItem(key, reasons)
        return None

    async def get(self) -> WorkItem | None:
        """Wait for the next key that may start; ``None`` once the queue is shut down."""
        while True:
            item = self.try_get()
            if item is not None:
                return item
            if self._closed:
                return None
            self._changed.clear()
            timeout = self.next_due()
            try:
                if timeout is None:
                    await self._changed.wait()
                else:
                    await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))
            except TimeoutError:
                pass

    def done(self, key: str) -> None:
        """``key``'s reconcile finished: free its slot; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            if key in self._urgent:
                self._urgent.discard(key)
                if not self._closed:
                    self._order = {key: None, **self._order}
            elif not self._closed:
                self._order.setdefault(key, None)
        self._wake()

    def shutdown(self) -> None:
        """Stop handing out work; waiting :meth:`get` calls return ``None``."""
        self._closed = True
        self._wake()

    # -- introspection ---------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys waiting to be handed out now (the ``queue_depth`` metric)."""
        self._promote_due()
        return len(self._order)

    @property
    def processing(self) -> frozenset[str]:
        return frozenset(self._processing)

    def pending(self, key: str) -> bool:
        """Whether ``key`` is waiting, in flight, dirty or due later."""
        return (
            key in self._order
            or key in self._processing
            or key in self._dirty
            or any(d.key == key for d in self._delayed)
        )

    def due_later(self, key: str) -> int:
        """How many delayed entries ``key`` has (back-off, window openings, take-overs)."""
        return sum(d.key == key for d in self._delayed)

    def next_due(self) -> float | None:
        """Seconds until the earliest delayed key is due, if any."""
        if not self._delayed:
            return None
        return self._delayed[0].due - self._clock()

    def wake(self) -> None:
        """Re-evaluate waiting keys (call when something :attr:`dependencies` reads changed)."""
        self._wake()

    # -- internals -------------------------------------------------------------------------

    def _blocked(self, key: str) -> bool:
        for dep in self._dependencies(key):
            if dep == key:
                continue
            if dep in self._processing:
                return True
            # A dependency cycle (reported by the validator) must not stall both keys forever.
            if dep in self._order and key not in self._closure(dep):
                return True
        return False

    def _closure(self, key: str) -> set[str]:
        seen: set[str] = set()
        stack = [key]
        while stack:
            for dep in self._dependencies(stack.pop()):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return seen

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0].due <= now:
            item = heapq.heappop(self._delayed)
            self.add(item.key, item.reason)

    def _wake(self) -> None:
        self._changed.set()
