"""Standard 5-field cron expressions as APScheduler triggers, with cron's weekday numbers.

APScheduler 3's ``CronTrigger.from_crontab`` numbers weekdays from Monday (``0`` = Monday), so
``0 22 * * 1-5`` would fire Tuesday to Saturday. Cron (and Argo CD's sync windows, whose
schedules people copy) numbers them from Sunday: ``0`` and ``7`` are Sunday, ``1-5`` is Monday
to Friday. :func:`cron_trigger` rewrites the weekday field into day names before handing the
expression to APScheduler, so a schedule means what it means in crontab(5).

Called by: :mod:`reconciler.config.models` (a change window's ``schedule`` is checked when the
file loads) and :mod:`reconciler.daemon.windows` (when windows open). Calls: APScheduler.
"""

from __future__ import annotations

import calendar
import functools
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # imported when first needed: every CLI command loads this module
    from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day(token: str) -> int:
    """``"1"`` or ``"mon"`` → 1; ``7`` is Sunday too (0)."""
    lowered = token.lower()
    if lowered in _DAYS:
        return _DAYS.index(lowered)
    if not lowered.isdigit() or int(lowered) > 7:
        raise ValueError(f"weekday {token!r} is not 0-7 or sun-sat")
    return int(lowered) % 7


def _expand(part: str) -> set[int]:
    """One comma-separated item of a weekday field (``*``, ``3``, ``1-5``, ``*/2``, ``mon-fri/2``)
    as the set of days it names, 0 being Sunday."""
    span, _, step_text = part.partition("/")
    step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
    if step_text and step is None:
        raise ValueError(f"bad step in weekday {part!r}")
    if span == "*":
        first, last = 0, 6
    elif "-" in span:
        low, high = span.split("-", 1)
        first, last = _day(low), _day(high)
        if high.strip() == "7":
            last = 7  # 5-7: Friday to Sunday
        if last < first:
            raise ValueError(f"weekday range {span!r} runs backwards")
    else:
        first = last = _day(span)
        if step is not None:
            last = 6
    return {day % 7 for day in range(first, last + 1, step or 1)}


def weekdays_as_names(field: str) -> str:
    """A cron weekday field with cron's numbering rewritten as day names APScheduler reads the
    same way (``1-5`` → ``mon,tue,wed,thu,fri``; ``*`` stays ``*``)."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        days |= _expand(part.strip())
    return ",".join(_DAYS[d] for d in sorted(days))


@functools.lru_cache(maxsize=1024)
def cron_trigger(expression: str, time_zone: str = "UTC") -> CronTrigger:
    """The trigger of a 5-field cron ``expression`` read in ``time_zone``, weekdays numbered
    as in cron. Raises ``ValueError`` with APScheduler's or our reason for a bad expression."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r} must have 5 fields (minute hour day month weekday)")
    minute, hour, day, month, weekday = fields
    trigger = CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekdays_as_names(weekday),
        timezone=ZoneInfo(time_zone),
    )
    if not has_a_day(trigger):
        raise ValueError(
            f"{expression!r} never fires: no day of its months is one of its days of the month"
        )
    return trigger


def has_a_day(trigger: CronTrigger) -> bool:
    """Whether some date of a leap year has a month and a day of the month ``trigger`` accepts.

    Without one (``0 0 31 2 *``) the trigger never fires, and APScheduler only finds out by
    searching every month up to the year 9999 (a tenth of a second at each question). Any
    weekday is met by every date within 28 years, so the weekday field cannot make it never.
    """
    fields = {field.name: field for field in trigger.fields}
    months, days = fields["month"], fields["day"]
    for month in range(1, 13):
        if months.get_next_value(datetime(2000, month, 1)) != month:
            continue
        for day in range(1, calendar.monthrange(2000, month)[1] + 1):
            if days.get_next_value(datetime(2000, month, day)) == day:
                return True
    return False
