"""``reconciler graph``: print a workflow's state machine as Mermaid or Graphviz DOT.

Where it sits: a read-only view over the workflow files. It loads
workflow files with :func:`reconciler.config.loader.load_tree` (a directory) or
:func:`reconciler.config.loader.load_file` (one file), exactly as ``reconciler validate`` and the
daemon do, and draws one workflow with :mod:`reconciler.engine.graph`. It runs nothing.

``--current`` and ``--visited`` mark a run's position by hand; when runs can be read from the
store the same arguments will be filled from a run id (``current_state`` and the states the
journal entered), so the drawing functions already take them.

``-o json`` prints one JSON document instead: the workflow, the format, the diagram text, its
states and the marks given, for scripts that embed the diagram.

Exit codes follow :mod:`reconciler.cli.app`: 0 with the diagram on stdout; 1 when the workflow
asked for is invalid (its problems on stderr, see ``reconciler validate``); 2 when the path,
workflow or state does not exist, or the directory holds several workflows and none was named.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from reconciler.cli.app import OutputFormat, OutputOption, app, err_console, fail
from reconciler.config.loader import load_file, load_tree
from reconciler.config.models import Workflow
from reconciler.config.snapshot import Snapshot
from reconciler.engine.graph import to_dot, to_mermaid

__all__ = ["GraphFormat", "graph_command", "render_graph"]


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"


def render_graph(
    workflow: Workflow,
    fmt: GraphFormat = GraphFormat.mermaid,
    *,
    current: str | None = None,
    visited: list[str] | None = None,
) -> str:
    """The diagram text of ``workflow`` in ``fmt`` (what the command prints)."""
    draw = to_dot if fmt is GraphFormat.dot else to_mermaid
    return draw(workflow, current=current, visited=visited or [])


@app.command("graph")
def graph_command(
    path: Annotated[
        Path, typer.Argument(help="A workflow file, or a directory of workflow files.")
    ],
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="NAME",
            help="Name of the workflow to draw (needed if there are several).",
        ),
    ] = None,
    fmt: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="mermaid (stateDiagram-v2) or dot (Graphviz)."),
    ] = GraphFormat.mermaid,
    current: Annotated[
        str | None,
        typer.Option("--current", metavar="STATE", help="State to highlight as current."),
    ] = None,
    visited: Annotated[
        str | None,
        typer.Option(
            "--visited",
            metavar="STATES",
            help="Comma-separated states a run went through, styled as visited.",
        ),
    ] = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Print a workflow's state diagram (Mermaid or DOT), optionally with a run's position."""
    snapshot = _load(path)
    chosen = _choose(snapshot, path, workflow)
    states = chosen.spec.states
    path_taken = [s.strip() for s in visited.split(",") if s.strip()] if visited else []
    for name in [*([current] if current is not None else []), *path_taken]:
        if name not in states:
            raise fail(
                escape(
                    f"workflow {chosen.name!r} has no state {name!r}{_did_you_mean(name, states)}; "
                    f"its states: {', '.join(states)}"
                )
            )
    diagram = render_graph(chosen, fmt, current=current, visited=path_taken)
    if output is OutputFormat.json:
        document = {
            "workflow": chosen.name,
            "format": fmt.value,
            "diagram": diagram,
            "states": list(states),
            "current": current,
            "visited": path_taken,
        }
        typer.echo(json.dumps(document))
        return
    typer.echo(diagram, nl=False)


def _load(path: Path) -> Snapshot:
    if path.is_dir():
        return load_tree(path, display_root=path)
    if path.is_file():
        result = load_file(path, display=path.as_posix())
        return Snapshot.from_files("", {path.as_posix(): result})
    raise fail(f"{escape(path.as_posix())}: no such file or directory")


def _choose(snapshot: Snapshot, path: Path, name: str | None) -> Workflow:
    shown = escape(path.as_posix())
    if name is not None:
        if name in snapshot.workflows:
            return snapshot.workflows[name].workflow
        if name in snapshot.invalid:
            raise _invalid(name, snapshot)
        known = sorted(snapshot.workflows)
        listing = f"; found: {', '.join(known)}" if known else ""
        raise fail(
            escape(f"no workflow named {name!r} in {path}{_did_you_mean(name, known)}{listing}")
        )
    if len(snapshot.workflows) == 1 and not snapshot.invalid:
        return next(iter(snapshot.workflows.values())).workflow
    if not snapshot.workflows and len(snapshot.invalid) == 1:
        raise _invalid(next(iter(snapshot.invalid)), snapshot)
    names = sorted({*snapshot.workflows, *snapshot.invalid})
    if not names:
        for problem in snapshot.problems:
            err_console.print(escape(problem.format()), highlight=False, soft_wrap=True)
        raise fail(f"no workflow found in {shown}")
    raise fail(f"{shown} holds several workflows; pick one with --workflow: {', '.join(names)}")


def _invalid(name: str, snapshot: Snapshot) -> typer.Exit:
    for problem in snapshot.invalid[name]:
        err_console.print(escape(problem.format()), highlight=False, soft_wrap=True)
    return fail(f"workflow {name!r} is invalid; run `reconciler validate` for details", code=1)


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
