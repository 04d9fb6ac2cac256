"""Change windows: which windows apply to a workflow, and whether runs may start at an instant.

A window (:class:`~reconciler.config.models.SyncWindow`) opens at every instant its cron
``schedule`` fires, read in its ``timeZone``, and stays open for ``duration`` (elapsed time, so
a window opening before a daylight saving change lasts as long as any other). Openings closer
together than ``duration`` overlap into one open period. The rules are Argo CD's sync windows:

- a workflow to which at least one ``allow`` window applies starts runs only while one of them
  is open — one of the operator's when the operator's file gives some, and one of its own when
  it declares some (a commit's allow window cannot lift the operator's);
- any open ``deny`` window blocks runs, whatever the allow windows say (deny wins);
- while blocked, a manual sync runs only if every window blocking it says ``manualSync: true``
  (the open deny windows, and the allow windows of a side, the operator's or the workflow's,
  none of which is open);
- a run in progress is never stopped, and a run resuming after a restart continues: only the
  start of a run is gated.

Windows come from the workflow's ``spec.windows`` and from the operator's windows file
(:func:`load_windows_file`, ``--windows-file``), whose entries apply to every workflow or to
those their selector picks (name globs, labels).

Everything here but :func:`load_windows_file` is pure: ``now`` is passed in. Called by:
:mod:`reconciler.daemon.reconcile` (the verdict handed to the planner, the next opening the
workflow is queued for), :mod:`reconciler.daemon.view` (the API's ``window`` object and its
refusal of a manual sync), the controller (the windows file, the metric) and
:mod:`reconciler.cli.converge` (``plan``/``apply``). Calls: :func:`~reconciler.config.cron.
cron_trigger` (APScheduler's ``CronTrigger``, weekdays numbered as in cron).
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from reconciler.config.cron import cron_trigger
from reconciler.config.models import OperatorWindow, SyncWindow, Workflow
from reconciler.errors import ConfigError

HORIZON = timedelta(days=400)
"""How far ahead :func:`evaluate` looks for the instant the verdict changes."""
MAX_STEPS = 1000
"""At most this many window openings are looked at per window and per question, so a window
that never closes (``* * * * *`` for an hour) costs a bounded amount of work."""
FIRE_CACHE = 32768
"""How many openings :func:`_next_fire` remembers (a few MB): the walks of 32 windows that
never close."""
_TICK = timedelta(microseconds=1)

Period = tuple[datetime, datetime | None]
"""When a window opens and closes (``None``: not within :data:`MAX_STEPS` openings), in UTC."""


@dataclass(frozen=True)
class AppliedWindow:
    """A window that applies to one workflow, and where it was declared (``source``:
    ``spec.windows[0]`` or ``windows-file[2]``, the index counting from 0)."""

    window: SyncWindow
    source: str

    @property
    def operators(self) -> bool:
        """Whether the window comes from the operator's windows file (else from the workflow)."""
        return self.source.startswith("windows-file")

    @property
    def label(self) -> str:
        """``deny window spec.windows[0] ("release freeze")``: how messages name it."""
        about = f' ("{self.window.description}")' if self.window.description else ""
        return f"{self.window.kind} window {self.source}{about}"


@dataclass(frozen=True)
class WindowVerdict:
    """Whether runs of a workflow may start at one instant, and for how long that holds.

    ``windows`` are the windows blocking it when ``blocked`` (the open deny windows, and every
    allow window of a side, the operator's or the workflow's, none of whose allow windows is
    open), or the allow windows open now when not. ``until`` is the next instant the verdict
    changes (blocked: when runs may start again, the next opening); ``None`` when it does not
    change within :data:`HORIZON`.
    """

    blocked: bool
    manual_sync: bool
    """Whether a manual sync may run now: always when not blocked, else when every blocking
    window says ``manualSync: true``."""
    windows: tuple[AppliedWindow, ...]
    until: datetime | None

    def describe(self) -> str:
        """Plain words for a status message, a log line or the API's refusal."""
        names = ", ".join(w.label for w in self.windows)
        when = f" until {self.until:%Y-%m-%d %H:%M:%S} UTC" if self.until is not None else ""
        if not self.blocked:
            if self.windows:
                return f"runs may start: {names} is open{when}"
            return f"runs may start{when}"
        if any(w.window.kind == "deny" for w in self.windows):
            return f"{names} blocks runs{when}"
        return f"runs may start only in {names}, none open now{when}"


# -- which windows apply ----------------------------------------------------------------------


def selects(window: OperatorWindow, *, name: str, labels: Mapping[str, str]) -> bool:
    """Whether the operator's ``window`` applies to the workflow ``name`` with ``labels``."""
    selector = window.selector
    if selector is None:
        return True
    if selector.names and not any(fnmatch.fnmatchcase(name, g) for g in selector.names):
        return False
    return all(labels.get(k) == v for k, v in selector.match_labels.items())


def applicable(
    workflow: Workflow, operator: Sequence[OperatorWindow] = ()
) -> tuple[AppliedWindow, ...]:
    """The workflow's own windows, then the operator's windows that select it."""
    own = [AppliedWindow(w, f"spec.windows[{i}]") for i, w in enumerate(workflow.spec.windows)]
    labels = workflow.metadata.labels
    theirs = [
        AppliedWindow(w, f"windows-file[{i}]")
        for i, w in enumerate(operator)
        if selects(w, name=workflow.name, labels=labels)
    ]
    return (*own, *theirs)


# -- one window over time ---------------------------------------------------------------------


def _fire_at_or_after(window: SyncWindow, at: datetime) -> datetime | None:
    """The first opening of ``window`` at or after ``at``, in UTC."""
    return _next_fire(window.schedule, window.time_zone, at)


