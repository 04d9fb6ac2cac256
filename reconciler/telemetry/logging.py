"""Structured logging set-up shared by the daemon and the one-shot commands.

Every part of reconciler logs through ``structlog`` with bound context (workflow, run, state,
revision); this module decides where those lines go: always stderr (stdout is reserved for
command output such as ``--output json``), JSON lines when stderr is not a TTY, a readable
console format otherwise.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str, *, json_lines: bool | None = None) -> None:
    """structlog (and stdlib logging) to stderr: JSON when not a TTY, console otherwise."""
    as_json = not sys.stderr.isatty() if json_lines is None else json_lines
    numeric = LEVELS.get(level, logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(name)s: %(message)s")
    logging.getLogger().setLevel(numeric)
    # apscheduler and alembic narrate routine steps at INFO; the daemon says what matters itself.
    for chatty in ("apscheduler", "alembic"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
