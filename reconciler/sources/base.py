"""What every source of workflow files produces, and the loop that keeps it current.

A *source* turns a git repository (remote or local) or a plain directory into a stream of
:class:`Revision` objects holding the raw bytes of every ``*.yaml``/``*.yml`` file under the
configured sub-path. It knows nothing of workflows; the loader (``reconciler/config``) parses the
bytes into a snapshot, and the daemon's controller (``reconciler/daemon``) wires ``run`` to
:mod:`reconciler.daemon.revision`.

:class:`BaseSource` holds what the concrete sources (``git.py``, ``directory.py``) share: the
fetch bookkeeping read by ``/readyz`` and ``/metrics`` (``last_error``, ``last_success_at``,
``fetch_count_ok``/``fetch_count_failed``), the trigger loop (first fetch, then local watch via
``watch.py``, apscheduler polling with ±10 % jitter, ``refresh()`` from webhooks) and the
exponential retry after a failed fetch, capped at the poll interval, which keeps the last good
revision in use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.errors import FetchFailed, SignatureRefused
from reconciler.sources.watch import watch_paths
from reconciler.urls import mask_urls_in_text, url_userinfo

log = structlog.get_logger(__name__)

YAML_SUFFIXES: tuple[str, ...] = (".yaml", ".yml")
"""File names a source reports; everything else under the sub-path is ignored."""

RETRY_BASE_SECONDS = 1.0
"""First retry delay after a failed fetch; doubles per failure, capped at the poll interval."""

JITTER_FRACTION = 0.1
"""Poll ticks land within ±10 % of the poll interval so replicas do not fetch in lock-step."""


def is_workflow_file(path: str) -> bool:
    """Whether ``path`` names a file a source reports (``*.yaml`` or ``*.yml``)."""
    return path.endswith(YAML_SUFFIXES)


@dataclass(frozen=True)
class Revision:
    """The workflow files at one point in the repository's history.

    ``files`` maps every ``*.yaml``/``*.yml`` path under the sub-path (posix, relative to the
    sub-path) to its bytes. ``refused`` maps the paths the source would not read (a symlink
    leaving the source, a FIFO or device, a file over the size limit) to the reason, never
    their content; a path is in one of the two, not both. ``changed`` holds the added or
    modified paths of either since ``previous`` (every path when ``previous`` is None) and
    ``removed`` the paths gone from both; a git commit that did not touch the sub-path is still
    a new revision, with both sets empty. Unchanged files share their ``bytes`` objects with the
    previous revision.
    """

    id: str
    files: Mapping[str, bytes]
    changed: frozenset[str]
    removed: frozenset[str]
    previous: str | None
    message: str = ""
    author: str = ""
    committed_at: datetime | None = None
    refused: Mapping[str, str] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        """The id shortened for logs and UIs (12 hex digits of a commit, or of a content hash)."""
        if self.id.startswith("dir-"):
            return self.id[:16]
        return self.id[:12]


OnRevision = Callable[[Revision], Awaitable[None]]


@runtime_checkable
class Source(Protocol):
    """Where workflow files come from. Created by :func:`reconciler.sources.open_source`."""

    description: str
    last_error: str | None
    last_success_at: datetime | None
    fetch_count_ok: int
    fetch_count_failed: int
    signature_refused: bool
    """Whether the latest fetch failed because its head commit's signature was refused."""

    @property
    def current(self) -> Revision | None:
        """The last good revision, or None before the first successful fetch."""
        ...

    async def fetch(self) -> Revision | None:
        """Fetch now. Returns the new revision, None if it did not change; raises FetchFailed."""
        ...

    async def run(self, on_revision: OnRevision, *, stop: asyncio.Event) -> None:
        """Fetch once, then watch and/or poll, awaiting ``on_revision`` for each new revision
        until ``stop`` is set. A failed fetch is logged, kept in ``last_error`` and retried."""
        ...

    def refresh(self) -> None:
        """Ask the running loop for an immediate fetch (webhooks call this). Cheap, coalesced,
        and safe to call from any thread."""
        ...

    def private_paths(self) -> tuple[Path, ...]:
        """Directories of the source's own machinery (a clone, a ``.git`` directory) that no
        workflow may read or write, whatever the file roots say."""
        ...


def url_secrets(url: str) -> list[str]:
    """The credential strings inside ``url`` (raw and percent-decoded), longest first."""
    userinfo = url_userinfo(url)
    if not userinfo:
        return []
    found: set[str] = {userinfo, unquote(userinfo)}
    for piece in userinfo.split(":"):
        if len(piece) >= 4:
            found.update({piece, unquote(piece)})
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every URL's credentials (:func:`mask_url`) and each of ``secrets`` masked."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return mask_urls_in_text(text)


