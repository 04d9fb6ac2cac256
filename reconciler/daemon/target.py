"""The target: which workflows of a snapshot may run, which are invalid, which are gone.

:func:`select_target` is the one place where a loaded snapshot and a plugin registry become the
three sets every caller acts on — ``valid`` (they run), ``invalid`` (they are marked ``Invalid``
and keep their last good status) and ``removed`` (gone from git: their ``onDelete`` state runs
and they are retired). It is pure: the same snapshot, registry and previous target always give
the same target.

Called by: :mod:`reconciler.daemon.revision` for each new revision (with the previous target),
and by the one-shot commands (``reconciler plan``/``apply``/``test``, through
:mod:`reconciler.cli.workspace`) with no previous target. Calls: the static checks of
:mod:`reconciler.config.validate`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path

from reconciler.config.snapshot import FileResult, LoadedWorkflow, Problem, Snapshot
from reconciler.config.validate import ValidationCache, validate_snapshot
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry


@dataclass
class Target:
    """What the daemon knows about the workflows of one snapshot.

    A new target replaces the old one at each revision; between revisions only ``removed`` and
    ``orphans`` shrink (as workflows are retired).
    """

    snapshot: Snapshot | None = None
    """The snapshot this target was selected from (``None`` before the first revision)."""
    valid: dict[str, LoadedWorkflow] = field(default_factory=dict)
    invalid: dict[str, list[Problem]] = field(default_factory=dict)
    """Workflows that will not run, by name, with the errors that stop them."""
    removed: dict[str, LoadedWorkflow] = field(default_factory=dict)
    """Workflows gone from git, waiting for their onDelete run and retirement."""
    orphans: set[str] = field(default_factory=set)
    """Statuses in the store of workflows that were already gone from git when the daemon
    started: their spec is unknown, so they are retired without an onDelete run."""
    problems: list[Problem] = field(default_factory=list)
    """Every problem found: the loader's and the static checks' (errors and warnings)."""
    unreadable: dict[str, list[Problem]] = field(default_factory=dict)
    """Files that name no workflow any more (they do not parse, or were refused): path → errors."""
    dependents: dict[str, list[str]] = field(default_factory=dict, init=False)
    """Name → the valid workflows whose ``dependsOn`` lists it (so waking them is not a scan
    of every workflow each time one converges), in no particular order."""
    known_dependents: InitVar[dict[str, list[str]] | None] = None
    """:attr:`dependents` when the caller already has them (:func:`select_target` updates the
    previous target's for what changed); built from ``valid`` when ``None``."""

    def __post_init__(self, known_dependents: dict[str, list[str]] | None) -> None:
        if known_dependents is not None:
            self.dependents = known_dependents
            return
        for other, lw in self.valid.items():
            for dep in dict.fromkeys(lw.workflow.spec.depends_on):
                self.dependents.setdefault(dep, []).append(other)

    @property
    def revision(self) -> str:
        return self.snapshot.revision if self.snapshot is not None else ""

    def knows(self, name: str) -> bool:
        """Whether ``name`` is in git at this revision (valid or not)."""
        return name in self.valid or name in self.invalid


def select_target(
    snapshot: Snapshot,
    registry: PluginRegistry,
    *,
    previous: Target | None = None,
    grants: Grants | None = None,
    workdir: Path | None = None,
    cache: ValidationCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Target:
    """Split ``snapshot`` into valid, invalid and removed workflows.

    A workflow is invalid when the loader or the static checks (against ``registry``, and
    ``grants`` when given) report an error for it. A file that no longer parses names no
    workflow: the workflows it held in ``previous`` are invalid, never removed. A workflow of
    ``previous`` that is in no file any more is removed (and stays so until it is retired or
    comes back). ``orphans`` carry over from ``previous``, minus those that came back.
    ``progress`` is told how far the static checks are (see ``validate_snapshot``).
    """
    checked = validate_snapshot(
        snapshot, registry, cache=cache, grants=grants, workdir=workdir, progress=progress
    )
    invalid: dict[str, list[Problem]] = {k: list(v) for k, v in snapshot.invalid.items()}
    for problem in checked:
        if problem.is_error and problem.workflow in snapshot.workflows:
            invalid.setdefault(problem.workflow, []).append(problem)
    before = previous.snapshot.files if previous is not None and previous.snapshot else {}
    unreadable = unreadable_files(snapshot)
    for name, problems in _held_by_broken_files(snapshot, unreadable, before).items():
        invalid.setdefault(name, []).extend(problems)
    valid = (
        {n: lw for n, lw in snapshot.workflows.items() if n not in invalid}
        if invalid
        else dict(snapshot.workflows)  # the common case, a copy
    )
    removed, orphans = _gone(previous, valid, invalid, before) if previous else ({}, set())
    return Target(
        snapshot=snapshot,
        valid=valid,
        invalid=invalid,
        removed=removed,
        orphans=orphans,
        problems=[*snapshot.problems, *checked],
        unreadable=unreadable,
        known_dependents=_dependents_after(previous, valid) if previous is not None else None,
    )


def _gone(
    previous: Target,
    valid: Mapping[str, LoadedWorkflow],
    invalid: Mapping[str, list[Problem]],
    before: Mapping[str, FileResult],
) -> tuple[dict[str, LoadedWorkflow], set[str]]:
    """The removed workflows and the orphans after ``previous``, found with set operations on
    the names: a revision of 100,000 workflows walks none of them in Python."""
    removed = {n: lw for n, lw in previous.removed.items() if n not in valid and n not in invalid}
    gone = (previous.valid.keys() | previous.invalid.keys()) - valid.keys() - invalid.keys()
    for name in gone:
        last = previous.valid.get(name) or _last_known(name, before)
        if last is not None:
            removed[name] = last
    orphans = {n for n in previous.orphans if n not in valid and n not in invalid}
    return removed, orphans


def _dependents_after(
    previous: Target, valid: Mapping[str, LoadedWorkflow]
) -> dict[str, list[str]]:
    """``previous.dependents`` updated for the workflows of ``valid`` that changed, came or
    left: a revision changing one file of 100,000 does not read every workflow's ``dependsOn``
    again (an unchanged workflow is the same object in both)."""
    before = previous.valid
    changed = [n for n, lw in valid.items() if before.get(n) is not lw]
    changed += [n for n in before.keys() - valid.keys()]
    if not changed:
        return previous.dependents
    touched = set(changed)
    dependents = {
        dep: [o for o in others if o not in touched] for dep, others in previous.dependents.items()
    }
    for name in changed:
        lw = valid.get(name)
        for dep in dict.fromkeys(lw.workflow.spec.depends_on if lw is not None else ()):
            dependents.setdefault(dep, []).append(name)
    return {dep: others for dep, others in dependents.items() if others}


def unreadable_files(snapshot: Snapshot) -> dict[str, list[Problem]]:
    """The errors of each file that names no workflow (it does not parse, or was refused)."""
    found: dict[str, list[Problem]] = {}
    for path, result in snapshot.files.items():
        if not result.problems:  # the common case
            continue
        nameless = [
            p for p in result.problems if p.is_error and p.workflow is None and p.document is None
        ]
        if nameless:
            found[path] = nameless
    return found


def _held_by_broken_files(
    snapshot: Snapshot, unreadable: dict[str, list[Problem]], before: dict[str, FileResult]
) -> dict[str, list[Problem]]:
    """Workflows a file held before it broke, with that file's errors."""
    held: dict[str, list[Problem]] = {}
    for path, nameless in unreadable.items():
        old = before.get(path)
        for lw in old.workflows if old is not None else ():
            if lw.name not in snapshot.workflows:
                held.setdefault(lw.name, []).extend(nameless)
    return held


def _last_known(name: str, files: Mapping[str, FileResult]) -> LoadedWorkflow | None:
    for result in files.values():
        for lw in result.workflows:
            if lw.name == name:
                return lw
    return None


def dependency_order(workflows: Mapping[str, LoadedWorkflow]) -> list[str]:
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
