"""Structured logging set-up shared by the daemon and the one-shot commands.

Every part of reconciler logs through ``structlog`` with bound context (workflow, run, state,
revision); this module decides where those lines go and what they look like: always stderr
(stdout is reserved for command output such as ``--output json``), one JSON object per line or
a readable console format (``--log-format``; by default JSON when stderr is not a TTY, console
on a terminal).

One pipeline for every logger. structlog's loggers are stdlib loggers here
(``structlog.stdlib.LoggerFactory``), and a single handler on the stdlib root logger renders
every record with structlog's ``ProcessorFormatter``: reconciler's own lines and those of
uvicorn, httpx, watchfiles, asyncio, SQLAlchemy/aiosqlite, alembic, apscheduler, GitPython and
any plugin's logger get the same keys (``timestamp``, ``level``, ``logger``, ``event``, plus
context) and the same masking, without parsing anyone's text.

Levels per logger: ``--log-level`` is for reconciler and the plugins; the libraries in
:data:`QUIET_LOGGERS` stay at their level there (WARNING for most) unless the operator names
them in ``--log-levels`` (``"aiosqlite=debug,httpx=info"``, :func:`parse_levels`), so
``--log-level debug`` is about reconciler and not 120 lines of aiosqlite.

Context: the controller binds ``workflow``/``revision`` (and ``run`` once a run starts) with
``structlog.contextvars`` for each reconcile, the engine binds all four on its run logger, and
the contextvars are merged into third-party lines too (an httpx request made by an action
carries the run). In JSON, :func:`add_context_keys` gives every line the four keys (``null``
when a line is about no workflow, such as "reconciler started"), so a log query by ``workflow``
or ``run`` never misses a line for want of the key.

Masking: :class:`~reconciler.secrets.redaction.RedactingFilter` is put on every handler of the
root logger (a stdlib record's message, arguments and exception) and
:func:`~reconciler.secrets.redaction.redact_event` runs last before rendering, for every line
whichever logger wrote it (and on reconciler's events before any handler sees them, so a handler
an embedder added gets them masked too); both mask every secret the process has seen
(:data:`~reconciler.secrets.redaction.REGISTRY`).

Called by ``reconciler run`` (:mod:`reconciler.cli.run`) and the other commands
(:mod:`reconciler.cli.app`, :mod:`reconciler.cli.test`); :func:`parse_levels` also by the daemon's
settings, which validate ``--log-levels``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Literal, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from reconciler.secrets.redaction import RedactingFilter, redact_event

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

LogFormat = Literal["auto", "json", "console"]
"""``auto``: JSON lines when stderr is not a terminal, the console format on one."""

CONTEXT_KEYS: tuple[str, ...] = ("workflow", "run", "state", "revision")
"""Keys present on every JSON line (``None`` outside a workflow, a run or a state)."""

URL_LOGGERS: tuple[str, ...] = ("httpx", "httpcore", "urllib3", "hvac", "nats", "redis")
"""Libraries that log request URLs (query strings, userinfo) at INFO or DEBUG."""

QUIET_LOGGERS: Mapping[str, str] = {
    **dict.fromkeys(URL_LOGGERS, "warning"),
    # the store: every statement and every thread hop at debug
    "aiosqlite": "warning",
    "sqlalchemy": "warning",
    "asyncpg": "warning",
    "alembic": "warning",
    # scheduling, file watching, the event loop, git: routine steps the daemon narrates itself
    "apscheduler": "warning",
    "watchfiles": "warning",
    "asyncio": "warning",
    "git": "warning",
    "filelock": "warning",
    "multipart": "warning",
    "python_multipart": "warning",
    # the HTTP server's start and stop are worth a line; its debug is not
    "uvicorn": "info",
    # the CEL binding warns about every failing extension call, which the engine reports as an
    # EvaluationError already
    "cel": "error",
}
"""Third-party loggers and their level unless ``--log-levels`` names them: never below this
(``--log-level error`` lowers them all to errors), whatever ``--log-level`` is."""

_LEVEL_ITEM = re.compile(r"(?P<name>[A-Za-z_][\w.\-]*)\s*=\s*(?P<level>\w+)")


def parse_levels(text: str) -> dict[str, str]:
    """``"aiosqlite=warning, httpx=debug"`` as ``{"aiosqlite": "warning", "httpx": "debug"}``.

    Raises :class:`ValueError` naming the item at fault when an item is not ``logger=level``
    or the level is not one of :data:`LEVELS`; empty text is no override.
    """
    levels: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        found = _LEVEL_ITEM.fullmatch(item)
        if found is None:
            raise ValueError(f"{item!r} is not logger=level (e.g. aiosqlite=warning)")
        level = found.group("level").lower()
        if level not in LEVELS:
            raise ValueError(f"{item!r}: the level is one of {', '.join(LEVELS)}")
        levels[found.group("name")] = level
    return levels


def add_context_keys(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: :data:`CONTEXT_KEYS` on every line, ``None`` when not bound."""
    for key in CONTEXT_KEYS:
        event_dict.setdefault(key, None)
    return event_dict


