"""Text from the daemon made safe to print on a terminal with rich.

What the remote commands print comes from places the person at the terminal does not control:
an approval's question and a workflow's messages from the repository, a comment from whichever
token decided, a run's inputs from whoever asked for it. :func:`escape` escapes rich's markup
(``[bold]``) as :func:`rich.markup.escape` does, and also shows every control character but
newline and tab as visible ``\\xNN`` text: rich passes ``ESC`` (and the C1 controls) through
unchanged, so ``ESC ]0;…BEL`` would retitle the window and ``ESC [2J`` clear the screen.

Called by: :mod:`reconciler.cli.remote` for every value it prints from an answer.
"""

from __future__ import annotations

import re

from rich.markup import escape as escape_markup

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with each control character (newline and tab kept) written as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def escape(text: str) -> str:
    """``text`` ready for :meth:`rich.console.Console.print` with markup: controls made visible
    (:func:`visible`), then rich's markup escaped."""
    return escape_markup(visible(text))
