"""How the metrics of :mod:`reconciler.telemetry.metrics` get fed, without the engine knowing.

The engine (``engine/runner.py``) writes every run through a
:class:`~reconciler.engine.journal.Journal` and resolves secrets through a
:class:`~reconciler.secrets.resolver.SecretResolver`; the daemon's controller
(``daemon/controller.py``) owns the status records, the queue and the source. So:

- :class:`MetricsJournal` wraps the journal the engine writes to and observes what passes:
  ``run_started``/``run_resumed`` (runs in progress), ``action`` and ``check`` entries (action
  durations by plugin and result, retries), ``transition`` entries, and ``run_finished`` (runs
  by result, run duration). Every call is forwarded first, so a failing store is never hidden.
- :class:`MetricsResolver` wraps the resolver and counts each :class:`SecretUnavailable` by
  provider (the reference's scheme) and a reason from a fixed vocabulary — never the message.
- :class:`DaemonMetrics` is the small hook API the controller calls: ``status_changed`` on every
  status it stores (status, reason, sync, last success), ``workflow_removed`` when it retires
  one, ``snapshot_loaded`` for each new revision (current revision, errors per file);
  ``watch_queue``/``watch_source`` let queue depth and fetch counters be read at scrape time.
- :func:`check_store` asks the store whether it is usable, at each scrape of ``/metrics`` and
  each ``/readyz``, and keeps ``reconciler_store_up`` to the answer.

Label values stay bounded, so a scrape never grows with history: workflow and file names come from the repository,
plugin names from the registry, everything else from fixed vocabularies.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sized
from datetime import datetime
from typing import Any

from reconciler.config.snapshot import Problem
from reconciler.engine.journal import EventKind, Journal, JournalEntry, RunRecord
from reconciler.errors import NotAllowed, SecretUnavailable
from reconciler.secrets.resolver import DefaultResolver, SecretResolver
from reconciler.sources import Source
from reconciler.status import Health, Sync, WorkflowStatusRecord
from reconciler.telemetry.metrics import (
    ACTION_DURATION,
    ACTION_RETRIES,
    CONFIG_ERRORS,
    LIVE,
    PER_WORKFLOW,
    RUN_DURATION,
    RUN_RESULTS,
    RUNS,
    RUNS_IN_PROGRESS,
    SECRET_ERRORS,
    SECRET_PROVIDERS,
    SECRET_REASONS,
    SNAPSHOT_INFO,
    STORE_UP,
    TRANSITIONS,
    WORKFLOW_IN_SYNC,
    WORKFLOW_LAST_SUCCESS,
    WORKFLOW_STATUS,
    FetchStats,
    hide_sync,
    remove_series,
    show_reason,
)

STATUSES: tuple[Health, ...] = tuple(h for h in Health if h is not Health.RETIRED)
"""Values of ``status`` on ``reconciler_workflow_status`` (a retired workflow has no series)."""

_REASON_WORD = re.compile(r"[A-Z][A-Za-z]{0,39}")


def reason_label(reason: str) -> str:
    """The ``reason`` label for a status reason: the planner's CamelCase word, ``None`` for an
    empty one, ``Other`` for anything else, so a label never carries free text."""
    if not reason:
        return "None"
    return reason if _REASON_WORD.fullmatch(reason) else "Other"


async def check_store(problem: Callable[[], Awaitable[str | None]], *, within: float) -> str | None:
    """Ask ``problem`` (the store's own health check, the one ``/readyz`` uses) and set
    ``reconciler_store_up`` from the answer; returns the answer.

    Called at each scrape of ``/metrics`` and by ``/readyz``, so the gauge says what the
    probe says. A store that does not answer within ``within`` seconds is not usable.
    """
    try:
        found = await asyncio.wait_for(problem(), within)
    except TimeoutError:
        found = f"the store did not answer within {within:g} s"
    STORE_UP.set(0 if found is not None else 1)
    return found


class MetricsJournal:
    """A :class:`~reconciler.engine.journal.Journal` that observes runs on their way to ``inner``."""

    def __init__(self, inner: Journal) -> None:
        self.inner = inner
        self._open: dict[str, tuple[str, float]] = {}
        """Runs in progress: run id → (workflow, monotonic start)."""

    def _opened(self, run_id: str, workflow: str) -> None:
        if run_id not in self._open:
            self._open[run_id] = (workflow, time.monotonic())
            RUNS_IN_PROGRESS.inc()

    async def run_started(self, run: RunRecord) -> None:
        await self.inner.run_started(run)
        self._opened(run.id, run.workflow)

    async def record(self, entry: JournalEntry) -> None:
        await self.inner.record(entry)
        if entry.kind is EventKind.RUN_RESUMED:
            run = await self.inner.get_run(entry.run_id)
            if run is not None:
                self._opened(run.id, run.workflow)
        elif entry.kind is EventKind.TRANSITION:
            opened = self._open.get(entry.run_id)
            if opened is not None:
                TRANSITIONS.labels(workflow=opened[0]).inc()
        elif entry.kind in (EventKind.ACTION, EventKind.CHECK):
            plugin = entry.detail.get("plugin")
            duration = entry.detail.get("duration")
            if not isinstance(plugin, str) or not isinstance(duration, int | float):
                return
            ACTION_DURATION.labels(plugin=plugin, result=entry.outcome or "success").observe(
                duration
            )
            attempt = entry.detail.get("attempt")
            if isinstance(attempt, int) and attempt > 1:
                ACTION_RETRIES.labels(plugin=plugin).inc()

    async def run_finished(self, run: RunRecord) -> None:
        """Counts the run in ``reconciler_runs_total`` only once its end is recorded: a run the
        shutdown leaves to resume (or whose write the store refused) has not finished."""
        try:
            await self.inner.run_finished(run)
        finally:
            opened = self._open.pop(run.id, None)
            if opened is not None:
                RUNS_IN_PROGRESS.dec()
        if opened is not None:
            RUN_DURATION.labels(workflow=run.workflow).observe(time.monotonic() - opened[1])
        RUNS.labels(workflow=run.workflow, result=run.status.value).inc()

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self.inner.get_run(run_id)

    async def entries(self, run_id: str) -> list[JournalEntry]:
        return await self.inner.entries(run_id)

    async def unfinished_runs(self) -> list[RunRecord]:
        return await self.inner.unfinished_runs()


def secret_provider(ref: str | None) -> str:
    """The provider of a secret reference: its scheme when known, else ``unknown``."""
    scheme = (ref or "").partition(":")[0]
    return scheme if scheme in SECRET_PROVIDERS else "unknown"


VAULT_CODES: dict[str, str] = {
    "not-found": "missing",
    "key-missing": "missing",
    "deleted": "missing",
    "forbidden": "forbidden",
    "token-expired": "auth",
    "login-failed": "auth",
    "sealed": "sealed",
    "unreachable": "unreachable",
    "bad-reference": "invalid",
    "decrypt-failed": "invalid",
    "vault-error": "error",
}
"""``details['reason']`` codes of :mod:`reconciler.secrets.vault` → metric reasons."""

_REASON_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sealed", ("sealed",)),
    ("forbidden", ("forbidden", "permission denied", "403")),
    ("not_configured", ("not configured",)),
    ("unsupported", ("unsupported",)),
    ("missing", ("not set", "not found", "missing", "no such", "no test value", "404")),
    ("unreadable", ("cannot read",)),
)


def secret_reason(error: SecretUnavailable | NotAllowed) -> str:
    """A reason from :data:`~reconciler.telemetry.metrics.SECRET_REASONS` for ``error``.

    A resolver may say it in ``details['reason']`` (a reason of the vocabulary, or one of the
    Vault resolver's :data:`VAULT_CODES`); otherwise the message is matched against a few
    words. The message itself never becomes a label.
    """
    if isinstance(error, NotAllowed):
        return "not_allowed"
    given = error.details.get("reason")
    if isinstance(given, str) and given in SECRET_REASONS:
        return given
    if isinstance(given, str) and given in VAULT_CODES:
        return VAULT_CODES[given]
    text = error.message.lower()
    for reason, words in _REASON_WORDS:
        if any(word in text for word in words):
            return reason
    return "error"


class MetricsResolver:
    """A :class:`~reconciler.secrets.resolver.SecretResolver` counting failures of ``inner``.

    Anything else about ``inner`` (e.g. a Vault resolver's ``close``) is reached through it.
    """

    def __init__(self, inner: SecretResolver) -> None:
        self.inner = inner

    async def resolve(self, refs: dict[str, str]) -> dict[str, str]:
        try:
            return await self.inner.resolve(refs)
        except (SecretUnavailable, NotAllowed) as exc:
            ref = exc.details.get("ref")
            if not isinstance(ref, str):
                ref = refs.get(str(exc.details.get("secret")))
            if ref is None and len({secret_provider(r) for r in refs.values()}) == 1:
                ref = next(iter(refs.values()))
            SECRET_ERRORS.labels(provider=secret_provider(ref), reason=secret_reason(exc)).inc()
            raise

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. while being copied): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


class DaemonMetrics:
    """The hooks the daemon's controller calls; see the module docstring."""

    def __init__(self) -> None:
        self._shown: dict[str, tuple[Health, str, Sync, datetime | None]] = {}
        """What the per-workflow gauges show, so a re-check that changes nothing is free."""

    def journal(self, inner: Journal) -> MetricsJournal:
        """``inner`` wrapped so that the runs written through it are measured."""
        return MetricsJournal(inner)

    def resolver(self, inner: SecretResolver | None) -> MetricsResolver:
        """``inner`` (default: env:/file:) wrapped so that its failures are counted."""
        return MetricsResolver(inner if inner is not None else DefaultResolver())

    def watch_queue(self, queue: Sized) -> None:
        """Read ``reconciler_queue_depth`` from ``len(queue)`` at each scrape."""
        LIVE.queue_depth = lambda: len(queue)

    def watch_windows(self, blocked: Callable[[], Mapping[str, bool]]) -> None:
        """Read ``reconciler_workflow_window_blocked`` from ``blocked()`` at each scrape:
        every workflow a change window applies to, and whether one blocks its runs now."""
        LIVE.window_blocked = blocked

    def watch_source(self, source: Source) -> None:
        """Read the fetch counters and last successful fetch from ``source`` at each scrape."""
        LIVE.fetch_stats = lambda: FetchStats(
            ok=source.fetch_count_ok,
            failed=source.fetch_count_failed,
            last_success_at=source.last_success_at,
            signature_refused=bool(getattr(source, "signature_refused", False)),
        )

    def status_changed(self, record: WorkflowStatusRecord) -> None:
        """The workflow's status, sync and last success, as just stored.

        Its run and transition counters are created at 0 here, before its first run, so that
        ``increase()`` in alert rules sees the very first failure. Only the series whose value
        changed since the last call are touched (this runs twice a run).
        """
        name = record.name
        reason = reason_label(record.reason)
        shown = (record.status, reason, record.sync, record.last_success_at)
        before = self._shown.get(name)
        if before == shown:
            return
        self._shown[name] = shown
        if before is None:
            for result in RUN_RESULTS:
                RUNS.labels(workflow=name, result=result)
            TRANSITIONS.labels(workflow=name)
            for health in STATUSES:
                WORKFLOW_STATUS.labels(workflow=name, status=health.value).set(
                    1 if record.status is health else 0
                )
        elif before[0] is not record.status:  # only the two series that change
            WORKFLOW_STATUS.labels(workflow=name, status=before[0].value).set(0)
            WORKFLOW_STATUS.labels(workflow=name, status=record.status.value).set(1)
        if before is None or before[1] != reason:
            show_reason(name, reason)
        if before is None or before[2] is not record.sync:
            if record.sync is Sync.UNKNOWN:
                hide_sync(name)
            else:
                WORKFLOW_IN_SYNC.labels(workflow=name).set(1 if record.sync is Sync.SYNCED else 0)
        if record.last_success_at is not None and (before is None or before[3] != shown[3]):
            WORKFLOW_LAST_SUCCESS.labels(workflow=name).set(record.last_success_at.timestamp())

    def workflow_removed(self, name: str) -> None:
        """A retired workflow: every series naming it goes."""
        self._shown.pop(name, None)
        for metric in PER_WORKFLOW:
            remove_series(metric, workflow=name)

    def snapshot_loaded(self, revision: str, problems: Iterable[Problem]) -> None:
        """The revision now in use and the errors (not warnings) per file; fixed files go."""
        SNAPSHOT_INFO.labels(revision=revision).set(1)
        for family in SNAPSHOT_INFO.collect():
            for sample in family.samples:
                if sample.labels["revision"] != revision:
                    remove_series(SNAPSHOT_INFO, revision=sample.labels["revision"])
        per_file = Tally(p.path for p in problems if p.is_error)
        for family in CONFIG_ERRORS.collect():
            for sample in family.samples:
                if sample.labels["file"] not in per_file:
                    remove_series(CONFIG_ERRORS, file=sample.labels["file"])
        for path, count in per_file.items():
            CONFIG_ERRORS.labels(file=path).set(count)