@dataclass
class _Triggers:
    """Wake-up plumbing for one ``run``: a single flag, so concurrent requests coalesce."""

    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class BaseSource:
    """Shared bookkeeping and loop; subclasses implement :meth:`_fetch` (and say what to watch).

    ``fetch`` calls are serialised by a lock, so overlapping callers never run two git
    processes on the same repository; the second simply sees no change and gets None.
    """

    description: str
    last_error: str | None
    last_success_at: datetime | None
    fetch_count_ok: int
    fetch_count_failed: int

    def __init__(self, description: str, *, poll_interval: float, poll: bool) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.description = description
        self.poll_interval = poll_interval
        self.polls = poll
        self.last_error = None
        self.last_success_at = None
        self.fetch_count_ok = 0
        self.fetch_count_failed = 0
        self.signature_refused = False
        self._current: Revision | None = None
        self._lock = asyncio.Lock()
        self._triggers: _Triggers | None = None

    @property
    def current(self) -> Revision | None:
        return self._current

    def private_paths(self) -> tuple[Path, ...]:
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"

    # -- to implement -------------------------------------------------------------------------

    async def _fetch(self, previous: Revision | None) -> Revision | None:
        """Produce the revision following ``previous`` (None when unchanged); raise FetchFailed."""
        raise NotImplementedError

    def _watch_targets(self) -> tuple[list[Path], Callable[[Path], bool]] | None:
        """Paths to watch for local changes and a filter for relevant ones, or None."""
        return None

    # -- the public contract ------------------------------------------------------------------

    async def fetch(self) -> Revision | None:
        async with self._lock:
            try:
                revision = await self._fetch(self._current)
            except FetchFailed as exc:
                self.fetch_count_failed += 1
                self.last_error = str(exc)
                self.signature_refused = isinstance(exc, SignatureRefused)
                raise
            self.fetch_count_ok += 1
            self.signature_refused = False
            self.last_error = None
            self.last_success_at = datetime.now(UTC)
            if revision is not None:
                self._current = revision
            return revision

    def refresh(self) -> None:
        triggers = self._triggers
        if triggers is None:  # not running: the next run fetches first anyway
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is triggers.loop:
            triggers.wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop already closed: nothing to wake
                triggers.loop.call_soon_threadsafe(triggers.wake.set)

    async def run(self, on_revision: OnRevision, *, stop: asyncio.Event) -> None:
        triggers = _Triggers(loop=asyncio.get_running_loop())
        self._triggers = triggers
        watch_stop = asyncio.Event()
        watcher = self._start_watcher(triggers, watch_stop)
        scheduler = self._start_scheduler(triggers)
        failures = 0
        try:
            if self._current is not None:
                # Fetched before the loop started (e.g. to check readiness): the consumer has
                # not seen it yet, and the loop's first fetch would report "no change".
                await self._deliver(on_revision, self._current)
            while not stop.is_set():
                triggers.wake.clear()
                delay: float | None = None
                try:
                    revision = await self._fetch_unless_stopped(stop)
                except FetchFailed as exc:
                    failures += 1
                    delay = min(self.poll_interval, RETRY_BASE_SECONDS * 2 ** (failures - 1))
                    log.warning(
                        "source.fetch_failed",
                        source=self.description,
                        error=str(exc),
                        failures=failures,
                        retry_in=delay,
                    )
                else:
                    failures = 0
                    if revision is not None:
                        await self._deliver(on_revision, revision)
                if stop.is_set():
                    break
                await _wait_any(stop, triggers.wake, delay=delay)
        finally:
            self._triggers = None
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            watch_stop.set()
            if watcher is not None:
                await watcher

    # -- the loop's parts ---------------------------------------------------------------------

    async def _fetch_unless_stopped(self, stop: asyncio.Event) -> Revision | None:
        """Fetch, but stop waiting for it when ``stop`` is set (the thread finishes alone)."""
        task = asyncio.create_task(self.fetch())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, FetchFailed):
                await task
            return None
        return task.result()

    async def _deliver(self, on_revision: OnRevision, revision: Revision) -> None:
        log.info(
            "source.revision",
            source=self.description,
            revision=revision.id,  # in full, as on every other line about the revision
            previous=revision.previous[:12] if revision.previous else None,
            changed=len(revision.changed),
            removed=len(revision.removed),
            files=len(revision.files),
            refused=len(revision.refused),
            message=revision.message,
        )
        try:
            await on_revision(revision)
        except Exception:
            # The consumer's failure must not stop the source: later revisions still flow.
            log.exception("source.on_revision_failed", source=self.description)

    def _start_watcher(
        self, triggers: _Triggers, watch_stop: asyncio.Event
    ) -> asyncio.Task[None] | None:
        targets = self._watch_targets()
        if targets is None:
            return None
        paths, accept = targets
        return asyncio.create_task(
            watch_paths(paths, on_change=triggers.wake.set, stop=watch_stop, accept=accept),
            name=f"watch {self.description}",
        )

    def _start_scheduler(self, triggers: _Triggers) -> AsyncIOScheduler | None:
        if not self.polls:
            return None
        interval = self.poll_interval
        spread = interval * JITTER_FRACTION

        async def tick() -> None:
            triggers.wake.set()

        scheduler = AsyncIOScheduler(event_loop=triggers.loop, timezone=UTC)
        # apscheduler's jitter only adds [0, jitter]: start the grid `spread` early and allow
        # 2 * spread, so each tick lands within ±spread of its nominal time.
        scheduler.add_job(
            tick,
            IntervalTrigger(
                seconds=interval,
                jitter=2 * spread,
                start_date=datetime.now(UTC) - timedelta(seconds=spread),
                timezone=UTC,
            ),
            id="poll",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(interval)),
        )
        scheduler.start()
        return scheduler


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, *, delay: float | None) -> None:
    """Return when ``stop`` or ``wake`` is set, or after ``delay`` seconds."""
    waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())}
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
