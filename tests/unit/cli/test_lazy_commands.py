"""``reconciler``'s commands are imported when they run, and the table that stands in for them
until then (names, modules, help lines) says exactly what the commands say.

``reconciler --help`` lists every command from :data:`reconciler.cli.app.COMMANDS` without
importing a command module; these tests import every module and compare, so a command added,
renamed or re-documented without its line in the table fails here instead of drifting.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
import typer
import typer.main

from reconciler.cli.app import COMMANDS, RootGroup, app
from reconciler.cli.lazy import CommandSummary, LazyCommand


def real_commands() -> dict[str, Any]:
    """Every command as typer builds it once all the table's modules are imported."""
    for module in {entry.module for entry in COMMANDS.values()}:
        importlib.import_module(module)
    return dict(typer.main.get_group(app).commands)


def first_paragraph(help_text: str) -> str:
    """The part of a command's help the group's ``--help`` shows beside its name."""
    return " ".join(inspect.cleandoc(help_text).split("\n\n")[0].split())


def test_the_table_names_every_command_the_modules_register_and_nothing_else() -> None:
    commands = real_commands()
    assert sorted(COMMANDS) == sorted(commands)
    assert not any(isinstance(c, CommandSummary) for c in commands.values())


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_commands_line_in_the_table_is_the_first_paragraph_of_its_help(name: str) -> None:
    command = real_commands()[name]
    assert COMMANDS[name].summary == first_paragraph(command.help or "")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_is_registered_by_the_module_the_table_names(name: str) -> None:
    importlib.import_module(COMMANDS[name].module)
    registered = {
        info.name or (info.callback.__name__ if info.callback else "")
        for info in app.registered_commands
        if info.callback is not None and info.callback.__module__ == COMMANDS[name].module
    } | {
        info.typer_instance.info.name
        for info in app.registered_groups
        if info.typer_instance is not None
        and any(
            c.callback is not None and c.callback.__module__ == COMMANDS[name].module
            for c in info.typer_instance.registered_commands
        )
    }
    assert name in registered


def test_help_lists_the_commands_in_the_tables_order_with_their_summaries(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    lazy = RootGroup(name="reconciler")  # nothing registered: every command a summary
    assert all(isinstance(lazy.commands[name], CommandSummary) for name in COMMANDS)
    lazy.format_help(
        typer.Context(lazy, info_name="reconciler"), typer.Context(lazy).make_formatter()
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [
        line.strip("│ ").split(maxsplit=1)
        for line in lines
        if line.startswith("│ ") and line.strip("│ ").split(maxsplit=1)[0] in COMMANDS
    ]
    assert [name for name, _ in rows] == list(COMMANDS)
    assert {name: text.strip() for name, text in rows} == {
        name: entry.summary for name, entry in COMMANDS.items()
    }
    # listing did not load anything: the summaries are still there
    assert all(isinstance(lazy.commands[name], CommandSummary) for name in COMMANDS)


def test_looking_a_command_up_gives_the_real_command_with_its_options() -> None:
    group = RootGroup(name="reconciler")
    command = group.get_command(typer.Context(group), "validate")
    assert not isinstance(command, CommandSummary)
    assert "--strict" in {opt for param in command.params for opt in param.opts}
    assert group.get_command(typer.Context(group), "validate") is command


def test_a_table_entry_whose_module_registers_no_such_command_is_no_command() -> None:
    class Misnamed(RootGroup):
        lazy_commands = {"nope": LazyCommand("reconciler.cli.tokens", "Nothing.")}

    group = Misnamed(name="reconciler")
    assert group.get_command(typer.Context(group), "nope") is None


def test_completing_a_command_name_offers_the_table_without_importing() -> None:
    group = RootGroup(name="reconciler")
    ctx = typer.Context(group, info_name="reconciler", resilient_parsing=True)
    offered = {item.value: item.help for item in group.shell_complete(ctx, "ap")}
    real = real_commands()
    assert offered == {
        name: real[name].get_short_help_str() for name in ("apply", "approve", "approvals")
    }
    assert isinstance(group.commands["apply"], CommandSummary)
