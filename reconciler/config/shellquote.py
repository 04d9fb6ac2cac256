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

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    return _Scanner(text, matches).scan()


_OPENERS = (("$((", "arith"), ("$(", "paren"), ("${", "brace"))
"""``$`` constructs that open a new context, longest first."""

_QUOTES = {"'": "single", '"': "double"}

_COMMENT_AFTER = " \t\n;&|()"
"""Characters after which an unescaped ``#`` starts a comment (it must start a word)."""


@dataclass
class _Scanner:
    """One left-to-right pass of :func:`shell_slots` over ``text``.

    ``stack`` holds the nested quoting contexts (``word``, ``single``, ``double``, ``paren``,
    ``brace``, ``arith``, ``backtick``); ``heredoc`` and ``ansi`` stay set once seen, so every
    later template is refused.
    """

    text: str
    matches: list[re.Match[str]]
    slots: list[ShellSlot] = field(default_factory=list)
    stack: list[str] = field(default_factory=lambda: ["word"])
    heredoc: bool = False
    ansi: bool = False
    escaped: int = -1
    """Index of the last character a backslash made literal."""
    next_match: int = 0

    def scan(self) -> list[ShellSlot]:
        """Every template's slot, in order of the text."""
        i, n = 0, len(self.text)
        while i < n:
            i = self._take(None) if self._template_at(i) else self._step(i)
        return self.slots

    def _template_at(self, i: int) -> bool:
        """Whether the next template starts at ``i``."""
        m = self.next_match
        return m < len(self.matches) and self.matches[m].start() == i

    def _take(self, refused: str | None) -> int:
        """Record the next template: refused for ``refused``, else as its context allows.
        Returns the index just after it."""
        match = self.matches[self.next_match]
        self.next_match += 1
        start, end, source = match.start(), match.end(), match.group(1)
        if refused is None:
            slot = _slot(start, end, source, self.stack[-1], self.heredoc, self.ansi)
        else:
            slot = ShellSlot(start, end, source, None, refused)
        self.slots.append(slot)
        return end

    def _step(self, i: int) -> int:
        """Read the character at ``i`` (not a template's start); returns where to read next."""
        c = self.text[i]
        top = self.stack[-1]
        if top == "single":
            if c == "'":
                self.stack.pop()
            return i + 1
        if c == "\\":
            return self._backslash(i)
        if c == "$":
            return self._dollar(i, top)
        if c == "`":
            if top == "backtick":
                self.stack.pop()
            else:
                self.stack.append("backtick")
            return i + 1
        if top == "double":
            if c == '"':
                self.stack.pop()
            return i + 1
        return self._unquoted(i, c, top)

    def _backslash(self, i: int) -> int:
        if self._template_at(i + 1):
            return self._take("after a backslash")
        self.escaped = i + 1  # the escaped character is literal
        return i + 2

    def _dollar(self, i: int, top: str) -> int:
        if self._template_at(i + 1):
            return self._take("right after a $")
        if self.text.startswith("$'", i) and top != "double":
            self.ansi = True  # the quote itself is read next, as dash would
            return i + 1
        for opener, context in _OPENERS:
            if self.text.startswith(opener, i):
                self.stack.append(context)
                return i + len(opener)
        return i + 1

    def _unquoted(self, i: int, c: str, top: str) -> int:
        """A character outside quotes (in a word, ``$( )``, ``${ }``, ``$(( ))`` or backquotes)."""
        quote = _QUOTES.get(c)
        if quote is not None:
            self.stack.append(quote)
        elif c == "(":
            self.stack.append("paren" if top != "arith" else "arith")
        elif c == ")":
            return self._close_paren(i, top)
        elif c == "}" and top == "brace":
            self.stack.pop()
        elif c == "<" and self.text.startswith("<<", i):
            self.heredoc = True
            return i + 2
        elif c == "#" and self._starts_comment(i, top):
            return self._skip_comment(i)
        return i + 1

    def _skip_comment(self, i: int) -> int:
        """Skip to the end of the comment at ``i``; templates in it are left as they are (the
        shell never reads a comment) and the scan goes on with the next one after it."""
        end = self.text.find("\n", i)
        stop = len(self.text) if end < 0 else end
        while self.next_match < len(self.matches) and self.matches[self.next_match].start() < stop:
            self.next_match += 1
        return stop

    def _close_paren(self, i: int, top: str) -> int:
        if top == "arith" and self.text.startswith("))", i):
            self.stack.pop()
            return i + 2
        if len(self.stack) > 1 and top in ("paren", "arith"):
            self.stack.pop()
        return i + 1

    def _starts_comment(self, i: int, top: str) -> bool:
        # a comment starts a word: not after an escaped blank (``a\ #`` is one word)
        if top == "brace":
            return False
        return i == 0 or (self.text[i - 1] in _COMMENT_AFTER and self.escaped != i - 1)


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
