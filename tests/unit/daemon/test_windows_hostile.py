"""Change windows a committer writes to hurt the daemon: a schedule that never fires (whose
search runs to the year 9999 at every evaluation) and a duration so long that the window's
arithmetic leaves the calendar. Both are refused when the workflow loads, naming the field;
the longest duration accepted still evaluates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.config.models import OperatorWindow, SyncWindow
from reconciler.daemon.windows import MAX_STEPS, AppliedWindow, _next_fire, evaluate


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


def test_windows_whose_openings_merge_for_good_cost_little_when_asked_again() -> None:
    """A minutely window open for two minutes never closes: each evaluation follows its
    openings up to ``MAX_STEPS``. The API's workflow list, ``/metrics`` and the planner ask
    again every few seconds; asking again must not redo that walk's schedule arithmetic (the
    walk computes each window's firings once; a later ask computes at most one new one)."""
    windows = [
        AppliedWindow(
            SyncWindow.model_validate(
                {"kind": "deny", "schedule": "* * * * *", "duration": f"{120 + i}s"}
            ),
            f"spec.windows[{i}]",
        )
        for i in range(20)
    ]
    now = datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC)
    _next_fire.cache_clear()
    before = _next_fire.cache_info().misses
    evaluate(windows, now)
    walked = _next_fire.cache_info().misses - before
    assert walked >= MAX_STEPS  # the first ask does walk the openings
    before = _next_fire.cache_info().misses
    for second in range(20):
        verdict = evaluate(windows, now.replace(second=31 + second))
        assert verdict is not None and verdict.blocked
    assert _next_fire.cache_info().misses - before <= 20  # one new firing per ask, at most


def test_a_workflows_own_allow_window_does_not_open_the_operators_allow_only_policy() -> None:
    """The operator lets runs start only at night; a commit adds an allow window that is
    always open. Each side's allow windows restrict on their own: runs start only while one
    of the operator's and (when the workflow has some) one of its own are open."""
    nightly = OperatorWindow.model_validate(
        {"kind": "allow", "schedule": "0 22 * * *", "duration": "2h"}
    )
    always = SyncWindow.model_validate({"kind": "allow", "schedule": "* * * * *", "duration": "2m"})
    applied = [
        AppliedWindow(always, "spec.windows[0]"),
        AppliedWindow(nightly, "windows-file[0]"),
    ]
    noon = evaluate(applied, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    assert noon is not None and noon.blocked
    assert [w.source for w in noon.windows] == ["windows-file[0]"]
    assert noon.until == datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    night = evaluate(applied, datetime(2026, 12, 7, 23, 0, tzinfo=UTC))
    assert night is not None and not night.blocked
    own_closed = [
        AppliedWindow(
            SyncWindow.model_validate({"kind": "allow", "schedule": "0 3 * * *", "duration": "1h"}),
            "spec.windows[0]",
        ),
        AppliedWindow(nightly, "windows-file[0]"),
    ]
    late = evaluate(own_closed, datetime(2026, 12, 7, 23, 0, tzinfo=UTC))
    assert late is not None and late.blocked
    assert [w.source for w in late.windows] == ["spec.windows[0]"]


def test_a_schedule_longer_than_a_cron_line_needs_is_refused() -> None:
    """Three thousand ``0-59`` items in the minute field make every step of a window's walk
    try each of them: ten seconds of the event loop for one window. A schedule is at most
    100 characters, far more than any real crontab line's five fields."""
    minutes = ",".join(["0-59"] * 3000)
    with pytest.raises(ValueError) as refused:
        SyncWindow.model_validate(body(schedule=f"{minutes} * * * *"))
    assert "schedule" in str(refused.value)
    assert "100 characters" in str(refused.value)
    busy = "0,5,10,15,20,25,30,35,40,45,50,55 0-6,18-23 1-7,15-21 1,3,5,7,9,11 mon-fri"
    assert SyncWindow.model_validate(body(schedule=busy)).schedule == busy


def test_a_window_description_longer_than_a_line_is_refused() -> None:
    """The description goes into every status message, log line and 409 refusal that names
    the window, at every check: a commit must not make each of them a megabyte."""
    with pytest.raises(ValueError) as refused:
        SyncWindow.model_validate({**body(), "description": "freeze " * 100_000})
    assert "description" in str(refused.value)
    assert "200 characters" in str(refused.value)
