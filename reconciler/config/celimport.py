"""The ``cel`` package, imported without its interactive shell.

``cel``'s ``__init__`` imports ``cel.cli``, its interactive shell, only to expose it as an
attribute, and the shell imports prompt_toolkit: about a tenth of a second, at the start of every
``reconciler`` command, for a shell reconciler never opens. While ``cel`` is first imported, a
placeholder stands in for ``cel.cli``; it is taken away at once, so a later ``import cel.cli``
(a user's own code in the same process) loads the real shell.

Called by: :mod:`reconciler.config.expressions` (``from reconciler.config.celimport import
cel``), the one module that evaluates CEL.
"""

from __future__ import annotations

import sys
import types

_SHELL = "cel.cli"

_placeholder = types.ModuleType(_SHELL, "a stand-in: reconciler does not use cel's shell")
_placed = sys.modules.setdefault(_SHELL, _placeholder) is _placeholder
try:
    import cel
finally:
    if _placed and sys.modules.get(_SHELL) is _placeholder:
        del sys.modules[_SHELL]
        if getattr(sys.modules.get("cel"), "cli", None) is _placeholder:
            delattr(sys.modules["cel"], "cli")

__all__ = ["cel"]
