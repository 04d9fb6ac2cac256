"""What the loader hands on: every workflow of one revision, with its problems and positions.

:mod:`reconciler.config.loader` turns files into :class:`FileResult` objects and assembles them
here into a :class:`Snapshot`; :func:`reconciler.daemon.target.select_target` (the daemon at each
revision, and the one-shot commands) adds the static checks of :mod:`reconciler.config.validate`
and splits it into valid, invalid and removed workflows. ``Snapshot.workflows`` are the ones that
loaded; ``Snapshot.invalid`` names those that did not (marked ``Invalid``, so that the last good
version keeps its status).

Everything here is plain data. A :class:`Snapshot` can be rebuilt incrementally with
:meth:`Snapshot.from_files`: re-load only the files that changed and reuse the other
:class:`FileResult` objects, which are never mutated after they are built.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel

from reconciler.config.models import Workflow
from reconciler.config.notifications import Alert, Provider

Severity = Literal["error", "warning"]
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, at a 1-based ``line`` and ``column``.

    ``workflow`` names the workflow the problem belongs to when it is known, so the daemon can
    mark exactly that workflow ``Invalid``. ``message`` never contains a secret value.
    """

    path: str
    line: int
    column: int
    message: str
    severity: Severity = "error"
    workflow: str | None = None
    document: str | None = None
    """``Kind/name`` of the notification document (Provider, Alert) the problem belongs to: it
    makes that document invalid, and no workflow."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"

    def format(self) -> str:
        """``path:line:col: severity: message``, as ``reconciler validate`` prints it."""
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "message": self.message,
            "workflow": self.workflow,
        }

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class NodePos:
    """Where a YAML node sits: its key (for mapping entries) and its value, 1-based."""

    key: tuple[int, int] | None
    value: tuple[int, int]
    scalar: bool


def workflow_document(workflow: Workflow) -> dict[str, Any]:
    """The normalised model as JSON data (camelCase keys, as in a file): what the digest hashes,
    and what :meth:`Workflow.model_validate` turns back into an equal workflow. It holds what
    the file holds (secret references, never their values)."""
    data: dict[str, Any] = workflow.model_dump(mode="json", by_alias=True)
    return data


def document_digest(document: Mapping[str, Any]) -> str:
    """sha256 of a :func:`workflow_document` as sorted JSON."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def workflow_digest(workflow: Workflow) -> str:
    """sha256 of the normalised model as sorted JSON (insensitive to formatting and shorthands)."""
    return document_digest(workflow_document(workflow))


