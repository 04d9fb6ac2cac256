"""Every ``reconciler`` command follows the same conventions, read from typer's own application
(so a new command is checked without being listed here) and from each command's ``--help`` as a
user's shell shows it: ``-o/--output`` is the format (``table|json``) on every command that
prints, a file destination is ``--out``, never ``-o``; help is written for people (no Python
type names, no reStructuredText, every option explained) and the shell completion is offered."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any

import pytest
import typer.main

from reconciler.cli import app
from tests.support.daemon import CLI, without_settings

pytestmark = pytest.mark.timeout(120)

NOT_PRINTING = {("run",)}
"""The daemon prints its log, not a result: it takes no ``--output``."""


def commands(
    group: Any = None, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the application as (its words, its click command), through
    click's own look-up (the commands are imported on first use)."""
    group = group if group is not None else typer.main.get_command(app)
    ctx = typer.Context(group)
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        words = (*prefix, name)
        if hasattr(command, "commands"):
            yield from commands(command, words)
        else:
            yield words, command


PRINTING = [words for words, _ in commands() if words not in NOT_PRINTING]


def option(command: Any, name: str) -> Any:
    return next((p for p in command.params if name in p.opts), None)


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], str]:
    """``reconciler WORDS --help`` of every command, each as its own process (two at a time)."""

    def one(words: tuple[str, ...]) -> str:
        done = subprocess.run(
            [*CLI, *words, "--help"],
            capture_output=True,
            text=True,
            env={**without_settings(), "COLUMNS": "200"},
            timeout=60,
        )
        assert done.returncode == 0, (words, done.stderr)
        return done.stdout

    everything = [(), ("secrets",), *(words for words, _ in commands())]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(everything, pool.map(one, everything), strict=True))


def test_the_application_lists_the_commands_people_expect() -> None:
    names = {words for words, _ in commands()}
    assert {("status",), ("runs",), ("sync",), ("validate",), ("schema",), ("graph",)} <= names
    assert ("secrets", "encrypt") in names


@pytest.mark.parametrize("words", PRINTING, ids=" ".join)
def test_every_printing_command_takes_output_o_as_its_format(words: tuple[str, ...]) -> None:
    command = dict(commands())[words]
    output = option(command, "--output")
    assert output is not None, f"reconciler {' '.join(words)} has no --output"
    assert "-o" in output.opts
    annotation = output.type_descriptor.annotation
    assert isinstance(annotation, type) and issubclass(annotation, Enum), annotation
    assert "json" in {member.value for member in annotation}
    assert not output.type_descriptor.is_path


@pytest.mark.parametrize("words", [words for words, _ in commands()], ids=" ".join)
def test_no_command_takes_a_file_with_o(words: tuple[str, ...]) -> None:
    command = dict(commands())[words]
    for param in command.params:
        if "-o" in getattr(param, "opts", []):
            assert param.opts[0] == "--output" or "--output" in param.opts, param.opts
        if param.type_descriptor.is_path and "--out" not in param.opts:
            assert not {"--output", "-o"} & set(param.opts), param.opts


def test_every_printing_commands_help_shows_output_table_or_json(
    helps: dict[tuple[str, ...], str],
) -> None:
    for words in PRINTING:
        text = helps[words]
        assert "--output" in text and "-o" in text, words
        assert "json" in text, words
    assert "--out " in helps[("schema",)]


PYTHON_NAMES = ("<bool>", "<str>", "<int", "<float>", "<path>", "<list", "list[", "Path]", "``")
"""What typer or a docstring would leak into help: type names, reStructuredText literals."""


def test_no_help_shows_python_type_names_or_double_backticks(
    helps: dict[tuple[str, ...], str],
) -> None:
    for words, text in helps.items():
        leaked = [name for name in PYTHON_NAMES if name in text]
        assert not leaked, (words, leaked, text)
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage and "}" not in usage, (words, usage)
    assert "PATHS..." in helps[("validate",)]
    assert "--server" in helps[("status",)] and "URL" in helps[("status",)]


def test_every_option_and_argument_says_what_it_is_for() -> None:
    root = typer.main.get_command(app)
    everything = [((), root), *commands()]
    missing = [
        (words, param.name)
        for words, command in everything
        for param in command.params
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert missing == []


def test_shell_completion_is_offered_and_prints_a_script(helps: dict[tuple[str, ...], str]) -> None:
    assert "--install-completion" in helps[()] and "--show-completion" in helps[()]
    done = subprocess.run(
        [*CLI, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        env={**without_settings(), "SHELL": "/bin/bash"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout and "_RECONCILER_COMPLETE" in done.stdout.upper()
