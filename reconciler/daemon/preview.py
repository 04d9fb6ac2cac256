"""Previews of a change: what a branch or commit would do, decided without doing anything.

:func:`compare` (pure) says, per workflow name, whether the ref adds, changes, removes or keeps
it against a base (by spec digest: formatting and key order do not count as a change).
:func:`preview_target` then asks the daemon's own questions (:func:`~reconciler.daemon.check.
check_workflow`: suspended? dependencies? observe, then in sync or run and why) for the
workflows that are new or changed, with the stored statuses as input, and collects the answers
in a :class:`~reconciler.previews.PreviewReport`. It never runs a state and never writes a
status, a run or a journal entry: the only I/O is the ``observe`` callable it is given, and a
probe may only use check plugins (the validator refuses anything else in ``observe``).

:class:`Previewer` is the daemon's side: it reads the ref from the daemon's source (git
objects, no checkout), validates it with the daemon's registry, grants, work directory and
expression budget, and compares with the current target. The work is bounded: at most
``limit`` probes and ``timeout`` seconds per preview (what is left out is listed in
``limited``), and one preview at a time per daemon.

Called by: the API (``POST /api/v1/previews``, the pull request webhooks) through the
controller's view, and ``reconciler plan --ref``. Calls: the loader, the target selection,
the planner (through ``check_workflow``) and the probe callable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import structlog

from reconciler.config.snapshot import LoadedWorkflow, Snapshot
from reconciler.config.validate import ValidationCache
from reconciler.daemon.check import check_workflow
from reconciler.daemon.planner import Next
from reconciler.daemon.revision import load_snapshot
from reconciler.daemon.target import Target, dependency_order, select_target
from reconciler.daemon.windows import WindowVerdict
from reconciler.engine.runner import Observation
from reconciler.errors import PreviewUnavailable, ReconcilerError, RefNotFound
from reconciler.grants import Grants
from reconciler.notify.previews import PreviewPublisher, PullRequest
from reconciler.plugin import PluginRegistry
from reconciler.previews import Change, PreviewReport, WorkflowPreview
from reconciler.sources import Revision
from reconciler.status import Health, WorkflowStatusRecord

log = structlog.get_logger("reconciler.daemon.preview")

DEFAULT_LIMIT = 50
"""Most probes one preview runs (new and changed workflows beyond it are listed, not observed)."""
DEFAULT_TIMEOUT = 120.0
"""Seconds one preview may spend on probes; what is left is listed in ``limited``."""


def digests(snapshot: Snapshot | None, names: Mapping[str, object] = {}) -> dict[str, str | None]:
    """Every workflow name of ``snapshot`` with its spec digest (``None``: it does not parse,
    so no digest can say it is unchanged); ``names`` adds names known without a spec."""
    found: dict[str, str | None] = dict.fromkeys(names)
    if snapshot is not None:
        found.update(dict.fromkeys(snapshot.invalid))
        found.update({n: lw.digest for n, lw in snapshot.workflows.items()})
    return found


def compare(base: Mapping[str, str | None], head: Mapping[str, str | None]) -> dict[str, Change]:
    """Each name in ``base`` or ``head`` (name → spec digest) with how ``head`` differs.

    A workflow that does not parse on either side (digest ``None``) counts as changed."""
    changes: dict[str, Change] = {}
    for name in sorted({*base, *head}):
        if name not in head:
            changes[name] = Change.REMOVED
        elif name not in base:
            changes[name] = Change.NEW
        elif base[name] is None or head[name] is None or base[name] != head[name]:
            changes[name] = Change.CHANGED
        else:
            changes[name] = Change.UNCHANGED
    return changes


def sync_of(observation: Observation | None) -> str:
    """What a probe said, in the words of ``reconciler plan``."""
    if observation is None or (observation.error is None and observation.in_sync is None):
        return "Unknown"
    if observation.error is not None:
        return "Error"
    return "Synced" if observation.in_sync else "OutOfSync"


@dataclass(frozen=True)
class PreviewContext:
    """What a preview decides with: the stored statuses, the probe, the clock, the windows."""

    statuses: Mapping[str, WorkflowStatusRecord]
    observe: Callable[[LoadedWorkflow], Awaitable[Observation]]
    now: Callable[[], datetime]
    window: Callable[[LoadedWorkflow, datetime], WindowVerdict | None] = lambda _lw, _at: None
    limit: int = DEFAULT_LIMIT
    timeout: float = DEFAULT_TIMEOUT
    observe_unchanged: bool = False
    """Also observe unchanged workflows (``plan --ref`` does; the daemon already watches them)."""


async def preview_target(
    head: Target,
    changes: Mapping[str, Change],
    context: PreviewContext,
    *,
    ref: str,
    base: str,
    removed: Mapping[str, LoadedWorkflow | None] = {},
    base_problems: Collection[str] = (),
) -> PreviewReport:
    """The report for ``head`` (the target at ``ref``) given each name's ``changes`` against
    ``base``. ``removed`` holds the base's spec of workflows the ref removes (their
    ``onDelete`` state would run); ``base_problems`` the base's errors (``str`` of each), so
    the report can tell the errors this change brings."""
    report = PreviewReport(ref=ref, revision=head.revision, base=base)
    report.problems = sorted({str(p) for p in head.problems if p.is_error})
    report.introduced = [p for p in report.problems if p not in set(base_problems)]
    statuses = dict(context.statuses)
    deadline = time.monotonic() + context.timeout
    probes = 0
    for name in _order(head, changes):
        change = changes[name]
        item = WorkflowPreview(name=name, change=change)
        report.workflows.append(item)
        if change is Change.REMOVED:
            _removed(item, removed.get(name))
            continue
        if name in head.invalid:
            item.problems = [str(p) for p in head.invalid[name]]
            item.path = item.problems[0].split(":", 1)[0] if item.problems else ""
            item.reason = "invalid at this ref: it would not run"
            continue
        lw = head.valid[name]
        item.path = lw.path
        if change is Change.UNCHANGED and not context.observe_unchanged:
            item.reason = "unchanged"
            continue
        if probes >= context.limit or time.monotonic() >= deadline:
            why = "limit" if probes >= context.limit else "timeout"
            item.reason = f"not observed: the preview's {why} was reached"
            report.limited.append(name)
            continue
        probes += 1
        await _check(item, lw, statuses, context, deadline=deadline, revision=head.revision)
    return report


async def preview_against(
    head: Target, base: Target, context: PreviewContext, *, ref: str, base_revision: str
) -> PreviewReport:
    """:func:`preview_target` of ``head`` against the whole ``base`` target: what changed
    between them, the specs of the workflows the ref removes, and the base's own errors."""
    changes = compare(digests(base.snapshot), digests(head.snapshot, head.invalid))
    known = base.snapshot.workflows if base.snapshot is not None else {}
    return await preview_target(
        head,
        changes,
        context,
        ref=ref,
        base=base_revision,
        removed={n: known.get(n) for n, c in changes.items() if c is Change.REMOVED},
        base_problems={str(p) for p in base.problems if p.is_error},
    )


