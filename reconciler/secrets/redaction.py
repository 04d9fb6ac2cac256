"""Redaction: replace every known secret value with ``***`` before text leaves the process.

Two layers, one masking rule:

* One :class:`Redactor` lives per run (the runner, ``engine/runner.py``, creates it and registers
  every value the resolver returned). Everything the run writes — journal details, error
  messages, log lines, outputs kept in the store — passes through it first, and plugins get
  :meth:`Redactor.redact` as ``ActionContext.redact`` for free text they return.
* Every value a :class:`Redactor` learns is also registered with the process-wide
  :data:`REGISTRY`, beside the daemon's own secrets (API token, webhook secret, Vault token,
  store and repository passwords: :func:`register_secret`). :class:`RedactingFilter` (on every
  handler of the root logger) and :func:`redact_event` (a structlog processor) mask them in every
  log line of every logger — httpx, uvicorn, hvac, SQLAlchemy, a third-party plugin's — whatever
  the line's format: message, arguments and exception text.

Masking is not limited to exact copies: :func:`secret_forms` lists what a value looks like once
formatted by the usual means — percent-encoded (``quote``, ``quote_plus``), JSON-escaped,
``repr``-escaped (``\\n`` as ``\\\\n``, the ``b'...'`` form of its bytes), base64 (standard and
urlsafe, alone or inside a longer encoded string such as a Basic ``user:password``) — and every
form is masked. All forms are matched by one precompiled regular expression built as a trie of
the forms, so the cost of a line barely grows with the number of secrets.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import ValidationError
from structlog.typing import EventDict, WrappedLogger

MASK = "***"
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_MIN_B64_CORE = 8
"""Shortest base64 fragment masked on its own (shorter ones would hit unrelated text)."""


def _b64_forms(raw: bytes) -> set[str]:
    """The base64 text (standard and urlsafe) of ``raw``, alone and inside a longer encoding.

    Inside a longer string (``user:password`` of Basic auth) the encoding of ``raw`` depends on
    its offset modulo 3; for each offset the characters that depend only on ``raw``'s bytes are
    the same whatever surrounds it, so masking them leaves at most two bytes' worth at each end.
    """
    found = {base64.b64encode(raw).decode()}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        first = 1 if offset else 0  # the first group mixes prefix bytes
        last = (offset + len(raw)) // 3  # the groups made of raw's bytes only
        core = encoded[first * 4 : last * 4].decode()
        if len(core) >= _MIN_B64_CORE:
            found.add(core)
    return found | {f.replace("+", "-").replace("/", "_") for f in found}


def secret_forms(value: str) -> set[str]:
    """Every text ``value`` may turn into when formatted, itself included (empty ones left out).

    Covers the stripped value, URL encodings (``quote`` with and without ``/`` kept,
    ``quote_plus``), JSON string escaping (ASCII and not), ``repr`` of the string and of its UTF-8
    bytes (what ``b'line1\\nline2'`` shows), the same escapings applied twice (a ``repr`` inside
    a JSON log line), and base64 (see :func:`_b64_forms`).
    """
    forms: set[str] = set()
    for v in {value, value.strip()}:
        if not v:
            continue
        raw = v.encode("utf-8", errors="surrogatepass")
        escaped = {
            v,
            quote(v, safe=""),
            quote(v),
            quote_plus(v),
            json.dumps(v)[1:-1],
            json.dumps(v, ensure_ascii=False)[1:-1],
            repr(v)[1:-1],
            repr(raw)[2:-1],
        }
        forms |= escaped
        forms |= {json.dumps(e)[1:-1] for e in escaped}
        forms |= {repr(e)[1:-1] for e in escaped}
        if len(raw) >= 6:
            forms |= _b64_forms(raw)
    forms.discard("")
    return forms


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@lru_cache(maxsize=4096)
def _char(char: str) -> str:
    """The pattern of one character of a secret: itself or percent-encoded (any hex case; a
    space also as ``+``), so every mix of raw and encoded characters that URL libraries make
    (httpx keeps ``@`` and ``:`` in a path, ``quote`` does not) is matched."""
    if char in _UNRESERVED:
        return char
    encoded = "".join(f"%{b:02X}" for b in char.encode("utf-8", errors="surrogatepass"))
    options = [re.escape(char), f"(?i:{re.escape(encoded)})"]
    if char == " ":
        options.append(r"\+")
    return f"(?:{'|'.join(options)})"


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, longest first, as a trie of characters.

    Python's ``re`` tries the alternatives of ``a|b|c`` one after the other at each position; a
    trie shares prefixes, so a line costs about the same with 10 or 10,000 words. Each
    character also matches its percent-encoded form (:func:`_char`).
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        # iterative over long single-child chains, recursive at branches (depth = branching)
        out = []
        while True:
            branches = sorted(k for k in node if k)
            ends_here = "" in node
            if len(branches) == 1 and not ends_here:
                out.append(_char(branches[0]))
                node = node[branches[0]]
                continue
            if not branches:
                return "".join(out)
            alternatives = "|".join(_char(c) + emit(node[c]) for c in branches)
            out.append(f"(?:{alternatives})" + ("?" if ends_here else ""))
            return "".join(out)

    return emit(trie)


@lru_cache(maxsize=256)
def _compile(values: frozenset[str]) -> re.Pattern[str] | None:
    """The pattern masking every form of ``values`` (cached: runs reuse the same secrets)."""
    forms: set[str] = set()
    for value in values:
        forms |= secret_forms(value)
    if not forms:
        return None
    return re.compile(_trie_pattern(forms))


def describe_validation_error(exc: ValidationError) -> str:
    """``exc`` as ``loc: message; ...``, without the input values pydantic's ``str`` quotes.

    ``str(ValidationError)`` shows ``input_value=...`` (shortened to its last characters, which
    defeats exact-match redaction) and a documentation URL; the data validated here was rendered
    with the run's secrets, so only where the problem is and what it is are kept.
    """
    parts = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "request"
        parts.append(f"{where}: {error['msg']}")
    count = len(parts)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun}: " + "; ".join(parts)


MIN_LOGGED_SECRET = 4
"""Shortest value the process-wide registry masks in every logger's lines."""


