"""Loading a path for the one-shot commands (``plan``, ``apply``, ``test``).

These commands act on the valid workflows of a path and still report the invalid ones: a broken
file never stops the good ones from being planned, applied or tested. This module turns paths into
that split — the daemon's own (:func:`reconciler.daemon.target.select_target`), over the loader
``reconciler validate`` uses — and orders the runnable workflows so that ``dependsOn`` is
respected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.cli.progress import progress_bars
from reconciler.cli.validate import collect
from reconciler.config.snapshot import LoadedWorkflow, Problem, Snapshot
from reconciler.daemon.target import dependency_order, select_target

__all__ = ["Workspace", "dependency_order", "load_workspace"]
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
    with progress_bars() as step:
        snapshot = Snapshot.from_files("local", collect(paths, progress=step("reading files")))
        target = select_target(snapshot, registry, progress=step("checking workflows"))
    problems = sorted(target.problems, key=lambda p: (p.path, p.line, p.column, p.message))
    # Files that name no workflow (they do not parse) are reported under their path.
    invalid = {**target.unreadable, **target.invalid}
    if not snapshot.workflows and not snapshot.invalid and not problems:
        shown = ", ".join(str(p) for p in paths)
        nothing = Problem(shown, 1, 1, "no workflow files (.yaml/.yml with kind: Workflow) found")
        problems.append(nothing)
        invalid[shown] = [nothing]
    runnable = target.valid
    wanted = set(only)
    if wanted:
        runnable = {name: lw for name, lw in runnable.items() if name in wanted}
        invalid = {name: p for name, p in invalid.items() if name in wanted}
    return Workspace(snapshot=snapshot, runnable=runnable, problems=problems, invalid=invalid)
