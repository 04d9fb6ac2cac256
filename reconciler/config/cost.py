"""What a CEL expression may cost to evaluate, before it is evaluated.

The ``cel`` binding (``common-expression-language``) has no cost limit of its own, and one short
expression can be very expensive: four nested comprehensions over a 60-element list visit
60⁴ = 13 million elements and take seconds. Anyone who can commit writes expressions, so the
engine bounds them in two steps:

* statically (:func:`static_problem`, reported by ``reconciler validate`` as ``path:line:col``):
  comprehension macros (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) nested deeper
  than :data:`MAX_COMPREHENSION_DEPTH`, or an expression longer than :data:`MAX_SOURCE_LENGTH`;
* at evaluation time (:func:`estimate`), from the actual sizes in scope: the cost in **units**,
  roughly one per element a comprehension visits. A comprehension over a field of the scope
  (``inputs.hosts``) counts that field's size; over anything else (a literal, ``a + b``, the
  result of another macro) it counts every list element, map entry and string character of the
  whole scope, once per ``+`` in it, an upper bound. Nested comprehensions multiply;
  linear-time string functions (``matches``, ``contains``, ...) and ``in`` add
  ``1 + longest / 64`` units per call, ``longest`` being the largest string or collection in
  scope. Concatenation copies: a chain of ``p`` ``+`` operators over strings or lists of up to
  ``longest`` items builds ``p`` results of up to ``p + 1`` times that, so it adds
  ``p (p + 1) (1 + longest / 64)`` units (``observed.content + observed.content + ...`` over a
  16 MiB file is quadratic and would hold the event loop for minutes). The string extension
  functions (``split``, ``lowerAscii``, ...) are linear calls too, and those that build a new
  value out of every character (:data:`GROWING`: ``split``, ``join``, ``replace``) cost more
  and compound in a chain like ``+`` does: ``g`` of them add ``g (g + 1) (1 + longest / 16)``
  units, so ``content.split("").join("").split("")...`` over a large file is refused
  (:mod:`reconciler.config.cel_functions` bounds the size of what each builds). The engine compares the
  estimate with ``expression_cost_limit`` and raises
  :class:`~reconciler.errors.ExpressionBudgetExceeded` without evaluating when it is over.

What callers may rely on: an expression without comprehension macros, ``+`` or :data:`GROWING`
calls has no
:class:`Shape` (:func:`shape_of` returns ``None``) and costs nothing to check; the estimate is never below the
number of elements the comprehensions visit. One unit takes about half a microsecond on a
2-core machine, so the default budget of one million is about half a second of CPU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "GROWING",
    "MACROS",
    "MAX_COMPREHENSION_DEPTH",
    "MAX_SOURCE_LENGTH",
    "Shape",
    "estimate",
    "shape_of",
    "static_problem",
]

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
"""The CEL macros that iterate over a list or map."""

LINEAR = frozenset(
    {
        *("matches", "contains", "startsWith", "endsWith", "in", "size", "string", "bytes"),
        *("charAt", "indexOf", "lastIndexOf", "lowerAscii", "upperAscii", "substring", "trim"),
        *("replace", "split", "join"),
    }
)
"""Functions and operators whose time grows with the size of their operand."""

GROWING = frozenset({"replace", "split", "join"})
"""Extension functions that build a value as large as their operand, or larger."""

MAX_COMPREHENSION_DEPTH = 3
"""Deepest nesting of comprehension macros ``validate`` accepts."""

MAX_SOURCE_LENGTH = 4096
"""Longest expression ``validate`` accepts, in characters."""

_TOKEN = re.compile(
    r"""(?P<str>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''"""
    r"""|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))"""
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<num>\d[\w.]*)"
    r"|(?P<op>\S)"
)


@dataclass(frozen=True)
class Macro:
    """One comprehension: what it iterates over, what it does per element, what nests in it."""

    receiver: tuple[str, ...] | None
    """The scope field it iterates over (``("inputs", "l")``), or ``None`` for anything else."""
    pluses: int
    """``+`` operators in its receiver (each may double the size of what it iterates)."""
    literal: int
    """The receiver's token count when it holds no name at all (a literal list), else 0."""
    linear: int
    """Linear-time calls in its own body (not in nested comprehensions)."""
    inner: tuple[Macro, ...]


