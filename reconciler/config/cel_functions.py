"""The functions CEL expressions may call beyond the CEL standard: strings and a clock.

The ``cel`` binding implements the CEL specification's standard library (``size``,
``contains``, ``matches``, ``timestamp``, ...) but not the extensions Kubernetes and cel-go
users reach for. This module supplies the string extension of cel-go (``ext.Strings``):
``charAt``, ``indexOf``, ``lastIndexOf``, ``lowerAscii``, ``upperAscii``, ``replace``,
``split``, ``substring``, ``trim`` and ``join``, and a clock, ``now()``.

Called by :mod:`reconciler.config.expressions`, which hands :func:`functions` to every
evaluation (inline and in the worker process). Every function checks its argument types and
ranges and raises :class:`TypeError`, :class:`IndexError` or :class:`ValueError` with a message
naming the function; the evaluator turns any of them into an
:class:`~reconciler.errors.EvaluationError`, so a wrong call fails the expression, never the
daemon.

What a caller may rely on:

* Each function may be called as a method or as a function (``"a b".split(" ")`` or
  ``split("a b", " ")``), as CEL treats the two alike.
* No function builds a string longer than :data:`MAX_RESULT_CHARS` characters or a list longer
  than :data:`MAX_RESULT_ITEMS` items: the size is computed before the result is, so a chain
  of ``replace`` calls that would grow a string exponentially is refused at the first step
  over the limit. The cost budget (:mod:`reconciler.config.cost`) bounds the time; these
  bound the memory.
* ``now()`` is the wall-clock time, in UTC, at which the evaluation of the expression began:
  every ``now()`` of one expression returns the same instant, so ``now() == now()`` holds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = [
    "MAX_RESULT_CHARS",
    "MAX_RESULT_ITEMS",
    "STRING_FUNCTIONS",
    "functions",
]

MAX_RESULT_CHARS = 16 * 1024 * 1024
"""Longest string a function may return (the size of the largest file a workflow may read by
default)."""

MAX_RESULT_ITEMS = 1_000_000
"""Longest list ``split`` may return."""


def _string(function: str, value: Any, what: str = "receiver") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{function}: the {what} must be a string, got {_type(value)}")
    return value


def _int(function: str, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{function}: the {what} must be an int, got {_type(value)}")
    return value


def _type(value: Any) -> str:
    names = {str: "string", bool: "bool", int: "int", float: "double", list: "list", dict: "map"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check_index(function: str, index: int, text: str, what: str = "index") -> None:
    if not 0 <= index <= len(text):
        raise IndexError(
            f"{function}: {what} {index} is out of range for a string of {len(text)} characters"
        )


def _checked_length(function: str, length: int) -> None:
    if length > MAX_RESULT_CHARS:
        raise ValueError(
            f"{function}: the result would be {length:,} characters long, over the limit of "
            f"{MAX_RESULT_CHARS:,}"
        )


def char_at(text: Any, index: Any) -> str:
    """The character at ``index``; ``""`` at the end of the string (``index == size``)."""
    s = _string("charAt", text)
    i = _int("charAt", index, "index")
    _check_index("charAt", i, s)
    return s[i] if i < len(s) else ""


def index_of(text: Any, sub: Any, offset: Any = 0) -> int:
    """The index of the first ``sub`` at or after ``offset``, or -1."""
    s = _string("indexOf", text)
    needle = _string("indexOf", sub, "argument")
    start = _int("indexOf", offset, "offset")
    _check_index("indexOf", start, s, "offset")
    return s.find(needle, start)


def last_index_of(text: Any, sub: Any, offset: Any = None) -> int:
    """The index of the last ``sub`` starting at or before ``offset`` (default: the end), or
    -1."""
    s = _string("lastIndexOf", text)
    needle = _string("lastIndexOf", sub, "argument")
    if offset is None:
        return s.rfind(needle)
    end = _int("lastIndexOf", offset, "offset")
    _check_index("lastIndexOf", end, s, "offset")
    return s.rfind(needle, 0, end + len(needle))


def lower_ascii(text: Any) -> str:
    """``text`` with the ASCII letters A-Z lowered; other characters as they are."""
    return _string("lowerAscii", text).translate(_LOWER)


def upper_ascii(text: Any) -> str:
    """``text`` with the ASCII letters a-z raised; other characters as they are."""
    return _string("upperAscii", text).translate(_UPPER)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def replace(text: Any, old: Any, new: Any, limit: Any = -1) -> str:
    """``text`` with ``old`` replaced by ``new``, at most ``limit`` times (negative: all)."""
    s = _string("replace", text)
    before = _string("replace", old, "string to replace")
    after = _string("replace", new, "replacement")
    most = _int("replace", limit, "limit")
    found = s.count(before) if before else len(s) + 1
    count = found if most < 0 else min(found, most)
    _checked_length("replace", len(s) + count * (len(after) - len(before)))
    return s.replace(before, after, count)


def split(text: Any, separator: Any, limit: Any = -1) -> list[str]:
    """``text`` cut at every ``separator`` (into characters for ``""``); a ``limit`` ``n > 0``
    keeps at most ``n`` pieces, the last holding the rest; 0 gives ``[]``; negative, all."""
    s = _string("split", text)
    sep = _string("split", separator, "separator")
    most = _int("split", limit, "limit")
    if most == 0:
        return []
    found = s.count(sep) + 1 if sep else len(s)
    pieces = found if most < 0 else min(found, most)
    if pieces > MAX_RESULT_ITEMS:
        raise ValueError(
            f"split: the result would have {pieces:,} items, over the limit of {MAX_RESULT_ITEMS:,}"
        )
    if sep:
        return s.split(sep) if most < 0 else s.split(sep, most - 1)
    if most < 0 or most >= len(s):
        return list(s)
    return [*s[: most - 1], s[most - 1 :]]


def substring(text: Any, start: Any, end: Any = None) -> str:
    """The characters from ``start`` (included) to ``end`` (excluded; default: the end)."""
    s = _string("substring", text)
    first = _int("substring", start, "start")
    last = len(s) if end is None else _int("substring", end, "end")
    _check_index("substring", first, s, "start")
    _check_index("substring", last, s, "end")
    if first > last:
        raise IndexError(f"substring: start {first} is after end {last}")
    return s[first:last]


def trim(text: Any) -> str:
    """``text`` without leading and trailing whitespace (Unicode white space, as cel-go)."""
    return _string("trim", text).strip()


def join(items: Any, separator: Any = "") -> str:
    """The strings of ``items`` joined by ``separator``."""
    if not isinstance(items, list):
        raise TypeError(f"join: the receiver must be a list of strings, got {_type(items)}")
    sep = _string("join", separator, "separator")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"join: item {i} is {_type(item)}, not a string")
    _checked_length("join", sum(map(len, items)) + len(sep) * max(0, len(items) - 1))
    return sep.join(items)


STRING_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "charAt": char_at,
    "indexOf": index_of,
    "lastIndexOf": last_index_of,
    "lowerAscii": lower_ascii,
    "upperAscii": upper_ascii,
    "replace": replace,
    "split": split,
    "substring": substring,
    "trim": trim,
    "join": join,
}
"""cel-go's string extension, by the name expressions call."""


def functions(now: datetime) -> dict[str, Callable[..., Any]]:
    """Every extension function for one evaluation whose ``now()`` is ``now`` (aware, UTC)."""

    def clock() -> datetime:
        return now

    return {**STRING_FUNCTIONS, "now": clock}
