"""The ``reconciler`` command: the typer application every command module registers on.

Each command lives in a module of this package named for what it does (``validate.py``,
``plugins.py``, ...), listed in :data:`COMMANDS` with its help line: a module is imported only
when its command runs (:mod:`reconciler.cli.lazy`), so a new command is registered in its
module *and* in that table. Conventions every command follows: human output by default and
``--output json`` for machines; exit 0 on success, 1 when the thing checked is bad, 2 when the
command could not do its job (missing path, unreachable server); one clear line on stderr instead
of a traceback.
"""

from __future__ import annotations

from enum import StrEnum

import typer
import typer.main
from rich.console import Console, ConsoleDimensions
from typer.core import TyperGroup

from reconciler.cli.lazy import LazyCommand, LazyGroup
from reconciler.version import __version__

_CLIENT = "reconciler.cli.remote"
COMMANDS: dict[str, LazyCommand] = {
    "validate": LazyCommand(
        "reconciler.cli.validate",
        "Check workflow files and print every problem as path:line:col.",
    ),
    "plan": LazyCommand(
        "reconciler.cli.converge",
        "Observe only: show which workflows are out of sync, with the field diff. Changes nothing.",
    ),
    "apply": LazyCommand(
        "reconciler.cli.converge",
        "Converge once: observe, run what is out of sync, observe again, print a summary, exit.",
    ),
    "graph": LazyCommand(
        "reconciler.cli.graph",
        "Print a workflow's state diagram (Mermaid or DOT), optionally with a run's position.",
    ),
    "plugins": LazyCommand(
        "reconciler.cli.plugins",
        "List installed plugins, or show one plugin's request and response schemas.",
    ),
    "status": LazyCommand(
        _CLIENT,
        "Show every workflow's status (or one workflow in detail) from a running daemon.",
    ),
    "runs": LazyCommand(
        _CLIENT,
        "List recent runs (newest first), or show one run with its transition journal.",
    ),
    "sync": LazyCommand(
        _CLIENT,
        "Ask the daemon to check and converge a workflow now (runs even when in sync).",
    ),
    "suspend": LazyCommand(
        _CLIENT, "Stop the daemon from starting runs of a workflow until it is resumed."
    ),
    "resume": LazyCommand(_CLIENT, "Undo a suspend; the daemon checks the workflow at once."),
    "cancel": LazyCommand(
        _CLIENT, "Cancel a run in progress (the workflow backs off as after a failure)."
    ),
    "approve": LazyCommand(_CLIENT, "Approve (or --reject) a run waiting at an approval gate."),
    "approvals": LazyCommand(
        _CLIENT, "List the runs waiting for an approval, oldest request first."
    ),
    "run": LazyCommand(
        "reconciler.cli.run",
        "Run the reconcile daemon: watch the repository and converge every workflow.",
    ),
    "schema": LazyCommand(
        "reconciler.cli.schema",
        "Print the JSON Schema of workflow files (plugin requests included) for editors.",
    ),
    "test": LazyCommand(
        "reconciler.cli.test",
        "Run the workflows' inline tests (mocked plugins), or check idempotence for real.",
    ),
    "secrets": LazyCommand(
        "reconciler.cli.secrets", "Work with secret references (Vault transit)."
    ),
    "tokens": LazyCommand("reconciler.cli.tokens", "Named API tokens (--api-tokens-file)."),
}
"""Every command: the module that registers it and its line in ``reconciler --help`` (the first
paragraph of its help), in the order ``--help`` lists them. ``reconciler --help`` reads this
table instead of importing every command module; a test checks it against the commands."""


class RootGroup(LazyGroup):
    """The group of the ``reconciler`` application: :data:`COMMANDS`, imported on first use."""

    lazy_commands = COMMANDS

    def rebuild(self) -> TyperGroup:
        return typer.main.get_group(app)


app = typer.Typer(
    cls=RootGroup,
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
    from reconciler.telemetry.logging import configure_logging  # not for --help, --version

    # One-shot commands log warnings only; `reconciler run` sets its own level.
    configure_logging("info" if verbose else "warning")