@dataclass(frozen=True)
class Shape:
    """The comprehension structure of an expression (see :func:`shape_of`)."""

    macros: tuple[Macro, ...]
    linear: int
    depth: int
    pluses: int = 0
    """``+`` operators anywhere in the expression (concatenations copy their operands)."""
    growing: int = 0
    """Calls of :data:`GROWING` functions anywhere in the expression."""


def _tokens(source: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "op", m.group()) for m in _TOKEN.finditer(source)]


def _closing(tokens: list[tuple[str, str]], i: int) -> int:
    """The index of the bracket closing the one at ``i`` (or the last token)."""
    depth = 0
    for j in range(i, len(tokens)):
        kind, text = tokens[j]
        if kind == "op" and text in "([{":
            depth += 1
        elif kind == "op" and text in ")]}":
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def _opening(tokens: list[tuple[str, str]], j: int) -> int:
    """The index of the bracket opening the one closing at ``j`` (or 0)."""
    depth = 0
    for i in range(j, -1, -1):
        kind, text = tokens[i]
        if kind == "op" and text in ")]}":
            depth += 1
        elif kind == "op" and text in "([{":
            depth -= 1
            if depth == 0:
                return i
    return 0


def _receiver_start(tokens: list[tuple[str, str]], dot: int) -> int:
    """Where the operand before the ``.`` at ``dot`` begins (a postfix chain)."""
    i = dot - 1
    while i >= 0:
        kind, text = tokens[i]
        if kind == "op" and text in ")]}":
            i = _opening(tokens, i)
            if i > 0 and (tokens[i - 1][0] != "op" or tokens[i - 1][1] in ")]"):
                i -= 1  # a call f(...) or an index a[...]: the operand goes on to the left
                continue
        elif kind not in ("id", "str", "num"):
            return i + 1
        if i > 1 and tokens[i - 1] == ("op", "."):
            i -= 2
            continue
        return i
    return 0


def _parse(tokens: list[tuple[str, str]], lo: int, hi: int) -> tuple[list[Macro], int]:
    """The comprehensions in ``tokens[lo:hi]`` (outermost only) and its other linear calls.

    A chain (``l.map(..).all(..)``) yields siblings: the macro in the receiver is found first,
    and the outer one then counts the whole scope as what it iterates over."""
    macros: list[Macro] = []
    linear = 0
    i = lo
    while i < hi:
        kind, text = tokens[i]
        is_macro = (
            kind == "id"
            and text in MACROS
            and i > lo
            and tokens[i - 1] == ("op", ".")
            and i + 1 < hi
            and tokens[i + 1] == ("op", "(")
        )
        if is_macro:
            start = _receiver_start(tokens, i - 1)
            end = _closing(tokens, i + 1)
            receiver = tokens[start : i - 1]
            names = [t for k, t in receiver if k == "id"]
            dotted = len(receiver) == 2 * len(names) - 1 and all(
                receiver[k] == ("op", ".") for k in range(1, len(receiver), 2)
            )
            path = tuple(names) if receiver and dotted else None
            inner, own = _parse(tokens, i + 2, end)
            macros.append(
                Macro(
                    receiver=path,
                    pluses=sum(1 for k, t in receiver if k == "op" and t == "+"),
                    literal=0 if names else len(receiver),
                    linear=own,
                    inner=tuple(inner),
                )
            )
            i = end + 1
            continue
        if kind == "id" and text in LINEAR:
            linear += 1
        i += 1
    return macros, linear


def _depth(macros: tuple[Macro, ...] | list[Macro]) -> int:
    return max((1 + _depth(m.inner) for m in macros), default=0)


