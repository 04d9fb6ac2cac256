"""Time helpers shared by the engine, the store and the daemon.

A leaf module (it imports nothing of ``reconciler``), so any layer may use it. Called by the
engine's journal and runner (timestamps, deadlines, and the timers of a resumed run), the store
(status and lease times) and the daemon's controller.

Two clocks meet here: stored instants are wall-clock UTC (:func:`utcnow`), the only time that
means something to another process or after a restart; the engine waits on a monotonic clock
(the event loop's, or the one a test injects). :func:`on_clock` carries a stored instant over to
the monotonic clock, which is how a resumed run's ``after`` waits, state timeout and run
deadline keep counting from when they began instead of from the restart.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current wall-clock time, timezone-aware in UTC: what every stored timestamp uses."""
    return datetime.now(UTC)


def seconds_since(instant: datetime, *, now: datetime) -> float:
    """Seconds from ``instant`` to ``now`` on the wall clock, never negative: an instant ahead
    of ``now`` (the wall clock was set back since) counts as now."""
    return max(0.0, (now - instant).total_seconds())


def on_clock(instant: datetime, *, clock_now: float, wall_now: datetime) -> float:
    """The wall-clock ``instant`` on a monotonic clock that reads ``clock_now`` while the wall
    clock reads ``wall_now``: a reading in the past of that clock, or ``clock_now`` itself for
    an instant that is not in the past. A wait of ``d`` seconds that began at ``instant`` ends
    at ``on_clock(instant, ...) + d`` on that clock: what is left of it, or at once if it is
    over."""
    return clock_now - seconds_since(instant, now=wall_now)


def earliest(*deadlines: float | None) -> float | None:
    """The soonest of ``deadlines`` (``None`` meaning no deadline); ``None`` if there is none."""
    present = [d for d in deadlines if d is not None]
    return min(present) if present else None