class SecretRegistry:
    """Every secret value this process has seen, for the log filters (process-wide).

    Values stay registered for ``ttl`` seconds after they were last registered (a run's values
    are registered again by every run that resolves them), at most ``limit`` of them (the
    oldest go first); the daemon's own secrets (``permanent=True``) never expire. The pattern is
    rebuilt only when the set of values changes, on the next line logged. Thread-safe: hvac and
    the store's drivers log from worker threads.

    Values shorter than :data:`MIN_LOGGED_SECRET` characters are not registered: masking every
    ``ab`` in every line of every logger would make the log unreadable and protect next to
    nothing. The run that resolved such a value still masks it in its own journal, outputs and
    log lines (its :class:`Redactor` keeps every value).
    """

    def __init__(self, *, ttl: float = 24 * 3600.0, limit: int = 10_000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._permanent: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False
        self._next_sweep = 0.0

    def add(self, value: str, *, permanent: bool = False) -> None:
        """Register ``value`` (and every form of it); values shorter than
        :data:`MIN_LOGGED_SECRET` are ignored."""
        if len(value) < MIN_LOGGED_SECRET:
            return
        with self._lock:
            if permanent:
                self._dirty |= value not in self._permanent
                self._permanent.add(value)
                return
            self._dirty |= value not in self._seen
            self._seen.pop(value, None)  # re-insert: the dict stays ordered by last use
            self._seen[value] = time.monotonic()
            if len(self._seen) > self.limit:
                del self._seen[next(iter(self._seen))]
                self._dirty = True

    def discard(self, value: str) -> None:
        """Forget ``value`` (tests; a rotated daemon secret)."""
        with self._lock:
            if self._seen.pop(value, None) is not None or value in self._permanent:
                self._permanent.discard(value)
                self._dirty = True

    def __len__(self) -> int:
        return len(self._seen.keys() | self._permanent)

    def pattern(self) -> re.Pattern[str] | None:
        """The pattern of every registered value's forms; None when nothing is registered."""
        now = time.monotonic()
        if not self._dirty and now < self._next_sweep:
            return self._pattern
        with self._lock:
            if now >= self._next_sweep:
                self._next_sweep = now + min(60.0, self.ttl)
                stale = [v for v, seen in self._seen.items() if now - seen > self.ttl]
                for value in stale:
                    del self._seen[value]
                self._dirty |= bool(stale)
            if self._dirty:
                values = frozenset(self._seen.keys() | self._permanent)
                self._pattern = _compile(values)
                self._dirty = False
            return self._pattern

    def redact(self, text: str) -> str:
        """``text`` with every form of every registered value replaced by ``***``."""
        pattern = self.pattern()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)


