"""Command-line entry point; see :mod:`reconciler.cli.app` for the conventions."""

from __future__ import annotations

# Each module registers its commands on ``app`` when imported.
# (one import per command module; keep sorted)
from reconciler.cli import converge as _converge  # noqa: F401
from reconciler.cli import graph as _graph  # noqa: F401
from reconciler.cli import plugins as _plugins  # noqa: F401
from reconciler.cli import remote as _remote  # noqa: F401
from reconciler.cli import run as _run  # noqa: F401
from reconciler.cli import schema as _schema  # noqa: F401
from reconciler.cli import secrets as _secrets  # noqa: F401
from reconciler.cli import test as _test  # noqa: F401
from reconciler.cli import tokens as _tokens  # noqa: F401
from reconciler.cli import validate as _validate  # noqa: F401
from reconciler.cli.app import app


def main() -> None:
    # named "reconciler" however it was started (python -m, -c): the usage lines and the shell
    # completion script speak of the command people type
    app(prog_name="reconciler")


__all__ = ["app", "main"]
