"""Local change notification for sources, on top of ``watchfiles``.

Used by :class:`reconciler.sources.base.BaseSource` while its loop runs: a local git repository
watches its ``.git`` refs (so a new commit is seen within a second) and a plain directory watches
its files. The watcher only *signals*; the source then fetches and decides whether anything
really changed, so spurious or coalesced events are harmless.

``watchfiles`` runs its notifier in a worker thread (the library demands it); stopping is done by
setting ``stop``, which the thread checks every ``step`` milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
from watchfiles import Change, awatch

log = structlog.get_logger(__name__)

DEBOUNCE_MS = 200
"""Events within this window are delivered together (a commit writes several files)."""

RESTART_DELAY_SECONDS = 1.0
"""Pause before watching again when the watched path vanished or the watcher failed."""


async def watch_paths(
    paths: Sequence[Path],
    *,
    on_change: Callable[[], None],
    stop: asyncio.Event,
    accept: Callable[[Path], bool] | None = None,
) -> None:
    """Call ``on_change()`` whenever a file under ``paths`` that ``accept`` admits changes.

    Returns when ``stop`` is set. If a path is missing or the watcher fails, waits
    :data:`RESTART_DELAY_SECONDS` and watches again (the caller's polling covers the gap), so
    this never raises for filesystem trouble.
    """

    def admit(_change: Change, path: str) -> bool:
        return accept is None or accept(Path(path))

    while not stop.is_set():
        existing = [p for p in paths if p.exists()]
        if existing:
            try:
                async for _changes in awatch(
                    *existing,
                    watch_filter=admit,
                    debounce=DEBOUNCE_MS,
                    step=50,
                    stop_event=stop,
                    recursive=True,
                ):
                    on_change()
            except (OSError, RuntimeError) as exc:
                log.warning("source.watch_failed", paths=[str(p) for p in existing], error=str(exc))
            else:
                if stop.is_set():
                    return
            # The watch ended without being asked to (e.g. the directory was replaced):
            # a change may have been missed, so ask for a fetch before watching again.
            on_change()
        try:
            await asyncio.wait_for(stop.wait(), timeout=RESTART_DELAY_SECONDS)
        except TimeoutError:
            continue