def _order(head: Target, changes: Mapping[str, Change]) -> list[str]:
    """Names with what depends on something after it (dependencies are checked first)."""
    return dependency_order(head.valid) + sorted(n for n in changes if n not in head.valid)


def _removed(item: WorkflowPreview, last: LoadedWorkflow | None) -> None:
    on_delete = last.workflow.spec.on_delete if last is not None else None
    item.path = last.path if last is not None else ""
    item.would_run = on_delete is not None
    item.reason = (
        f"removed from git: its onDelete state {on_delete} would run, then it is retired"
        if on_delete
        else "removed from git: it would be retired (no onDelete state)"
    )


async def _check(
    item: WorkflowPreview,
    lw: LoadedWorkflow,
    statuses: dict[str, WorkflowStatusRecord],
    context: PreviewContext,
    *,
    deadline: float,
    revision: str,
) -> None:
    wf = lw.workflow

    async def observe() -> Observation:
        left = max(deadline - time.monotonic(), 0.001)
        return await asyncio.wait_for(context.observe(lw), timeout=left)

    try:
        decision, observation = await check_workflow(
            lw,
            statuses.get(lw.name),
            revision=revision,
            statuses={d: statuses[d] for d in wf.spec.depends_on if d in statuses},
            observe=observe,
            now=context.now,
            window=lambda at: context.window(lw, at),
        )
    except TimeoutError:
        item.reason = "not observed: the preview's timeout was reached"
        item.probe_error = "the probe did not answer within the preview's timeout"
        return
    item.sync = sync_of(observation)
    if observation is not None:
        item.diff = [d.as_dict() for d in observation.diff]
        if observation.error is not None:
            item.probe_error = str(observation.error)
    item.would_run = decision.next is Next.RUN
    item.reason = decision.message
    status = decision.status
    if decision.next is Next.RUN:  # as plan does: what depends on it is checked as if it ran
        status = status.model_copy(update={"status": Health.CONVERGED})
    statuses[lw.name] = status


