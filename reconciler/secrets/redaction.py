"""Redaction: replace every known secret value with ``***`` before text leaves the process.

One :class:`Redactor` lives per run (the runner, ``engine/runner.py``, creates it and registers
every value the resolver returned). Everything the run writes — journal details, error messages,
log lines, outputs kept in the store — passes through it first, and plugins get
:meth:`Redactor.redact` as ``ActionContext.redact`` for free text they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Redactor:
    """Knows a run's secret values and masks them wherever they appear.

    Every non-empty value is registered (even very short ones: a leaked short password is still
    a leak). Values are replaced longest first, so a secret that contains another is masked
    whole. Callers may rely on ``redact`` never returning any registered value as a substring.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        """Register a secret value (and its stripped form, if it differs)."""
        for candidate in (value, value.strip()):
            if candidate and candidate not in self._values:
                self._values.append(candidate)
        self._values.sort(key=len, reverse=True)

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        """``text`` with every registered value replaced by ``***``."""
        if not self._values or not text:
            return text
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def redact_obj(self, obj: Any) -> Any:
        """A copy of a JSON-like structure with strings (keys included) redacted."""
        if not self._values:
            return obj
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {
                (self.redact(k) if isinstance(k, str) else k): self.redact_obj(v)
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v) for v in obj]
        return obj


class RedactingLogger:
    """Wraps a structlog (or stdlib) logger so every event and string value is redacted.

    Handed to plugins as ``ActionContext.logger`` and used by the engine itself, so a log line can
    never carry a secret the run knows, whatever the logging configuration is.
    """

    def __init__(self, logger: Any, redactor: Redactor) -> None:
        self._logger = logger
        self._redactor = redactor

    def bind(self, **values: Any) -> RedactingLogger:
        bound = self._logger.bind(**self._redactor.redact_obj(values))
        return RedactingLogger(bound, self._redactor)

    def is_enabled_for(self, level: int) -> bool:
        """False when the wrapped logger drops ``level`` (``logging.INFO``...) anyway."""
        enabled = getattr(self._logger, "is_enabled_for", None)  # structlog's filtering loggers
        return enabled is None or bool(enabled(level))

    def _emit(self, level: str, event: str, *args: Any, **kw: Any) -> Any:
        if not self.is_enabled_for(_LEVELS[level]):
            return None  # a disabled level costs no redaction
        event = self._redactor.redact(str(event))
        if args:  # stdlib-style %-formatting: format first, then redact the result
            try:
                event = self._redactor.redact(event % args)
            except (TypeError, ValueError):
                event = self._redactor.redact(" ".join([event, *map(str, args)]))
        safe = {
            k: (
                v
                if isinstance(v, bool | int | float) or v is None
                else self._redactor.redact_obj(
                    v if isinstance(v, str | Mapping | list | tuple) else str(v)
                )
            )
            for k, v in kw.items()
            if k != "exc_info"
        }
        return getattr(self._logger, level)(event, **safe)

    def debug(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._emit("debug", event, *args, **kw)

    def info(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._emit("info", event, *args, **kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._emit("warning", event, *args, **kw)

    warn = warning

    def error(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._emit("error", event, *args, **kw)

    def exception(self, event: str, *args: Any, **kw: Any) -> Any:
        # Tracebacks may quote secrets from locals or messages: log the event only.
        return self._emit("error", event, *args, **kw)