@functools.lru_cache(maxsize=FIRE_CACHE)
def _next_fire(schedule: str, time_zone: str, at: datetime) -> datetime | None:
    """:func:`_fire_at_or_after` by value, remembered: :func:`open_periods` steps from one
    opening to the next (``fire + 1µs``), the same instants at every evaluation, so a window
    whose openings merge for :data:`MAX_STEPS` steps costs that walk once, not at every
    question the API, ``/metrics`` and the planner ask."""
    fire = cron_trigger(schedule, time_zone).get_next_fire_time(None, at)
    return fire.astimezone(UTC) if fire is not None else None


def open_periods(window: SyncWindow, start: datetime) -> Iterator[tuple[datetime, datetime | None]]:
    """The periods ``window`` is open that end after ``start``, in order, as ``(opens, closes)``
    in UTC; overlapping or touching openings are merged into one period. ``closes`` is ``None``
    when the period goes on past :data:`MAX_STEPS` openings (the window is open for good)."""
    fire = _fire_at_or_after(window, start - window.duration + _TICK)
    steps = 0
    while fire is not None and steps < MAX_STEPS:
        opens, closes = fire, fire + window.duration
        fire = _fire_at_or_after(window, fire + _TICK)
        steps += 1
        while fire is not None and fire <= closes:
            closes = max(closes, fire + window.duration)
            fire = _fire_at_or_after(window, fire + _TICK)
            steps += 1
            if steps >= MAX_STEPS:
                yield opens, None
                return
        yield opens, closes


def is_open(window: SyncWindow, now: datetime) -> bool:
    """Whether ``window`` is open at ``now``: it opened at most ``duration`` ago."""
    fire = _fire_at_or_after(window, now - window.duration + _TICK)
    return fire is not None and fire <= now


# -- the verdict ------------------------------------------------------------------------------


def _blocking(
    applied: Sequence[AppliedWindow], is_open_now: Sequence[bool]
) -> tuple[bool, tuple[AppliedWindow, ...], tuple[AppliedWindow, ...]]:
    """``(blocked, blocking windows, open allow windows)`` given which windows are open.

    The workflow's own allow windows and the operator's restrict separately: a commit's
    always-open allow window must not lift the operator's "only at night"."""
    pairs = list(zip(applied, is_open_now, strict=True))
    blocking = tuple(w for w, o in pairs if o and _deny(w))
    open_allows: tuple[AppliedWindow, ...] = ()
    for operators in (False, True):
        allows = [(w, o) for w, o in pairs if not _deny(w) and w.operators == operators]
        opened = tuple(w for w, o in allows if o)
        if allows and not opened:
            blocking += tuple(w for w, _o in allows)
        open_allows += opened
    return bool(blocking), blocking, open_allows


def _deny(applied: AppliedWindow) -> bool:
    return applied.window.kind == "deny"


def blocked_at(applied: Sequence[AppliedWindow], now: datetime) -> bool:
    """Whether runs are blocked at ``now`` (cheaper than :func:`evaluate`: no ``until``)."""
    return _blocking(applied, [is_open(w.window, now) for w in applied])[0]


def evaluate(applied: Sequence[AppliedWindow], now: datetime) -> WindowVerdict | None:
    """The verdict of the windows ``applied`` at ``now``; ``None`` when no window applies."""
    if not applied:
        return None
    periods = [open_periods(w.window, now) for w in applied]
    current = [next(p, None) for p in periods]
    blocked, blocking, open_allows = _blocking(applied, _open_in(current, now))
    until = _next_change(periods, current, now=now, blocked=blocked, applied=applied)
    return WindowVerdict(
        blocked=blocked,
        manual_sync=not blocked or all(w.window.manual_sync for w in blocking),
        windows=blocking if blocked else open_allows,
        until=until,
    )


def _open_in(current: Sequence[Period | None], at: datetime) -> list[bool]:
    return [p is not None and p[0] <= at and (p[1] is None or at < p[1]) for p in current]


def _next_change(
    periods: list[Iterator[Period]],
    current: list[Period | None],
    *,
    now: datetime,
    blocked: bool,
    applied: Sequence[AppliedWindow],
) -> datetime | None:
    """Sweep the windows' openings and closings after ``now`` until the verdict differs from
    ``blocked``; that instant, or ``None`` within :data:`HORIZON` / :data:`MAX_STEPS`."""
    at = now
    for _ in range(MAX_STEPS):
        edges = [e for p in current if p is not None for e in p if e is not None and e > at]
        if not edges:
            return None
        at = min(edges)
        if at > now + HORIZON:
            return None
        for i, p in enumerate(current):
            while p is not None and p[1] is not None and p[1] <= at:
                p = next(periods[i], None)
            current[i] = p
        if _blocking(applied, _open_in(current, at))[0] != blocked:
            return at
    return None


def verdict_for(
    workflow: Workflow, operator: Sequence[OperatorWindow], now: datetime
) -> WindowVerdict | None:
    """The verdict at ``now`` of every window that applies to ``workflow`` (``None``: none)."""
    return evaluate(applicable(workflow, operator), now)


# -- the operator's windows file --------------------------------------------------------------

_FILE = TypeAdapter(list[OperatorWindow])


def load_windows_file(path: Path) -> tuple[OperatorWindow, ...]:
    """The windows of the operator's file (YAML or JSON: a list of windows, each with an
    optional ``selector``). Raises :class:`ConfigError` naming the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"windows file {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"windows file {path}: not YAML: {exc}") from None
    if data is None:
        return ()
    try:
        return tuple(_FILE.validate_python(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        ).lstrip(".")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(
            f"windows file {path}: {where or 'top level'}: {first['msg']}{more}"
        ) from None