@dataclass(frozen=True)
class LoadedWorkflow:
    """A workflow that passed the schema, with where it came from.

    ``digest`` is the sha256 of the normalised model as sorted JSON: equal digests mean equal
    specs whatever the formatting, key order or shorthands, so the planner uses it to detect
    "spec changed". ``positions`` maps a path into the YAML document (mapping keys as strings,
    list indices as ints, the same shape as a pydantic error ``loc`` by alias) to its position;
    use :meth:`locate` rather than reading it directly.
    """

    workflow: Workflow
    path: str
    line: int
    positions: Mapping[Loc, NodePos] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.workflow.name

    @cached_property
    def digest(self) -> str:
        """Computed on first use: loading and validating never need it, the planner does."""
        return workflow_digest(self.workflow)

    @property
    def document(self) -> dict[str, Any]:
        """:func:`workflow_document` of the workflow, made anew on each call (what a run's record
        keeps): not cached, since every workflow's digest is wanted but only a running one's
        document, and 10,000 documents kept would cost more memory than the workflows."""
        return workflow_document(self.workflow)

    def locate(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """``(line, column)`` of the node at ``loc`` (a path in the *normalised* model).

        Paths that only exist after normalisation are mapped back to what the author wrote:
        ``do[0]`` of a state written with ``action:`` points at ``action``, and the transitions
        appended for ``next:``/``onError:`` point at those keys. A path that does not exist
        (a missing field) falls back to its nearest existing ancestor. Scalars report their
        value's position unless ``key`` is true; mappings and lists report their key's.
        """
        return locate(self.positions, loc, key=key, default=(self.line, 1))


def locate(
    positions: Mapping[Loc, NodePos],
    loc: Loc,
    *,
    key: bool = False,
    default: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    """Position of ``loc`` in a position map; see :meth:`LoadedWorkflow.locate`."""
    resolved: list[str | int] = []
    best: NodePos | None = positions.get(())
    i = 0
    while i < len(loc):
        part = loc[i]
        candidate = (*resolved, part)
        pos = positions.get(candidate)
        if pos is None and part == "do" and (*resolved, "action") in positions:
            # ``action: {...}`` was normalised into ``do: [{...}]``.
            resolved.append("action")
            best = positions[tuple(resolved)]
            if i + 1 < len(loc) and loc[i + 1] == 0:
                i += 1
            i += 1
            continue
        if part == "transitions" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            assert isinstance(index, int)
            written = 0
            while (*resolved, "transitions", written) in positions:
                written += 1
            if index >= written:
                extras = [k for k in ("next", "onError") if (*resolved, k) in positions]
                extra = index - written
                if extra < len(extras):
                    hit = positions[(*resolved, extras[extra])]
                    return _pick(hit, key=key or i + 2 < len(loc))
                break
        if pos is None:
            break
        resolved.append(part)
        best = pos
        i += 1
    if best is None:
        return default
    complete = i >= len(loc)
    return _pick(best, key=key or not complete)


def _pick(pos: NodePos, *, key: bool) -> tuple[int, int]:
    if pos.key is not None and (key or not pos.scalar):
        return pos.key
    return pos.value


@dataclass(frozen=True)
class LoadedNotification:
    """A Provider or Alert document that passed the schema, with where it came from (so that a
    later check, an alert naming an unknown provider, can point at the line)."""

    document: Provider | Alert
    path: str
    line: int
    positions: Mapping[Loc, NodePos] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def kind(self) -> str:
        return self.document.kind

    def locate(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """``(line, column)`` of the node at ``loc``, as :meth:`LoadedWorkflow.locate`."""
        return locate(self.positions, loc, key=key, default=(self.line, 1))


@dataclass(frozen=True)
class FileResult:
    """Everything one file produced: its valid workflows, its problems, and failed names.

    ``invalid_names`` holds the ``metadata.name`` of every document that failed to load but
    whose name could still be read, so the daemon can mark exactly those workflows ``Invalid``
    while the file's other documents load normally.
    """

    path: str
    workflows: list[LoadedWorkflow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid_names: set[str] = field(default_factory=set)
    notifications: list[LoadedNotification] = field(default_factory=list)
    """The file's valid Provider and Alert documents."""
    digest: str = ""
    """sha256 of the file's bytes, so a caller can tell whether a re-read is needed."""


_FIELD_SETS: dict[frozenset[str], set[str]] = {}
"""One ``__pydantic_fields_set__`` per distinct set of field names (a few dozen at most)."""


def compact(result: FileResult) -> None:
    """Let the models of ``result`` that list the same fields as set share one set of names.

    Pydantic gives every model instance its own set of the fields its input gave (a workflow is
    about a dozen models, and their sets weigh a third of it: 30 MB of a daemon holding 10,000
    workflows). The models of the workflow format are frozen, so nothing adds to those sets:
    :meth:`~pydantic.BaseModel.model_copy` copies the set before it updates it. The daemon
    calls this on what it keeps; a one-shot command, which drops what it loads, need not.
    """
    stack: list[Any] = [lw.workflow for lw in result.workflows]
    stack.extend(ln.document for ln in result.notifications)
    shared = _FIELD_SETS
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
        elif isinstance(value, BaseModel) and kind.model_config.get("frozen"):
            own = value.__pydantic_fields_set__
            common = shared.setdefault(frozenset(own), own)
            if common is not own:
                object.__setattr__(value, "__pydantic_fields_set__", common)
            stack.extend(value.__dict__.values())


def _where(lw: LoadedWorkflow) -> str:
    return f"{lw.path}:{lw.locate(('metadata', 'name'))[0]}"


@dataclass
class Snapshot:
    """Every workflow of one revision.

    ``workflows`` holds only workflows that loaded and whose name is unique; ``invalid`` maps
    each workflow name that failed (schema errors, duplicates) to its problems; ``problems`` is
    every load problem, in file order; ``files`` keeps each file's :class:`FileResult` by the
    path it was loaded under, for incremental rebuilds.
    """

    revision: str
    workflows: dict[str, LoadedWorkflow] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    invalid: dict[str, list[Problem]] = field(default_factory=dict)
    files: dict[str, FileResult] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    """Valid Provider documents by name (a name defined twice is a problem, and neither kept)."""
    alerts: dict[str, Alert] = field(default_factory=dict)
    """Valid Alert documents by name whose every provider reference names a valid provider."""

    @classmethod
    def from_files(
        cls,
        revision: str,
        files: Mapping[str, FileResult],
        *,
        previous: Snapshot | None = None,
    ) -> Snapshot:
        """Assemble a snapshot from per-file results (reused unchanged between revisions).

        A name defined more than once (in one file or across files, valid or not) is a
        problem on every definition, and none of them is in ``workflows``.

        ``previous`` is the snapshot ``files`` was derived from (the unchanged files' results
        are the same objects): when the files that changed replace plain results (workflows
        only: no problem, no invalid name, no notification) by plain results defining the
        same names, the new snapshot is ``previous`` with those workflows swapped, in time
        proportional to the change; otherwise, and always without ``previous``, it is
        assembled from every file. Both give equal snapshots.
        """
        if previous is not None:
            quick = _swapped(revision, files, previous)
            if quick is not None:
                return quick
        ordered = dict(sorted(files.items()))
        problems: list[Problem] = []
        # Run at every revision over every file (10,000 at a time), so the common case (each
        # name defined once, by a file without problems) costs one dictionary entry per file.
        defined: dict[str, LoadedWorkflow] = {}
        again: dict[str, list[LoadedWorkflow]] = {}
        failed: dict[str, list[str]] = defaultdict(list)
        invalid: dict[str, list[Problem]] = defaultdict(list)
        for result in ordered.values():
            for lw in result.workflows:
                name = lw.workflow.metadata.name
                if name in defined:
                    again.setdefault(name, [defined[name]]).append(lw)
                else:
                    defined[name] = lw
            if not result.problems and not result.invalid_names:  # the common case
                continue
            problems.extend(result.problems)
            for name in sorted(result.invalid_names):
                failed[name].append(result.path)
            for problem in result.problems:
                if problem.workflow is not None and problem.workflow in result.invalid_names:
                    invalid[problem.workflow].append(problem)
        workflows = {n: lw for n, lw in defined.items() if n not in again and n not in failed}
        if again or failed:
            for dup in _duplicates(defined, again, failed):
                problems.append(dup)
                invalid[dup.workflow or ""].append(dup)
        providers, alerts, notes = _notifications(ordered.values())
        return cls(
            revision=revision,
            workflows=workflows,
            problems=problems + notes,
            invalid=dict(invalid),
            files=ordered,
            providers=providers,
            alerts=alerts,
        )

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


def _duplicates(
    defined: Mapping[str, LoadedWorkflow],
    again: Mapping[str, list[LoadedWorkflow]],
    failed: Mapping[str, list[str]],
) -> Iterator[Problem]:
    """The problem on each definition of a name defined more than once: ``defined`` holds the
    first valid definition of each name, ``again`` every valid one of names defined again, and
    ``failed`` the paths of the invalid ones."""
    for name in [n for n in defined if n in again or n in failed]:
        lws = again.get(name, [defined[name]])
        places = [_where(lw) for lw in lws] + failed.get(name, [])
        for lw in lws:
            others = [p for p in places if p != _where(lw)]
            yield Problem(
                lw.path,
                *lw.locate(("metadata", "name")),
                f"duplicate workflow name {name!r} (also defined at {', '.join(others)})",
                workflow=name,
            )


def _plain(result: FileResult) -> bool:
    """Whether ``result`` holds workflows only (nothing that names or invalidates anything)."""
    return not result.problems and not result.invalid_names and not result.notifications


def _swapped(revision: str, files: Mapping[str, FileResult], previous: Snapshot) -> Snapshot | None:
    """:meth:`Snapshot.from_files` of ``files`` as a change of ``previous``, or None when the
    change is not a plain swap of workflows (then every file is assembled again)."""
    before = previous.files
    if previous.invalid or len(files) != len(before):
        return None
    changed = [path for path, result in files.items() if before.get(path) is not result]
    if any(path not in before for path in changed):
        return None  # a new path: files were added (and as many removed)
    workflows = dict(previous.workflows)
    ordered = dict(before)
    for path in changed:
        old, new = before[path], files[path]
        if not (_plain(old) and _plain(new)):
            return None
        names = [lw.workflow.metadata.name for lw in new.workflows]
        if names != [lw.workflow.metadata.name for lw in old.workflows]:
            return None  # names added, removed or moved: their order and clashes change
        for name, lw in zip(names, new.workflows, strict=True):
            workflows[name] = lw  # in place: the order stays that of the files
        ordered[path] = new
    return replace(
        previous,
        revision=revision,
        workflows=workflows,
        files=ordered,
        problems=list(previous.problems),
        invalid={},
    )


def _notifications(
    results: Iterable[FileResult],
) -> tuple[dict[str, Provider], dict[str, Alert], list[Problem]]:
    """The valid providers and alerts of all files, and the problems across documents: a
    name defined twice (per kind), an alert naming a provider that is not (validly) defined."""
    by_kind: dict[str, dict[str, list[LoadedNotification]]] = {"Provider": {}, "Alert": {}}
    failed: set[str] = set()
    for result in results:
        for ln in result.notifications:
            by_kind[ln.kind].setdefault(ln.name, []).append(ln)
        if result.problems:
            failed |= {p.document for p in result.problems if p.document is not None}
    problems: list[Problem] = []
    unique: dict[str, dict[str, LoadedNotification]] = {}
    for kind, named in by_kind.items():
        unique[kind] = {}
        for name, found in named.items():
            if len(found) == 1:
                unique[kind][name] = found[0]
                continue
            for ln in found:
                problems.append(
                    Problem(
                        ln.path,
                        *ln.locate(("metadata", "name")),
                        f"duplicate {kind} name {name!r}; none of its definitions is used",
                        document=f"{kind}/{name}",
                    )
                )
    providers = {n: ln.document for n, ln in unique["Provider"].items()}
    alerts: dict[str, Alert] = {}
    for name, ln in unique["Alert"].items():
        alert = ln.document
        assert isinstance(alert, Alert)
        unknown = [
            (i, ref) for i, ref in enumerate(alert.spec.provider_refs) if ref not in providers
        ]
        for i, ref in unknown:
            why = "is invalid" if f"Provider/{ref}" in failed else "is not defined"
            problems.append(
                Problem(
                    ln.path,
                    *ln.locate(("spec", "providerRefs", i)),
                    f"alert {name!r}: provider {ref!r} {why}; the alert is not used",
                    document=f"Alert/{name}",
                )
            )
        if not unknown:
            alerts[name] = alert
    return (
        {n: p for n, p in providers.items() if isinstance(p, Provider)},
        alerts,
        problems,
    )