LEADING_KEYS: tuple[str, ...] = ("timestamp", "level", "logger", "event")
"""The keys every line starts with, in this order (context and the line's own keys follow)."""


def order_keys(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: :data:`LEADING_KEYS` first, so that lines read alike."""
    first = {key: event_dict.pop(key) for key in LEADING_KEYS if key in event_dict}
    return {**first, **event_dict}


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


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler :func:`configure_logging` installs (and replaces when called again)."""


def logger_levels(level: str, overrides: Mapping[str, str] | None = None) -> dict[str, int]:
    """The level of every logger configured by name: the quiet libraries at theirs (or at
    ``level`` when it is higher), then ``overrides`` as given."""
    numeric = LEVELS[level]
    levels = {name: max(numeric, LEVELS[quiet]) for name, quiet in QUIET_LOGGERS.items()}
    levels.update({name: LEVELS[value] for name, value in (overrides or {}).items()})
    return levels


def _shared_chain() -> list[Processor]:
    """What every line gets, from structlog or from a stdlib logger: context, names, time."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _formatter(*, as_json: bool, colors: bool) -> structlog.stdlib.ProcessorFormatter:
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=colors)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # on a terminal, four "None"s per line would only be noise
            *([add_context_keys, order_keys] if as_json else []),
            structlog.processors.format_exc_info,
            redact_event,
            *([] if as_json else [visible_controls]),
            renderer,
        ],
    )


def _through_root(name: str) -> None:
    """Logger ``name`` and its existing children write through the root handler only, at the
    level set for ``name``: a library's own handlers (uvicorn's default configuration installs
    some and stops propagation) would print lines in another format, past the masking."""
    prefix = f"{name}."
    for other, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and (other == name or other.startswith(prefix)):
            logger.handlers.clear()
            logger.propagate = True
            logger.disabled = False
            if other != name:
                logger.setLevel(logging.NOTSET)


def configure_logging(
    level: str,
    *,
    json_lines: bool | None = None,
    stream: TextIO | None = None,
    levels: Mapping[str, str] | None = None,
) -> None:
    """Every logger to stderr through one structlog formatter: JSON lines or console.

    ``json_lines`` ``None`` picks JSON when the output is not a TTY. ``level`` is the threshold
    of reconciler's loggers and of any logger not configured otherwise; ``levels`` (from
    :func:`parse_levels`) sets single loggers, over :data:`QUIET_LOGGERS`. ``stream`` pins the
    output to one stream; by default lines go to whatever ``sys.stderr`` is when they are
    written. Calling it again replaces the previous configuration.
    """
    out: TextIO = stream if stream is not None else cast(TextIO, _CurrentStderr())
    tty = (stream or sys.stderr).isatty()
    as_json = not tty if json_lines is None else json_lines
    numeric = LEVELS.get(level, logging.INFO)
    by_name = logger_levels(level if level in LEVELS else "info", levels)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(out)
    handler.setFormatter(_formatter(as_json=as_json, colors=tty))
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, value in by_name.items():
        _through_root(name)
        logging.getLogger(name).setLevel(value)
    for each in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in each.filters):
            each.addFilter(RedactingFilter())

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_chain(),
            # masked before any handler sees the event: one an embedder added renders it too
            redact_event,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        # the cheap first cut: nothing below the lowest level any logger is set to
        wrapper_class=structlog.make_filtering_bound_logger(min([numeric, *by_name.values()])),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
