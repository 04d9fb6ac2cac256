"""``${{ }}`` inside shell text: every value becomes one quoted shell word, or is refused.

A ``shell: true`` command is text that ``/bin/sh -c`` parses. A ``${{ }}`` value pasted into it
as is would be parsed too, so a file an observe probe read (``x; touch /tmp/pwned``) would run as
a command. Here every value is passed through :func:`shlex.quote` instead, the way Ansible's
``quote`` filter does: whatever the value holds, the shell sees one word with exactly that text.
A value inside a quoted part of the command (``"hello ${{ inputs.name }}"``) closes the quotes,
adds the quoted word and reopens them, so it stays part of the same word.

Where quoting cannot make a value safe or cannot keep its meaning, the template is refused with
:class:`~reconciler.errors.ShellValueRefused`: after a backslash or a ``$``, inside backquotes,
``${...}``, arithmetic ``$(( ))``, anywhere after a here-document operator ``<<`` (the body of
a here-document is expanded again by the shell) or after ANSI-C quoting ``$'...'`` (bash reads
backslash escapes in it, dash does not, so no single reading of the quotes is safe for both). The decision depends only on the literal text
around the template, so ``reconciler validate`` reports it as ``path:line:col`` before anything
runs (:func:`shell_problems`).

Called by: :meth:`reconciler.engine.actions.RunContext.prepare` for the request fields a plugin
declares as shell text (:attr:`reconciler.plugin.Request.shell_fields`), and by
:mod:`reconciler.config.validate`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.config.expressions import DEFAULT_COST_LIMIT, TEMPLATE_RE, evaluate, to_text
from reconciler.errors import ShellValueRefused

__all__ = ["ShellSlot", "render_shell", "shell_fields_of", "shell_problems", "shell_slots"]

Quoting = Literal["word", "single", "double"]


@dataclass(frozen=True)
class ShellSlot:
    """Where one ``${{ }}`` sits in shell text: the quoting around it, or why it is refused."""

    start: int
    end: int
    source: str
    quoting: Quoting | None
    refused: str | None = None


def shell_slots(text: str) -> list[ShellSlot]:
    """Every ``${{ }}`` of ``text`` with the shell quoting context it sits in.

    A small scanner of POSIX shell quoting: single and double quotes, backslash escapes, ``$(``
    command substitutions and ``( )`` subshells (new unquoted contexts), backquotes, ``${``,
    ``$((`` and ``<<``. It errs on the side of refusing: anything it does not follow is refused.
    """
    matches = list(TEMPLATE_RE.finditer(text))
    if not matches:
        return []
    slots: list[ShellSlot] = []
    stack: list[str] = ["word"]
    heredoc = False
    ansi = False
    escaped = -1  # index of the last character a backslash made literal
    i, n, m = 0, len(text), 0
    while i < n:
        if m < len(matches) and i == matches[m].start():
            match = matches[m]
            slots.append(
                _slot(match.start(), match.end(), match.group(1), stack[-1], heredoc, ansi)
            )
            i, m = match.end(), m + 1
            continue
        c = text[i]
        top = stack[-1]
        if top == "single":
            if c == "'":
                stack.pop()
        elif c == "\\":
            if m < len(matches) and i + 1 == matches[m].start():
                match = matches[m]
                slots.append(
                    ShellSlot(match.start(), match.end(), match.group(1), None, "after a backslash")
                )
                i, m = match.end(), m + 1
                continue
            i += 1  # the escaped character is literal
            escaped = i
        elif c == "$" and m < len(matches) and i + 1 == matches[m].start():
            match = matches[m]
            slots.append(
                ShellSlot(match.start(), match.end(), match.group(1), None, "right after a $")
            )
            i, m = match.end(), m + 1
            continue
        elif text.startswith("$'", i) and top != "double":
            ansi = True  # the quote itself is read next, as dash would
        elif text.startswith("$((", i):
            stack.append("arith")
            i += 2
        elif text.startswith("$(", i):
            stack.append("paren")
            i += 1
        elif text.startswith("${", i):
            stack.append("brace")
            i += 1
        elif c == "`":
            if top == "backtick":
                stack.pop()
            else:
                stack.append("backtick")
        elif top == "double":
            if c == '"':
                stack.pop()
        elif c == "}" and top == "brace":
            stack.pop()
        elif c == ")" and top == "arith" and text.startswith("))", i):
            stack.pop()
            i += 1
        elif c == "(":
            stack.append("paren" if top != "arith" else "arith")
        elif c == ")" and len(stack) > 1 and top in ("paren", "arith"):
            stack.pop()
        elif c == "'":
            stack.append("single")
        elif c == '"':
            stack.append("double")
        elif c == "<" and text.startswith("<<", i):
            heredoc = True
            i += 1
        elif (
            c == "#"
            and top != "brace"
            # a comment starts a word: not after an escaped blank (``a\ #`` is one word)
            and (i == 0 or (text[i - 1] in " \t\n;&|()" and escaped != i - 1))
        ):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        i += 1
    return slots


def _slot(
    start: int, end: int, source: str, context: str, heredoc: bool, ansi: bool = False
) -> ShellSlot:
    if heredoc:
        return ShellSlot(start, end, source, None, "after a here-document (<<)")
    if ansi:
        return ShellSlot(start, end, source, None, "after ANSI-C quoting $'...'")
    if context in ("word", "paren"):
        return ShellSlot(start, end, source, "word")
    if context == "single":
        return ShellSlot(start, end, source, "single")
    if context == "double":
        return ShellSlot(start, end, source, "double")
    where = {
        "backtick": "inside backquotes (use $( ) instead)",
        "brace": "inside ${ }",
        "arith": "inside an arithmetic expansion $(( ))",
    }
    return ShellSlot(start, end, source, None, where.get(context, "where it cannot be quoted"))


def shell_fields_of(request: type[Any]) -> frozenset[str]:
    """The fields of a plugin request class that are shell text (``Request.shell_fields``)."""
    fields: object = getattr(request, "shell_fields", frozenset())
    return fields if isinstance(fields, frozenset) else frozenset()


def shell_problems(text: str) -> list[str]:
    """Why ``${{ }}`` templates of ``text`` would be refused, one message each (for validate)."""
    return [_refusal(slot) for slot in shell_slots(text) if slot.refused is not None]


def _refusal(slot: ShellSlot) -> str:
    return (
        f"${{{{ {slot.source.strip()} }}}} in a shell command {slot.refused}: the value cannot "
        "be quoted safely there; move it outside, or pass it with env: or argv"
    )


def render_shell(
    text: str,
    scope: Mapping[str, Any],
    *,
    cost_limit: int = DEFAULT_COST_LIMIT,
    inline_limit: int | None = None,
    values: Mapping[str, Any] | None = None,
) -> str:
    """``text`` with every ``${{ }}`` replaced by its value quoted as one shell word.

    Raises :class:`ShellValueRefused` (before evaluating anything) when a template sits where
    quoting cannot work, and :class:`~reconciler.errors.EvaluationError` as
    :func:`~reconciler.config.expressions.evaluate` does. ``values`` (by stripped source) are
    used instead of evaluating, when the caller has evaluated the templates already.
    """
    slots = shell_slots(text)
    for slot in slots:
        if slot.refused is not None:
            raise ShellValueRefused(_refusal(slot))
    parts: list[str] = []
    last = 0
    for slot in slots:
        parts.append(text[last : slot.start])
        if values is not None:
            value = values[slot.source.strip()]
        else:
            value = evaluate(slot.source, scope, cost_limit=cost_limit, inline_limit=inline_limit)
        word = shlex.quote(to_text(value))
        if slot.quoting == "single":
            word = f"'{word}'"  # close the quotes, one quoted word, reopen them
        elif slot.quoting == "double":
            word = f'"{word}"'
        parts.append(word)
        last = slot.end
    parts.append(text[last:])
    return "".join(parts)
