"""Structured logging set-up shared by the daemon and the one-shot commands.

Every part of reconciler logs through ``structlog`` with bound context (workflow, run, state,
revision); this module decides where those lines go: always stderr (stdout is reserved for
command output such as ``--output json``), JSON lines when stderr is not a TTY, a readable
console format otherwise.

The controller binds ``workflow``/``revision`` (and ``run`` once a run starts) with
``structlog.contextvars`` for each reconcile, the engine binds all four on its run logger, and
:func:`add_context_keys` gives every JSON line the four keys (``null`` when a line is about no
workflow, such as "reconciler started"), so a log query by ``workflow`` or ``run`` never
misses a line for want of the key.

Every line is masked on its way out, whichever logger wrote it: :func:`configure_logging` puts
:class:`~reconciler.secrets.redaction.RedactingFilter` on every handler of the root logger
(stdlib loggers: httpx, uvicorn, hvac, SQLAlchemy, plugins) and
:func:`~reconciler.secrets.redaction.redact_event` in structlog's chain, both masking every
secret the process has seen (:data:`~reconciler.secrets.redaction.REGISTRY`). Libraries that
print request URLs at INFO (:data:`URL_LOGGERS`) are held at WARNING unless the level is debug.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO, cast

import structlog
from structlog.typing import EventDict, WrappedLogger

from reconciler.secrets.redaction import RedactingFilter, redact_event

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

CONTEXT_KEYS: tuple[str, ...] = ("workflow", "run", "state", "revision")
"""Keys present on every log line (``None`` outside a workflow, a run or a state)."""

URL_LOGGERS: tuple[str, ...] = ("httpx", "httpcore", "urllib3", "hvac", "nats", "redis")
"""Libraries that log request URLs (query strings, userinfo) at INFO: WARNING unless debug."""


def add_context_keys(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: :data:`CONTEXT_KEYS` on every line, ``None`` when not bound."""
    for key in CONTEXT_KEYS:
        event_dict.setdefault(key, None)
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing, not at configuration.

    Test runners and embedding code swap ``sys.stderr``; binding the object present when
    logging was configured would later write into a closed stream.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible_controls(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Console lines only: the event's control characters (newline and tab kept) as visible
    ``\\xNN`` text. The console renderer writes the event as it is, and it may quote a
    comment or a workflow's message carrying ``ESC`` sequences that would drive the terminal;
    other values it already shows with ``repr``."""
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", event)
    return event_dict


def configure_logging(
    level: str, *, json_lines: bool | None = None, stream: TextIO | None = None
) -> None:
    """structlog (and stdlib logging) to stderr: JSON when not a TTY, console otherwise.

    ``stream`` pins the output to one stream; by default lines go to whatever ``sys.stderr``
    is when they are written.
    """
    out: TextIO = stream if stream is not None else cast(TextIO, _CurrentStderr())
    tty = (stream or sys.stderr).isatty()
    as_json = not tty if json_lines is None else json_lines
    numeric = LEVELS.get(level, logging.INFO)
    logging.basicConfig(level=numeric, stream=out, format="%(name)s: %(message)s")
    logging.getLogger().setLevel(numeric)
    # apscheduler and alembic narrate routine steps at INFO; the daemon says what matters itself.
    for chatty in ("apscheduler", "alembic"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
    # httpx says "HTTP Request: GET <url>" at INFO for every request: the url may carry a key.
    for noisy in URL_LOGGERS:
        logging.getLogger(noisy).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=tty)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            # on a terminal, four "None"s per line would only be noise
            *([add_context_keys] if as_json else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            *([] if as_json else [visible_controls]),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
