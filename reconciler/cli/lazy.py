"""Commands imported when they run: what keeps a one-shot ``reconciler`` command quick to start.

Every command is a new Python process, and importing a command's module imports what the
command uses (the loader, the engine, the API client, the daemon's server stack for ``run``).
Building ``reconciler --help`` the usual way imports every command module to read its help
line. :class:`LazyGroup`, the class of the ``reconciler`` application's group, knows each
command's name, module and one-line summary from a static table (:data:`reconciler.cli.app.
COMMANDS`) and imports a command's module only when that command is looked up to run, to
complete its options, or to show its own ``--help`` (click's "lazy loading subcommands"
pattern, over typer: the modules still register their commands with ``@app.command()``).

What callers may rely on: ``get_command`` always returns the real command (importing its
module on first use), so invoking, ``CliRunner`` and introspection see typer's commands; only
the list of commands in the group's own ``--help`` and the completion of command names use the
table's summaries. ``tests/unit/cli/test_lazy_commands.py`` checks that the table and the
commands agree (names, order, help lines), so they cannot drift apart.

Called by :mod:`reconciler.cli.app` (the root group) only.
"""

from __future__ import annotations

import importlib
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from typer.core import TyperCommand, TyperGroup

from reconciler.cli.helptext import HumanGroup

__all__ = ["CommandSummary", "LazyCommand", "LazyGroup"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives and the line ``reconciler --help`` shows for it: the first
    paragraph of the command's docstring (or of its group's ``help``), word for word."""

    module: str
    summary: str


class CommandSummary(TyperCommand):
    """Stands in for a command whose module is not imported yet: a name and a help line,
    enough for the group's ``--help`` and for completing command names; never invoked
    (:meth:`LazyGroup.get_command` replaces it by the real command first)."""

    def __init__(self, name: str, entry: LazyCommand) -> None:
        super().__init__(name=name, help=entry.summary)
        self.entry = entry


class LazyGroup(HumanGroup, metaclass=ABCMeta):
    """A group whose commands are imported on first use (see the module).

    Subclasses set :attr:`lazy_commands` (name → :class:`LazyCommand`, in the order ``--help``
    lists them) and implement :meth:`rebuild`. Commands already registered when the group is
    built are used as they are.
    """

    lazy_commands: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._summaries_only = False
        for name, entry in self.lazy_commands.items():
            if name not in self.commands:
                self.commands[name] = CommandSummary(name, entry)

    def list_commands(self, ctx: Any) -> list[str]:
        listed = [name for name in self.lazy_commands if name in self.commands]
        return listed + [name for name in self.commands if name not in self.lazy_commands]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, CommandSummary) and not self._summaries_only:
            self._load(command.entry)
            command = self.commands.get(cmd_name)
            if isinstance(command, CommandSummary):
                return None  # the module registers no such command: click says "No such command"
        return command

    def _load(self, entry: LazyCommand) -> None:
        """Import ``entry``'s module and put every command registered so far in place of its
        summary."""
        importlib.import_module(entry.module)
        for name, command in self.rebuild().commands.items():
            current = self.commands.get(name)
            if current is None or isinstance(current, CommandSummary):
                self.commands[name] = command

    @abstractmethod
    def rebuild(self) -> TyperGroup:
        """The group as typer builds it from what the command modules registered so far
        (typically ``typer.main.get_group(app)``)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help lists the commands by their summaries: no command is imported."""
        self._summaries_only = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._summaries_only = False

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        """Command names complete from the summaries; a command's own options from the
        command, once it is imported (``resolve_command`` goes through :meth:`get_command`)."""
        self._summaries_only = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            self._summaries_only = False
