"""Time helpers shared by the engine, the store and the daemon.

A leaf module (it imports nothing of ``reconciler``), so any layer may use it. Called by the
engine's journal and runner (timestamps, deadlines), the store (status and lease times) and the
daemon's controller.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current wall-clock time, timezone-aware in UTC: what every stored timestamp uses."""
    return datetime.now(UTC)


def earliest(*deadlines: float | None) -> float | None:
    """The soonest of ``deadlines`` (``None`` meaning no deadline); ``None`` if there is none."""
    present = [d for d in deadlines if d is not None]
    return min(present) if present else None
