"""CEL expressions and ``${{ }}`` interpolation: the only code that runs from YAML.

Expressions are compiled once (the loader compiles every one at load time so that a syntax error
is a validation error with its line; the engine reuses the cached programs). A string that is
exactly one ``${{ expr }}`` evaluates to the expression's value with its type; a string with text
around one or more ``${{ }}`` evaluates to a string. Nothing from YAML is ever handed to ``eval``,
a template engine or a shell.

Scope names (DESIGN §3): ``inputs``, ``secrets`` (inside ``with:`` only), ``observed``,
``outputs``, ``result`` (in ``until``), ``message`` (in ``match``), the ``foreach`` variable,
and ``run``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import cel

from reconciler.errors import EvaluationError, ExpressionError

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


def evaluate(source: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate CEL in ``scope``. Runtime failures raise :class:`EvaluationError`.

    An expression that only reads a scalar field (``inputs.path``, the commonest in ``with:``)
    is answered by looking it up, with the value CEL would give: converting the whole scope to
    CEL for it cost more than the rest of a trivial check.
    """
    program = compile_expr(source)
    names = plain_path(source)
    if names is not None:
        found = _lookup(names, scope)
        if found is not NotImplemented:
            return found
    try:
        return program.execute(dict(scope))
    except KeyError as exc:
        raise EvaluationError(f"{source.strip()!r} failed: no such key: {exc}") from None
    except (ValueError, RuntimeError, TypeError, LookupError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EvaluationError(f"{source.strip()!r} failed: {detail}") from None


def evaluate_bool(source: str, scope: Mapping[str, Any]) -> bool:
    value = evaluate(source, scope)
    if not isinstance(value, bool):
        raise EvaluationError(
            f"{source.strip()!r} must be true or false, got {type(value).__name__}"
        )
    return value


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Replace every ``${{ }}`` in a nested structure; a whole-string template keeps its type."""
    if isinstance(value, str):
        return _render_str(value, scope)
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, scope) for v in value]
    return value


def _render_str(text: str, scope: Mapping[str, Any]) -> Any:
    if "${{" not in text:
        return text
    whole = TEMPLATE_RE.fullmatch(text.strip())
    if whole is not None and len(TEMPLATE_RE.findall(text)) == 1:
        return evaluate(whole.group(1), scope)
    return TEMPLATE_RE.sub(lambda m: _to_text(evaluate(m.group(1), scope)), text)


def _to_text(value: Any) -> str:
    """How a value embedded in text reads: JSON for lists and maps, as YAML authors expect."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(value, default=str, separators=(", ", ": "))
    return str(value)
