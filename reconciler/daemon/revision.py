"""Applying a revision: load what changed, select the new target, queue what it affects.

The source awaits :meth:`RevisionApplier.apply` for each new commit (or directory change).
Only ``revision.changed`` files are parsed again; every other file's
:class:`~reconciler.config.snapshot.FileResult` is reused, and the static checks are cached by
workflow digest, so a one-file commit to 10,000 workflows costs about one file.
:func:`~reconciler.daemon.target.select_target` then decides what is valid, invalid and removed;
a file that no longer parses marks the workflows it held ``Invalid`` (never a removal).

Then every workflow is queued: what the revision changed (valid, or newly invalid) first, ahead
of anything still waiting, and the event loop is let go so a worker can take it before the rest
is queued (in slices, the loop let go between them); removed ones to run their ``onDelete``
state and be retired. Runs waiting to resume whose workflow left git are abandoned. Nothing is
decided here about any one workflow's status: that is :mod:`reconciler.daemon.reconcile`'s,
when the queue hands the workflow out.

Called by: the controller (the source's callback). Calls: the loader, the target selection, the
status book (at the first revision, to find statuses of workflows gone while the daemon was
stopped), the queue, the drift scheduler, the run supervisor, leases and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import structlog

from reconciler.config.files import refused_result
from reconciler.config.loader import bulk_loading, load_text, restore_text
from reconciler.config.snapshot import FileResult, Snapshot, compact
from reconciler.config.validate import ValidationCache
from reconciler.daemon.queue import Reason, WorkQueue
from reconciler.daemon.replicas import WorkflowLeases
from reconciler.daemon.runs import RunSupervisor
from reconciler.daemon.scheduler import DriftScheduler
from reconciler.daemon.snapshot_cache import Documents, SnapshotCache, blob_id
from reconciler.daemon.state import DaemonState
from reconciler.daemon.statuses import StatusBook
from reconciler.daemon.target import Target, select_target
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry
from reconciler.sources import Revision
from reconciler.telemetry.instrument import DaemonMetrics

log = structlog.get_logger("reconciler.daemon")

BULK_LOAD_FILES = 500
"""A revision changing at least this many files is loaded with the garbage collector kept out
(:func:`~reconciler.config.loader.bulk_loading`)."""

REQUEUE_SLICE = 2_000
"""Unchanged workflows queued for their re-check between two turns of the event loop (a few
milliseconds of queueing)."""


def load_snapshot(
    revision: Revision,
    previous: Snapshot | None,
    *,
    cached: Mapping[str, Documents] | None = None,
) -> Snapshot:
    """The snapshot of ``revision``, re-loading only the files it changed since ``previous``.

    ``cached`` (:meth:`SnapshotCache.load`, by blob id) rebuilds the files it holds without
    parsing them."""
    before: Mapping[str, FileResult] = previous.files if previous is not None else {}
    # Unchanged files keep their result: start from the previous ones (a copy, not a walk of
    # every path), drop those gone, and load the paths changed or not loaded before.
    files: dict[str, FileResult] = dict(before)
    for path in before.keys() - revision.files.keys():
        del files[path]
    loading = (revision.files.keys() - before.keys()) | (revision.changed & revision.files.keys())
    many = len(loading) >= BULK_LOAD_FILES  # the first revision, a big commit
    with bulk_loading() if many else contextlib.nullcontext():
        for path in sorted(loading):
            content = revision.files[path]
            hit = cached.get(blob_id(content)) if cached else None
            if hit is not None:
                files[path] = restore_text(content, path=path, documents=hit)
            else:
                files[path] = load_text(content, path=path)
            compact(files[path])  # kept for as long as the file does not change
    for path, reason in revision.refused.items():  # never read: a problem for that file
        files[path] = refused_result(path, reason)
    return Snapshot.from_files(revision.id, files, previous=previous)


class RevisionApplier:
    """Turns each revision the source delivers into a new target and queued work."""

    def __init__(
        self,
        state: DaemonState,
        registry: PluginRegistry,
        *,
        grants: Grants,
        workdir: Path,
        queue: WorkQueue,
        statuses: StatusBook,
        scheduler: DriftScheduler,
        runs: RunSupervisor,
        leases: WorkflowLeases,
        metrics: DaemonMetrics,
        now: Callable[[], datetime],
        on_loaded: Callable[[Snapshot], None] = lambda snapshot: None,
        cache: SnapshotCache | None = None,
    ) -> None:
        self.state = state
        self.on_loaded = on_loaded
        """Called with each revision's snapshot before any of its work is queued (the
        notifier takes its providers and alerts)."""
        self.registry = registry
        self.grants = grants
        self.workdir = workdir
        self.queue = queue
        self.statuses = statuses
        self.scheduler = scheduler
        self.runs = runs
        self.leases = leases
        self.metrics = metrics
        self._now = now
        self._validation = ValidationCache()
        self.cache = cache
        """Where the loaded files are kept for the next start (see :mod:`snapshot_cache`)."""

    async def apply(self, revision: Revision) -> None:
        """Load ``revision``, make it the current target and queue what it affects."""
        previous = self.state.target
        first = previous.snapshot is None
        cached = None
        if first and self.cache is not None:
            with bulk_loading():  # thousands of models that live on
                cached = self.cache.load()
        snapshot = load_snapshot(revision, previous.snapshot, cached=cached)
        if self.cache is not None and (first or len(revision.changed) >= BULK_LOAD_FILES):
            # kept after the loads that cost: the start, a big commit (a small one is cheap to
            # parse again at the next start)
            kept = self.cache.save(snapshot.files, revision.files)
            log.debug("snapshot cache written", files=len(revision.files), kept=kept)
        target = select_target(
            snapshot,
            self.registry,
            previous=previous,
            grants=self.grants,
            workdir=self.workdir,
            cache=self._validation,
        )
        if previous.snapshot is None:  # the first revision since start: compare with the store
            known = {st.name for st in await self.statuses.load()}
            target.orphans = known - set(target.valid) - set(target.invalid)
        self._warn_unreadable(target, revision)
        self.state.target = target
        self.on_loaded(snapshot)
        self.leases.revision_loaded(revision.id, at=self._now())
        workflows = {n: lw.workflow for n, lw in target.valid.items()}
        self.runs.engine.workflows = workflows
        self.scheduler.sync(workflows)  # before any check stores a next check time
        fresh = self._queue_fresh(target, previous)
        await asyncio.sleep(0)  # a waiting worker takes the first of them now
        self.metrics.snapshot_loaded(revision.id, target.problems)
        changed = len(revision.changed) + len(revision.removed)
        log.info(
            f"revision {revision.short_id}: {len(target.valid)} workflows valid, "
            f"{len(target.invalid)} invalid, {len(target.removed) + len(target.orphans)} removed "
            f"({changed} files changed)",
            revision=revision.id,
        )
        await self._queue_rest(target, fresh)
        await self.runs.abandon_unless(target.valid)

    def _queue_fresh(self, target: Target, previous: Target) -> set[str]:
        """Queue what the revision changed (valid, or newly invalid) ahead of everything still
        waiting, re-checks of an earlier revision included, so that their run does not wait
        behind the re-queueing of every unchanged workflow, nor behind their re-checks."""
        valid = target.valid
        fresh = sorted(n for n, lw in valid.items() if previous.valid.get(n) is not lw)
        fresh += sorted(n for n in target.invalid if n not in previous.invalid)
        self._requeue(fresh, target)
        self.queue.hurry(fresh)
        return set(fresh)

    async def _queue_rest(self, target: Target, first: set[str]) -> None:
        """Queue every workflow not in ``first`` for its re-check, in slices of
        :data:`REQUEUE_SLICE` with the loop let go between them (workers keep running while a
        large target is re-queued), then the removed ones for their ``onDelete``."""
        await asyncio.sleep(0)
        rest = [n for n in target.valid if n not in first]
        rest.sort()
        rest += sorted(n for n in target.invalid if n not in first)
        await asyncio.sleep(0)
        for start in range(0, len(rest), REQUEUE_SLICE):
            self._requeue(rest[start : start + REQUEUE_SLICE], target)
            await asyncio.sleep(0)
        for name in sorted(set(target.removed) | target.orphans):
            self.queue.add(name, Reason.DELETE)

    def _requeue(self, names: list[str], target: Target) -> None:
        self.queue.forget(*names)
        for name in names:
            resume = name in target.valid and self.runs.resumable(name)
            self.queue.add(name, Reason.RESUME if resume else Reason.REVISION)

    @staticmethod
    def _warn_unreadable(target: Target, revision: Revision) -> None:
        """Log each changed file that names no workflow any more (it does not parse)."""
        for path, nameless in target.unreadable.items():
            if path in revision.changed:
                more = f" (and {len(nameless) - 1} more)" if len(nameless) > 1 else ""
                log.warning(f"file {nameless[0]}{more}", revision=revision.id, file=path)