REGISTRY = SecretRegistry()
"""The process's registry: what :class:`RedactingFilter` and :func:`redact_event` mask."""


def register_secret(value: str | None, *, permanent: bool = True) -> None:
    """Have every log line of the process mask ``value`` from now on (the daemon's own secrets)."""
    if value:
        REGISTRY.add(value, permanent=permanent)


class Redactor:
    """Knows a run's secret values and masks them, in every form, wherever they appear.

    Every non-empty value is registered (even very short ones: a leaked short password is still
    a leak), here and in the process-wide :data:`REGISTRY` (so logs of other libraries mask it
    too). A secret that contains another is masked whole. Callers may rely on ``redact`` never
    returning any registered value, nor any of its :func:`secret_forms`, as a substring.
    """

    def __init__(
        self, values: Iterable[str] = (), *, registry: SecretRegistry | None = None
    ) -> None:
        self._values: list[str] = []
        self._registry = REGISTRY if registry is None else registry
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        """Register a secret value (and its stripped form, if it differs)."""
        for candidate in (value, value.strip()):
            if candidate and candidate not in self._values:
                self._values.append(candidate)
                self._registry.add(candidate)
                self._pattern = None
        self._values.sort(key=len, reverse=True)

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        """``text`` with every registered value, in every form, replaced by ``***``."""
        if not self._values or not text:
            return text
        if self._pattern is None:
            self._pattern = _compile(frozenset(self._values))
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

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

    def __init__(
        self, logger: Any, redactor: Redactor, context: Mapping[str, Any] | None = None
    ) -> None:
        self._logger = logger
        self._redactor = redactor
        self._context = dict(context or {})
        self._bound: Any = None

    def bind(self, **values: Any) -> RedactingLogger:
        """A logger with ``values`` added to every line. Binding is deferred to the first line
        logged (most probes log nothing), and the values are redacted then, with every secret
        the run knows by that time."""
        return RedactingLogger(self._logger, self._redactor, {**self._context, **values})

    def _target(self) -> Any:
        if self._bound is None:
            self._bound = (
                self._logger.bind(**self._redactor.redact_obj(self._context))
                if self._context
                else self._logger
            )
        return self._bound

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
        return getattr(self._target(), level)(event, **safe)

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


class RedactingFilter(logging.Filter):
    """Masks every secret of :data:`REGISTRY` in a log record: message, arguments, exception.

    Installed on every handler of the root logger by ``configure_logging``, so it sees the
    records of every logger that propagates (httpx, uvicorn, hvac, SQLAlchemy, asyncio, nats,
    a plugin's own), at whatever level they were let through: a record below the level never
    reaches a handler, so it costs nothing here. The record is formatted once (``msg % args``),
    and only when that text holds a secret is it replaced (``args`` emptied). Never drops a
    record.
    """

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self._registry = REGISTRY if registry is None else registry

    def filter(self, record: logging.LogRecord) -> bool:
        pattern = self._registry.pattern()
        if pattern is None:
            return True
        if not isinstance(record.msg, dict):  # a structlog event is masked by redact_event
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: show the parts, masked
                message = " ".join(map(str, (record.msg, *(record.args or ()))))
                record.msg, record.args = message, None
            masked = pattern.sub(MASK, message)
            if masked != message:
                record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = pattern.sub(MASK, record.exc_text)
        if record.stack_info:
            record.stack_info = pattern.sub(MASK, record.stack_info)
        return True


def _redact_value(value: Any, redact: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {_redact_value(k, redact): _redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, redact) for v in value]
    text = str(value)
    masked = redact(text)
    return value if masked == text else masked


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: :data:`REGISTRY`'s secrets masked in every value of the event.

    Placed after ``format_exc_info`` (tracebacks are text by then) and before the renderer, so
    the JSON or console line is built from masked values only.
    """
    if REGISTRY.pattern() is None:
        return event_dict
    return {key: _redact_value(value, REGISTRY.redact) for key, value in event_dict.items()}
