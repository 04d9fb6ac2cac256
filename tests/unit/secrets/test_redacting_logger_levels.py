"""RedactingLogger and log levels: a level the wrapped logger drops is dropped before redaction.

The engine's state loop asks :meth:`RedactingLogger.is_enabled_for` once per run and skips its
per-transition lines when ``info`` is off; what is emitted is still redacted.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

from reconciler.secrets.redaction import RedactingLogger, Redactor

SECRET = "hunter2-level-canary"


def _logger(level: int) -> tuple[RedactingLogger, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def keep(_logger: Any, method: str, event: Any) -> Any:
        seen.append({"method": method, **event})
        raise structlog.DropEvent

    wrapped = structlog.wrap_logger(
        structlog.PrintLogger(),
        processors=[keep],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )
    return RedactingLogger(wrapped, Redactor([SECRET])), seen


def test_levels_below_the_wrapped_loggers_threshold_are_off_and_emit_nothing() -> None:
    log, seen = _logger(logging.WARNING)
    assert not log.is_enabled_for(logging.INFO)
    assert log.is_enabled_for(logging.WARNING) and log.is_enabled_for(logging.ERROR)
    log.info("state entered", state="a", token=SECRET)
    log.debug("detail %s", SECRET)
    assert seen == []


def test_enabled_levels_are_emitted_redacted() -> None:
    log, seen = _logger(logging.INFO)
    assert log.is_enabled_for(logging.INFO)
    log.bind(run="r1").info("transition", to="b", note=f"with {SECRET}")
    log.warning("failed: %s", SECRET)
    assert [(e["method"], e["event"]) for e in seen] == [
        ("info", "transition"),
        ("warning", "failed: ***"),
    ]
    assert seen[0]["note"] == "with ***" and seen[0]["run"] == "r1"
    assert SECRET not in repr(seen)


def test_a_logger_that_cannot_tell_its_level_is_taken_as_enabled() -> None:
    calls: list[str] = []

    class Bare:
        def info(self, event: str, **kw: Any) -> None:
            calls.append(event)

    log = RedactingLogger(Bare(), Redactor())
    assert log.is_enabled_for(logging.DEBUG)
    log.info("hello")
    assert calls == ["hello"]
