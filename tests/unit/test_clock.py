"""Carrying a stored wall-clock instant over to a monotonic clock: what a resumed run's timers
count from. Instants are given explicitly; nothing here reads a clock or sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.clock import on_clock, seconds_since

WALL = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_seconds_since_counts_wall_clock_time_up_to_now() -> None:
    assert seconds_since(WALL - timedelta(seconds=3.5), now=WALL) == 3.5


def test_an_instant_ahead_of_now_counts_as_now() -> None:
    # the wall clock was set back while the daemon was down: no negative time has passed
    assert seconds_since(WALL + timedelta(minutes=5), now=WALL) == 0.0


def test_a_wait_begun_before_a_restart_ends_after_only_what_is_left_of_it() -> None:
    began = WALL - timedelta(seconds=3)  # a wait of 8 s, 3 s of it spent before the restart
    start_of_wait = on_clock(began, clock_now=1000.0, wall_now=WALL)
    assert start_of_wait == 997.0
    assert start_of_wait + 8 - 1000.0 == 5.0  # 5 s left on the new process's clock


def test_a_wait_that_ran_out_while_stopped_ends_in_the_past_of_the_new_clock() -> None:
    began = WALL - timedelta(minutes=10)
    assert on_clock(began, clock_now=50.0, wall_now=WALL) + 8 < 50.0


def test_an_instant_from_the_future_is_carried_over_as_now() -> None:
    assert on_clock(WALL + timedelta(hours=1), clock_now=50.0, wall_now=WALL) == 50.0
