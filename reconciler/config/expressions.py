"""CEL expressions and ``${{ }}`` interpolation: the only code that runs from YAML.

Expressions are compiled once (the loader compiles every one at load time so that a syntax error
is a validation error with its line; the engine reuses the cached programs). A string that is
exactly one ``${{ expr }}`` evaluates to the expression's value with its type; a string with text
around one or more ``${{ }}`` evaluates to a string. Nothing from YAML is ever handed to ``eval``,
a template engine or a shell.

Functions: CEL's standard ones plus the string extension and ``now()`` of
:mod:`reconciler.config.cel_functions`, handed to every evaluation (inline and in the worker).

Scope names (``docs/workflows.md`` says which is visible where): ``inputs``, ``secrets`` (inside ``with:`` only), ``observed``,
``outputs``, ``result`` (in ``until``), ``message`` (in ``match``), the ``foreach`` variable,
and ``run``.

Cost: an expression with comprehension macros is first estimated from the sizes in scope
(:mod:`reconciler.config.cost`); over ``cost_limit`` it raises :class:`ExpressionBudgetExceeded`
without running. The async variants (:func:`evaluate_async`, :func:`evaluate_bool_async`,
:func:`render_async`) evaluate one whose estimate is over :data:`INLINE_COST` in a worker
process (the ``cel`` binding holds the GIL while it evaluates, so a thread would not help), and
the event loop keeps answering; cheaper ones, and plain field reads, run inline as before.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from functools import lru_cache
from multiprocessing import get_context
from typing import Any

from reconciler.clock import utcnow
from reconciler.config.cel_functions import functions
from reconciler.config.celimport import cel
from reconciler.config.cost import estimate, shape_of
from reconciler.errors import (
    EvaluationError,
    ExpressionBudgetExceeded,
    ExpressionError,
    SecretExpressionRefused,
)

DEFAULT_COST_LIMIT = 1_000_000
"""Units one evaluation may cost when the caller sets no limit (``expression_cost_limit``)."""

INLINE_COST = 10_000
"""Estimated units above which the async variants evaluate in the worker process (~5 ms)."""

_WORKERS: ProcessPoolExecutor | None = None
"""The process expensive expressions run in (started on first need): the ``cel`` binding holds
the GIL while it evaluates, so a thread would stall the event loop as much as running inline."""


def _workers() -> ProcessPoolExecutor:
    global _WORKERS
    if _WORKERS is None:
        _WORKERS = ProcessPoolExecutor(max_workers=1, mp_context=get_context("forkserver"))
    return _WORKERS


def _execute_elsewhere(source: str, scope: dict[str, Any], now: datetime) -> tuple[bool, Any]:
    """Run in the worker process: (True, value) or (False, the EvaluationError's message)."""
    try:
        return True, _execute(compile_expr(source), source, scope, now=now)
    except EvaluationError as exc:
        return False, exc.message


class NeedsWorker(Exception):
    """Raised by the inline path (``inline_limit``) when an expression is too expensive for the
    event loop: the caller evaluates it with the async variants instead."""


TEMPLATE_RE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


@lru_cache(maxsize=65536)
def compile_expr(source: str) -> cel.Program:
    """Compile CEL once. Raises :class:`ExpressionError` (without position; callers add it)."""
    try:
        return cel.compile(source.strip())
    except (ValueError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"invalid CEL {source.strip()!r}: {detail}") from None


def templates_in(value: str) -> list[str]:
    """The CEL sources of every ``${{ }}`` in a string."""
    return [m.group(1).strip() for m in TEMPLATE_RE.finditer(value)]


def iter_templates(value: Any) -> Iterator[str]:
    """Every ``${{ }}`` source anywhere in a nested structure of dicts, lists and strings."""
    if isinstance(value, str):
        yield from templates_in(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from iter_templates(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from iter_templates(v)


PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
CEL_LITERALS = frozenset({"true", "false", "null"})
INT64 = range(-(2**63), 2**63)


@lru_cache(maxsize=65536)
def plain_path(source: str) -> tuple[str, ...] | None:
    """The names of an expression that only reads a field (``inputs.path``), else ``None``."""
    text = source.strip()
    if PATH_RE.fullmatch(text) is None:
        return None
    names = tuple(text.split("."))
    return None if names[0] in CEL_LITERALS else names


_SECRETS_RE = re.compile(r"(?<![\w.])secrets\b")
"""Where an expression names the ``secrets`` scope (or merely the word: refusing is safe)."""


def check_secret_use(source: str, scope: Mapping[str, Any]) -> None:
    """Raise :class:`SecretExpressionRefused` if ``secrets`` is in ``scope`` (a ``with:``) and
    ``source`` reads it other than as a plain reference (``secrets.name``).

    Redaction masks a secret's value and its usual encodings, not what an expression can make
    of it: ``size(secrets.x)``, ``secrets.x.matches('^a')`` or a comprehension that rebuilds
    it character by character would carry it into outputs, errors and the journal. So a
    ``${{ }}`` may pass a secret on, never compute with it.
    """
    if _SECRETS_RE.search(source) is None:
        return
    names = plain_path(source)
    if names is not None and names[0] == "secrets" and len(names) == 2:
        return
    if "secrets" not in scope:
        return  # outside with: CEL itself says there is no such variable
    raise SecretExpressionRefused(
        f"{source.strip()!r} computes with a secret: a ${{{{ }}}} may only pass one on as is "
        "(${{ secrets.name }}), so that redaction can mask it wherever it goes"
    )


def _lookup(names: tuple[str, ...], scope: Mapping[str, Any]) -> Any:
    """The scalar at ``names`` in ``scope``, or :data:`NotImplemented` when CEL must decide
    (a missing key, a list or map value, anything CEL would convert)."""
    value: Any = scope
    for name in names:
        if not isinstance(value, Mapping) or name not in value:
            return NotImplemented
        value = value[name]
    if value is None or isinstance(value, str | bool | float):
        return value
    if type(value) is int and value in INT64:
        return value
    return NotImplemented


def evaluate(
    source: str,
    scope: Mapping[str, Any],
    *,
    cost_limit: int = DEFAULT_COST_LIMIT,
    inline_limit: int | None = None,
    now: datetime | None = None,
) -> Any:
    """Evaluate CEL in ``scope``. Runtime failures raise :class:`EvaluationError`.

    Beyond CEL's standard functions the expression may call the string extension and ``now()``
    (:mod:`reconciler.config.cel_functions`); ``now()`` is ``now`` when given (aware, UTC),
    else the time this call began.

    An expression that only reads a scalar field (``inputs.path``, the commonest in ``with:``)
    is answered by looking it up, with the value CEL would give: converting the whole scope to
    CEL for it cost more than the rest of a trivial check. An expression with comprehensions
    whose estimated cost is over ``cost_limit`` raises :class:`ExpressionBudgetExceeded`
    without being evaluated; ``inline_limit`` is for :func:`evaluate_async`. One that computes
    with ``secrets`` raises :class:`SecretExpressionRefused` (:func:`check_secret_use`).
    """
    program = compile_expr(source)
    check_secret_use(source, scope)
    names = plain_path(source)
    if names is not None:
        found = _lookup(names, scope)
        if found is not NotImplemented:
            return found
    shape = shape_of(source)
    if shape is not None:
        cost = estimate(shape, scope, cost_limit)
        if cost > cost_limit:
            raise ExpressionBudgetExceeded(
                f"{source.strip()!r} would cost about {cost:,} units, over the budget of "
                f"{cost_limit:,} (expression_cost_limit); it was not evaluated",
                details={"cost": cost, "limit": cost_limit},
            )
        if inline_limit is not None and cost > inline_limit:
            raise NeedsWorker
    return _execute(program, source, dict(scope), now=now or utcnow())


def _execute(program: cel.Program, source: str, scope: dict[str, Any], *, now: datetime) -> Any:
    try:
        return program.execute(cel.Context(variables=scope, functions=functions(now)))
    except KeyError as exc:
        raise EvaluationError(f"{source.strip()!r} failed: no such key: {exc}") from None
    except (ValueError, RuntimeError, TypeError, LookupError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EvaluationError(f"{source.strip()!r} failed: {_tidy(detail)}") from None


_FUNCTION_FAILED = re.compile(
    r"Function '[^']*' error: Python function call failed: \w+: (?P<why>.*?)"
    r"(?:\. Check function arguments and their types\.)?$"
)


def _tidy(detail: str) -> str:
    """An extension function's own message, without the binding's wrapping around it."""
    found = _FUNCTION_FAILED.fullmatch(detail)
    return found.group("why") if found else detail


async def evaluate_async(
    source: str, scope: Mapping[str, Any], *, cost_limit: int = DEFAULT_COST_LIMIT
) -> Any:
    """:func:`evaluate`, in a worker process when the estimate is over :data:`INLINE_COST`.

    Cancelling the caller (a state's ``timeout:``) returns at once; the worker finishes its
    evaluation, which the budget bounds, and the result is dropped.
    """
    now = utcnow()
    try:
        return evaluate(source, scope, cost_limit=cost_limit, inline_limit=INLINE_COST, now=now)
    except NeedsWorker:
        pass
    global _WORKERS
    loop = asyncio.get_running_loop()
    try:
        ok, value = await loop.run_in_executor(
            _workers(), _execute_elsewhere, source, _plain(dict(scope)), now
        )
    except (BrokenProcessPool, OSError) as exc:  # killed (OOM?): the next call starts another
        _WORKERS = None
        raise EvaluationError(
            f"{source.strip()!r} failed: the expression worker process ended ({type(exc).__name__})"
        ) from None
    if not ok:
        raise EvaluationError(value)
    return value


def _plain(value: Any) -> Any:
    """``value`` as plain dicts and lists, so that it can be sent to the worker process."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def evaluate_bool(
    source: str, scope: Mapping[str, Any], *, cost_limit: int = DEFAULT_COST_LIMIT
) -> bool:
    return _as_bool(source, evaluate(source, scope, cost_limit=cost_limit))


async def evaluate_bool_async(
    source: str, scope: Mapping[str, Any], *, cost_limit: int = DEFAULT_COST_LIMIT
) -> bool:
    return _as_bool(source, await evaluate_async(source, scope, cost_limit=cost_limit))


def _as_bool(source: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise EvaluationError(
            f"{source.strip()!r} must be true or false, got {type(value).__name__}"
        )
    return value


def render(
    value: Any,
    scope: Mapping[str, Any],
    *,
    cost_limit: int = DEFAULT_COST_LIMIT,
    inline_limit: int | None = None,
) -> Any:
    """Replace every ``${{ }}`` in a nested structure; a whole-string template keeps its type."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        return _render_str(
            value,
            lambda src: evaluate(src, scope, cost_limit=cost_limit, inline_limit=inline_limit),
        )
    if isinstance(value, Mapping):
        return {
            k: render(v, scope, cost_limit=cost_limit, inline_limit=inline_limit)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [render(v, scope, cost_limit=cost_limit, inline_limit=inline_limit) for v in value]
    return value


async def render_async(
    value: Any, scope: Mapping[str, Any], *, cost_limit: int = DEFAULT_COST_LIMIT
) -> Any:
    """:func:`render`, evaluating expensive templates
    (:func:`evaluate_async`) in the worker process."""
    try:
        return render(value, scope, cost_limit=cost_limit, inline_limit=INLINE_COST)
    except NeedsWorker:
        pass
    values: dict[str, Any] = {}
    for source in dict.fromkeys(iter_templates(value)):
        values[source] = await evaluate_async(source, scope, cost_limit=cost_limit)
    return fill(value, values)


def fill(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with every ``${{ }}`` replaced from ``values`` (by stripped source)."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        return _render_str(value, lambda src: values[src.strip()])
    if isinstance(value, Mapping):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fill(v, values) for v in value]
    return value


def _render_str(text: str, value_of: Callable[[str], Any]) -> Any:
    whole = TEMPLATE_RE.fullmatch(text.strip())
    if whole is not None and len(TEMPLATE_RE.findall(text)) == 1:
        return value_of(whole.group(1))
    return TEMPLATE_RE.sub(lambda m: to_text(value_of(m.group(1))), text)


def to_text(value: Any) -> str:
    """How a value embedded in text reads: JSON for lists and maps, as YAML authors expect."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(value, default=str, separators=(", ", ": "))
    return str(value)
