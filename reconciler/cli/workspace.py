"""Loading a path for the one-shot commands (``plan``, ``apply``, ``test``).

These commands act on the valid workflows of a path and still report the invalid ones: a broken
file never stops the good ones from being planned, applied or tested. This module turns paths into
that split (via the loader and validator, the same ones ``reconciler validate`` uses) and orders
the runnable workflows so that ``dependsOn`` is respected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.cli.validate import collect
from reconciler.config.snapshot import LoadedWorkflow, Problem, Snapshot
from reconciler.config.validate import validate_snapshot
from reconciler.plugin import PluginRegistry


@dataclass
class Workspace:
    """The workflows found under some paths: those that may run, and every problem."""

    snapshot: Snapshot
    runnable: dict[str, LoadedWorkflow]
    problems: list[Problem]
    invalid: dict[str, list[Problem]] = field(default_factory=dict)
    """Workflows that will not run, by name (or by file when no name could be read)."""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


def load_workspace(
    paths: Iterable[Path], registry: PluginRegistry, *, only: Iterable[str] = ()
) -> Workspace:
    """Load and validate ``paths``; keep the workflows without errors, optionally only ``only``.

    Raises :class:`typer.Exit` with one clear line when a path does not exist; reports "no
    workflow files" as a problem (the caller decides the exit code).
    """
    paths = list(paths)
    files = collect(paths)
    snapshot = Snapshot.from_files("local", files)
    problems = sorted(
        [*snapshot.problems, *validate_snapshot(snapshot, registry)],
        key=lambda p: (p.path, p.line, p.column, p.message),
    )
    if not snapshot.workflows and not snapshot.invalid and not problems:
        shown = ", ".join(str(p) for p in paths)
        problems.append(
            Problem(shown, 1, 1, "no workflow files (.yaml/.yml with kind: Workflow) found")
        )
    invalid: dict[str, list[Problem]] = {}
    for problem in problems:
        if problem.is_error:
            invalid.setdefault(problem.workflow or problem.path, []).append(problem)
    runnable = {name: lw for name, lw in snapshot.workflows.items() if name not in invalid}
    wanted = set(only)
    if wanted:
        runnable = {name: lw for name, lw in runnable.items() if name in wanted}
        invalid = {name: p for name, p in invalid.items() if name in wanted}
    return Workspace(snapshot=snapshot, runnable=runnable, problems=problems, invalid=invalid)


def dependency_order(workflows: dict[str, LoadedWorkflow]) -> list[str]:
    """Names ordered so each comes after the workflows it depends on (ties by name).

    Dependencies outside ``workflows`` are ignored here (the caller reports them); the validator
    has already refused cycles, and any left over are appended in name order.
    """
    remaining = {
        name: {d for d in lw.workflow.spec.depends_on if d in workflows}
        for name, lw in workflows.items()
    }
    order: list[str] = []
    while remaining:
        ready = sorted(name for name, deps in remaining.items() if not deps)
        if not ready:
            order.extend(sorted(remaining))
            break
        for name in ready:
            order.append(name)
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order