@lru_cache(maxsize=65536)
def shape_of(source: str) -> Shape | None:
    """The comprehension structure of ``source``, or ``None`` when it has no comprehension,
    no ``+`` and no :data:`GROWING` call."""
    maybe_call = "(" in source and any(name in source for name in MACROS | GROWING)
    if not maybe_call and "+" not in source:
        return None
    tokens = _tokens(source)
    macros, linear = _parse(tokens, 0, len(tokens))
    pluses = sum(1 for kind, text in tokens if kind == "op" and text == "+")
    growing = sum(
        1
        for i, (kind, text) in enumerate(tokens)
        if kind == "id" and text in GROWING and i + 1 < len(tokens) and tokens[i + 1] == ("op", "(")
    )
    if not macros and not pluses and not growing:
        return None
    return Shape(tuple(macros), linear, _depth(macros), pluses, growing)


def static_problem(source: str) -> str | None:
    """Why ``validate`` refuses ``source`` outright, or ``None``."""
    if len(source) > MAX_SOURCE_LENGTH:
        return f"expression longer than {MAX_SOURCE_LENGTH} characters"
    shape = shape_of(source)
    if shape is not None and shape.depth > MAX_COMPREHENSION_DEPTH:
        return (
            f"comprehensions (all/exists/exists_one/map/filter) nested {shape.depth} deep; at "
            f"most {MAX_COMPREHENSION_DEPTH} are allowed, as their cost multiplies"
        )
    return None


@dataclass
class _Sizes:
    total: int = 0
    longest: int = 0


def _measure(value: Any, sizes: _Sizes, budget: int) -> None:
    """Add every list element, map entry and string character under ``value`` to ``sizes``
    (stops once ``budget`` is passed: the estimate is over the limit anyway)."""
    stack = [value]
    while stack and sizes.total <= budget:
        item = stack.pop()
        if isinstance(item, str | bytes):
            sizes.total += len(item)
            sizes.longest = max(sizes.longest, len(item))
        elif isinstance(item, Mapping):
            sizes.total += len(item)
            sizes.longest = max(sizes.longest, len(item))
            stack.extend(item.values())
            stack.extend(k for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            sizes.total += len(item)
            sizes.longest = max(sizes.longest, len(item))
            stack.extend(item)


def _size_at(path: tuple[str, ...], scope: Mapping[str, Any]) -> int | None:
    value: Any = scope
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    if isinstance(value, Mapping | list | tuple):
        return len(value)
    return 0 if value is None or isinstance(value, bool | int | float) else None


def estimate(shape: Shape, scope: Mapping[str, Any], limit: int) -> int:
    """The cost of evaluating an expression of ``shape`` in ``scope``, in units.

    Once the running estimate passes ``limit`` the exact figure does not matter: the result is
    then only guaranteed to be over ``limit``.
    """
    sizes: _Sizes | None = None

    def whole() -> _Sizes:
        nonlocal sizes
        if sizes is None:
            sizes = _Sizes()
            _measure(dict(scope), sizes, limit)
        return sizes

    def per_linear() -> int:
        return 1 + whole().longest // 64

    def cost(macros: tuple[Macro, ...]) -> int:
        total = 0
        for m in macros:
            n = _size_at(m.receiver, scope) if m.receiver is not None else None
            if n is None:
                n = m.literal if m.literal else whole().total * (1 + m.pluses)
            body = 1 + (m.linear * per_linear() if m.linear else 0)
            if m.inner and n:
                body += cost(m.inner)
            total += n * body
            if total > limit:
                return total
        return total

    base = 1 + (shape.linear * per_linear() if shape.linear else 0)
    if shape.pluses:
        base += shape.pluses * (shape.pluses + 1) * per_linear()
    if shape.growing:
        base += shape.growing * (shape.growing + 1) * (1 + whole().longest // 16)
    return base + cost(shape.macros)
