"""Command-line entry point; see :mod:`reconciler.cli.app` for the conventions.

Importing this package imports no command: each command's module is imported when the command
runs (:mod:`reconciler.cli.lazy`), so ``reconciler --help`` and every one-shot command pay only
for what they use.
"""

from __future__ import annotations

from reconciler.cli.app import app


def main() -> None:
    # named "reconciler" however it was started (python -m, -c): the usage lines and the shell
    # completion script speak of the command people type
    app(prog_name="reconciler")


__all__ = ["app", "main"]
