"""``reconciler validate PATH...``: load and statically check workflow files, for people and CI.

Sits at the very front of the flow (files → loader → snapshot → **validate**) and runs nothing.
It calls :func:`reconciler.config.loader.load_tree`/:func:`~reconciler.config.loader.load_file`
and :func:`reconciler.config.validate.validate_snapshot` with the installed plugins, then prints
every problem as ``path:line:col: severity: message`` and a summary.

Literal paths and ``env:``/``file:`` references are checked against grants built like the
daemon's: ``--file-root`` (repeatable, default the current directory) and ``--allow-env``
(default ``RECONCILER_SECRET_*``), with the default data directory ``.reconciler`` denied as
``reconciler run`` denies it.

Exit codes: 0 valid (warnings allowed), 1 invalid (at least one error, or nothing to validate),
2 the command could not run (a path that does not exist).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from reconciler.cli.app import OutputFormat, OutputOption, app, console, fail
from reconciler.cli.progress import progress_bars
from reconciler.config.loader import load_file, load_tree
from reconciler.config.snapshot import FileResult, Problem, Snapshot
from reconciler.config.validate import validate_snapshot
from reconciler.grants import DEFAULT_DATA_DIR, Grants
from reconciler.plugin import PluginRegistry


def collect(
    paths: list[Path], *, progress: Callable[[int, int], None] | None = None
) -> dict[str, FileResult]:
    """Every workflow file under ``paths``, keyed by its path as the user would write it;
    ``progress`` follows the reading of each directory.

    Raises :class:`typer.Exit` (code 2) with one clear line for a path that does not exist.
    """
    files: dict[str, FileResult] = {}
    for path in paths:
        if not path.exists():
            raise fail(f"{path}: no such file or directory")
        if path.is_dir():
            tree = load_tree(path, display_root=path, progress=progress)
            for result in tree.files.values():
                files[result.path] = result
        else:
            result = load_file(path, display=path.as_posix())
            files[result.path] = result
    return files


def local_grants(file_roots: list[Path] | None, allow_env: str | None) -> Grants:
    """The grants ``reconciler run`` would have with these flags in the current directory and
    its default data directory."""
    data_dir = DEFAULT_DATA_DIR
    return Grants.for_daemon(
        workdir=Path.cwd(),
        file_roots=file_roots or None,
        allow_env=None
        if allow_env is None
        else [item.strip() for item in allow_env.split(",") if item.strip()],
        deny=[data_dir],
    )


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Workflow files or directories to check.")],
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Action states without a failure transition are errors."),
    ] = False,
    file_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--file-root",
            metavar="DIR",
            help="Directory workflows may read and write under, as for run (repeatable; "
            "default: the current directory).",
        ),
    ] = None,
    allow_env: Annotated[
        str | None,
        typer.Option(
            "--allow-env",
            metavar="GLOBS",
            help="Comma-separated globs of variables env: references may read, as for run "
            "(default: RECONCILER_SECRET_*).",
        ),
    ] = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Check workflow files and print every problem as path:line:col.

    Checks YAML, schema, plugins, CEL, state machine, dependencies, secrets, literal paths and
    variables against the file roots and allowed variables.
    """
    registry = PluginRegistry.discover()
    grants = local_grants(file_root, allow_env)
    with progress_bars() as step:
        files = collect(paths, progress=step("reading files"))
        snapshot = Snapshot.from_files("validate", files)
        checked = validate_snapshot(
            snapshot, registry, strict=strict, grants=grants, progress=step("checking workflows")
        )
    problems = sorted(
        [*snapshot.problems, *checked],
        key=lambda p: (p.path, p.line, p.column, p.message),
    )
    workflows = len(snapshot.workflows) + len(snapshot.invalid)
    if workflows == 0 and not any(p.is_error for p in problems):
        shown = ", ".join(str(p) for p in paths)
        problems.append(
            Problem(shown, 1, 1, "no workflow files (.yaml/.yml with kind: Workflow) found")
        )
    errors = sum(1 for p in problems if p.is_error)
    warnings = len(problems) - errors
    summary = {
        "files": len(files),
        "workflows": workflows,
        "errors": errors,
        "warnings": warnings,
        "valid": errors == 0,
    }
    if output is OutputFormat.json:
        print(json.dumps({"problems": [p.as_dict() for p in problems], "summary": summary}))
    else:
        _print_text(problems, summary)
    if errors:
        raise typer.Exit(1)


def _print_text(problems: list[Problem], summary: dict[str, int | bool]) -> None:
    for problem in problems:
        style = "red" if problem.is_error else "yellow"
        console.print(
            f"{escape(problem.path)}:{problem.line}:{problem.column}: "
            f"[{style}]{problem.severity}[/{style}]: {escape(problem.message)}",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
    verdict = "valid" if summary["valid"] else "invalid"
    console.print(
        f"{summary['files']} file(s), {summary['workflows']} workflow(s): "
        f"{summary['errors']} error(s), {summary['warnings']} warning(s): {verdict}",
        highlight=False,
        soft_wrap=True,
    )
