"""The ``reconciler`` command: the typer application every command module registers on.

Each command lives in a module of this package named for what it does (``validate.py``,
``plugins.py``, ...). Conventions every command follows: human output by default and
``--output json`` for machines; exit 0 on success, 1 when the thing checked is bad, 2 when the
command could not do its job (missing path, unreachable server); one clear line on stderr instead
of a traceback.
"""

from __future__ import annotations

from enum import StrEnum

import typer
from rich.console import Console, ConsoleDimensions

from reconciler.cli.helptext import typer_app
from reconciler.telemetry.logging import configure_logging
from reconciler.version import __version__

app = typer_app(
    name="reconciler",
    help="GitOps reconciliation of state-machine workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

OFF_TERMINAL_WIDTH = 100_000
"""The width a console has when its stream is not a terminal: wide enough that no table cell is
cut (``daemon-pr…``) and no line wrapped, whatever a terminal elsewhere measures or
``COLUMNS`` says."""


class PipeConsole(Console):
    """A rich console that lays out for the terminal when it writes to one, and never cuts
    nor wraps what goes to a pipe or a file (``reconciler status | grep``, CI logs), where
    rich would otherwise take the width of whichever standard stream is a terminal, or 80
    columns. Callers may rely on every line printed off a terminal being whole."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if self.is_terminal:
            return measured
        return ConsoleDimensions(OFF_TERMINAL_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        width, height = new_size
        self._width = width
        self._height = height


console = PipeConsole()
err_console = PipeConsole(stderr=True)


class OutputFormat(StrEnum):
    """What ``-o/--output`` takes on every command that prints: ``table`` (the default) for
    people, ``json`` for scripts. A file destination is always ``--out``, never ``-o``."""

    table = "table"
    json = "json"


OUTPUT_ALIASES = {"text": OutputFormat.table}
"""Older spellings still accepted: ``text`` was the name of ``table`` before it followed kubectl
and argocd."""


def output_format(value: str | OutputFormat) -> OutputFormat:
    """Parse ``--output`` (any case; ``text`` means ``table``); a bad value is a usage error
    naming the choices."""
    if isinstance(value, OutputFormat):
        return value
    key = value.strip().lower()
    if key in OUTPUT_ALIASES:
        return OUTPUT_ALIASES[key]
    try:
        return OutputFormat(key)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not one of: table, json") from None


OutputOption = typer.Option(
    OutputFormat.table,
    "--output",
    "-o",
    parser=output_format,
    metavar="table|json",
    help="table for people, json for scripts.",
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear line on stderr and return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        console.print(f"reconciler {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log what runs do (info level) on stderr."
    ),
) -> None:
    """GitOps reconciliation of state-machine workflows."""
    # One-shot commands log warnings only; `reconciler run` sets its own level.
    configure_logging("info" if verbose else "warning")