class RefReader(Protocol):
    """A source that can read another ref than the one it tracks (the git sources)."""

    async def read_ref(self, ref: str) -> Revision: ...


@dataclass
class Previewer:
    """The daemon's previews: the ref read from its source, checked with its policy, compared
    with its current target and stored statuses. One preview runs at a time."""

    source: object
    registry: PluginRegistry
    grants: Grants
    workdir: Path
    current: Callable[[], Target]
    statuses: Callable[[], Awaitable[list[WorkflowStatusRecord]]]
    observe: Callable[[LoadedWorkflow], Awaitable[Observation]]
    now: Callable[[], datetime]
    window: Callable[[LoadedWorkflow, datetime], WindowVerdict | None]
    limit: int = DEFAULT_LIMIT
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        self._busy = asyncio.Lock()
        self._validation = ValidationCache()

    async def preview(self, ref: str) -> PreviewReport:
        """The preview of ``ref`` against the current target.

        Raises :class:`~reconciler.errors.RefNotFound` (no such ref),
        :class:`~reconciler.errors.FetchFailed` (the repository did not answer) or
        :class:`~reconciler.errors.PreviewUnavailable` (not a git source)."""
        read = getattr(self.source, "read_ref", None)
        if read is None:
            raise PreviewUnavailable(
                "previews need a git repository; this daemon follows a directory"
            )
        async with self._busy:
            revision: Revision = await read(ref)
            base = self.current()
            head = select_target(
                load_snapshot(revision, None),
                self.registry,
                grants=self.grants,
                previous=base,  # a file that breaks holds its workflows: invalid, not removed
                workdir=self.workdir,
                cache=self._validation,
            )
            stored = {st.name: st for st in await self.statuses()}
            context = PreviewContext(
                statuses=stored,
                observe=self.observe,
                now=self.now,
                window=self.window,
                limit=self.limit,
                timeout=self.timeout,
            )
            return await preview_against(head, base, context, ref=ref, base_revision=base.revision)


class PullRequestPreviews:
    """Previews of pull and merge requests, run in the background (the webhook answers at
    once): pending commit status, the preview of the head commit, then the final status and
    the one comment. A failure of the preview itself (the ref cannot be fetched) sets a
    ``failure`` status saying so; nothing is ever raised to the caller."""

    def __init__(self, previewer: Previewer, publisher: PreviewPublisher) -> None:
        self.previewer = previewer
        self.publisher = publisher
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, pr: PullRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._run(pr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, pr: PullRequest) -> None:
        where = f"{pr.forge.value} {pr.repository}#{pr.number}"
        await self.publisher.status(pr, None)
        try:
            report = await self._preview(pr)
        except ReconcilerError as exc:
            log.warning(f"preview of {where} at {pr.head_sha[:12]} failed: {exc}")
            await self.publisher.status(pr, None, error=str(exc))
            return
        log.info(
            f"preview of {where} at {pr.head_sha[:12]}: {len(report.changes())} workflows "
            f"changed, {'failure' if report.failed else 'success'}"
        )
        await self.publisher.status(pr, report)
        await self.publisher.comment(pr, report)

    async def _preview(self, pr: PullRequest) -> PreviewReport:
        """The preview of the head commit, fetching what leads to it first when needed."""
        missing: RefNotFound | None = None
        for ref in (pr.head_sha, *pr.fetch_refs):
            try:
                report = await self.previewer.preview(ref)
            except RefNotFound as exc:
                missing = exc
                continue
            if report.revision == pr.head_sha or ref == pr.head_sha:
                return report
            try:  # the fetched branch moved on: the head commit is now in the clone
                return await self.previewer.preview(pr.head_sha)
            except RefNotFound:
                return report
        raise missing or RefNotFound(f"commit {pr.head_sha[:12]} cannot be found")

    async def wait(self) -> None:
        """Wait for the previews under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
