"""Change windows a committer writes to hurt the daemon: a schedule that never fires (whose
search runs to the year 9999 at every evaluation) and a duration so long that the window's
arithmetic leaves the calendar. Both are refused when the workflow loads, naming the field;
the longest duration accepted still evaluates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.config.models import SyncWindow
from reconciler.daemon.windows import AppliedWindow, evaluate


def body(**more: str) -> dict[str, str]:
    return {"kind": "deny", "schedule": "0 1 * * *", "duration": "1h", **more}


@pytest.mark.parametrize("schedule", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_schedule_whose_days_never_occur_in_its_months_is_refused(schedule: str) -> None:
    with pytest.raises(ValueError) as refused:
        SyncWindow.model_validate(body(schedule=schedule))
    assert "schedule" in str(refused.value)
    assert "never fires" in str(refused.value)


@pytest.mark.parametrize("schedule", ["0 0 29 2 *", "0 0 29 2 1", "0 0 31 1-2 *", "0 0 last 2 *"])
def test_a_rare_schedule_that_does_fire_is_accepted(schedule: str) -> None:
    assert SyncWindow.model_validate(body(schedule=schedule)).schedule == schedule


def test_a_window_longer_than_a_century_is_refused_naming_the_duration() -> None:
    with pytest.raises(ValueError) as refused:
        SyncWindow.model_validate(body(duration="20000000h"))
    assert "duration" in str(refused.value)
    assert "at most" in str(refused.value)


def test_the_longest_window_accepted_evaluates_without_leaving_the_calendar() -> None:
    window = SyncWindow.model_validate(body(duration="36500d"))
    verdict = evaluate([AppliedWindow(window, "spec.windows[0]")], datetime(9000, 1, 1, tzinfo=UTC))
    assert verdict is not None and verdict.blocked
