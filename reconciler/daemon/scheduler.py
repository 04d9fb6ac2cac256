"""Periodic drift checks: each workflow's ``interval`` or ``cron`` feeds the work queue.

Called by: :mod:`reconciler.daemon.revision`, which calls :meth:`DriftScheduler.sync` with the
valid workflows of every new revision, and :mod:`reconciler.daemon.reconcile` (a status's next
check time; forgetting a retired workflow). Calls: the queue, through ``on_due``; the scheduler keeps exactly one APScheduler job per workflow
(``AsyncIOScheduler``; cron via :func:`~reconciler.config.cron.cron_trigger`, in UTC, weekdays
numbered as in cron) and, when a job fires,
calls ``on_due(name)`` — in the daemon that is ``queue.add(name, "drift-check")``, so a check
due while the workflow runs is merged into one re-evaluation after the run.

A job is only replaced when its schedule changed, so unrelated commits do not push a workflow's
next check further away. Workflows that set neither ``interval`` nor ``cron`` are checked every
``default_interval`` (``None`` disables that). Jobs are coroutines, so nothing runs in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.config.cron import cron_trigger
from reconciler.config.models import Workflow
from reconciler.errors import ConfigError

Schedule = tuple[str, str]
"""``("interval", "300.0")`` or ``("cron", "*/10 * * * *")``: what a job was built from."""


def schedule_of(workflow: Workflow, *, default_interval: timedelta | None) -> Schedule | None:
    """The drift-check schedule a workflow asks for (``None``: only on revisions and syncs)."""
    if workflow.spec.cron is not None:
        return ("cron", workflow.spec.cron)
    interval = workflow.spec.interval or default_interval
    if interval is None or interval.total_seconds() <= 0:
        return None
    return ("interval", repr(interval.total_seconds()))


def trigger_for(schedule: Schedule) -> BaseTrigger:
    """The APScheduler trigger of a schedule. Raises :class:`ConfigError` for a bad crontab."""
    kind, value = schedule
    if kind == "cron":
        try:
            return cron_trigger(value)  # weekdays numbered as in cron: 0 and 7 are Sunday
        except ValueError as exc:
            raise ConfigError(f"invalid cron {value!r}: {exc}") from None
    return IntervalTrigger(seconds=float(value), timezone=UTC)


class DriftScheduler:
    """One drift-check job per workflow, calling ``on_due(name)`` when it fires."""

    def __init__(
        self,
        on_due: Callable[[str], None],
        *,
        default_interval: timedelta | None = None,
    ) -> None:
        self._on_due = on_due
        self._default_interval = default_interval
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._schedules: dict[str, Schedule] = {}
        self._synced: dict[str, Workflow] = {}
        """The workflow objects of the last :meth:`sync`: an unchanged object (a file the new
        revision did not touch) keeps its job without recomputing its schedule."""
        self.problems: dict[str, str] = {}
        """Workflows whose schedule could not be built, with the reason."""

    def start(self) -> None:
        """Start firing jobs; needs a running event loop."""
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def sync(self, workflows: Mapping[str, Workflow]) -> None:
        """Make the jobs match ``workflows``: add new, replace changed, remove gone."""
        for name in list(self._schedules):
            if name not in workflows:
                self.remove(name)
        synced, self._synced = self._synced, dict(workflows)
        for name, workflow in workflows.items():
            if synced.get(name) is workflow and name not in self.problems:
                continue
            schedule = schedule_of(workflow, default_interval=self._default_interval)
            if schedule == self._schedules.get(name):
                continue
            self._drop(name)
            if schedule is None:
                continue
            try:
                trigger = trigger_for(schedule)
            except ConfigError as exc:
                self.problems[name] = str(exc)
                continue
            self._scheduler.add_job(
                self._fire,
                trigger,
                args=[name],
                id=name,
                name=f"drift check of {name}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
            self._schedules[name] = schedule

    def remove(self, name: str) -> None:
        """Stop checking ``name`` (the workflow was removed or its schedule changed)."""
        self._synced.pop(name, None)
        self._drop(name)

    def _drop(self, name: str) -> None:
        self.problems.pop(name, None)
        if self._schedules.pop(name, None) is not None and self._scheduler.get_job(name):
            self._scheduler.remove_job(name)

    def next_check(self, name: str) -> datetime | None:
        """When ``name`` is next checked (UTC), if it is scheduled and the scheduler runs."""
        job: Job | None = self._scheduler.get_job(name)
        if job is None:
            return None
        when = getattr(job, "next_run_time", None)
        if when is None:  # added before start(): compute from the trigger
            when = job.trigger.get_next_fire_time(None, datetime.now(UTC))
        return when.astimezone(UTC) if when is not None else None

    @property
    def scheduled(self) -> dict[str, Schedule]:
        return dict(self._schedules)

    async def _fire(self, name: str) -> None:
        self._on_due(name)
