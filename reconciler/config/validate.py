"""Static validation: everything that can be known wrong about a snapshot before anything runs.

Called by: :func:`reconciler.daemon.target.select_target` (the daemon at each revision, and
``reconciler plan``/``apply``/``test``) and ``reconciler validate``. Calls: the plugin registry
(request models), the CEL compiler, :mod:`reconciler.config.credentials`. The loader has already
checked each document against the schema; this module checks what one model cannot: plugins exist and their ``with:`` fits their pydantic ``Request``, only check plugins
observe/poll/check, CEL compiles, states and transitions form a machine that can end, ``on:`` names
exist, ``dependsOn`` points at real workflows without cycles, and no clear-text credential sits
where a secret reference belongs. Given the operator's :class:`~reconciler.grants.Grants`, it also
reports what a run would refuse and can already be known: a literal path (no ``${{ }}``) in a
request field marked :class:`~reconciler.plugin.LocalPath` outside the file roots, and a literal
``env:``/``file:`` secret reference the grants do not allow (``PathNotAllowed: ...``,
``EnvNotAllowed: ...``). The runtime checks stay the enforcement; these are early reports.

Every problem carries the ``path:line:col`` of the offending node and the workflow's name, and no
check stops at the first problem. Messages never repeat a credential's value. ``reconciler
validate`` prints the problems; the daemon marks every workflow with an error ``Invalid``. The
daemon passes a :class:`ValidationCache`, so a workflow whose file a revision did not touch is
not validated again.

Why one module of ~750 lines: every check reports through one :class:`_Reporter` (which turns a
model path into ``path:line:col``) in one pass over each workflow's actions; what looks like a
credential, a concept of its own, is in :mod:`reconciler.config.credentials`.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.config.cost import static_problem
from reconciler.config.credentials import RANDOM_LITERAL, find_credentials
from reconciler.config.expressions import compile_expr, templates_in
from reconciler.config.models import Action, MockError, Spec, State, Workflow
from reconciler.config.shellquote import shell_fields_of, shell_problems
from reconciler.config.snapshot import LoadedWorkflow, Loc, Problem, Snapshot
from reconciler.errors import BUILTIN_ERROR_NAMES, ExpressionError, NotAllowed
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry, SubscribePlugin, local_path_fields

__all__ = [
    "ValidationCache",
    "find_credentials",
    "known_error_names",
    "validate_snapshot",
    "validate_workflow",
]

SECRET_HINT = (
    "use a secret reference: put `vault:...`/`env:NAME` under spec.secrets "
    "and write ${{ secrets.NAME }}"
)

_EXPECTING = re.compile(r" expecting \{[^}]*\}")
_SECRETS_REF = re.compile(
    r"(?<![\w.])secrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*[\"']([^\"']+)[\"']\s*\])?"
)


@dataclass(frozen=True)
class _ActionSite:
    """One plugin call in a workflow: where it is and what kind of plugin it needs."""

    loc: Loc
    plugin: str
    with_: Mapping[str, Any]
    role: str
    """``action``, ``observe``, ``check``, ``poll`` or ``subscribe``."""


class _Reporter:
    def __init__(self, lw: LoadedWorkflow) -> None:
        self.lw = lw
        self.problems: list[Problem] = []

    def add(self, loc: Loc, message: str, *, severity: str = "error", key: bool = False) -> None:
        line, column = self.lw.locate(loc, key=key)
        self.problems.append(
            Problem(
                self.lw.path,
                line,
                column,
                message,
                severity="warning" if severity == "warning" else "error",
                workflow=self.lw.name,
            )
        )


class ValidationCache:
    """Each workflow's own problems, kept between snapshots of a long-running process.

    The daemon re-validates every revision, but :meth:`Snapshot.from_files
    <reconciler.config.snapshot.Snapshot.from_files>` reuses the :class:`LoadedWorkflow` objects
    of unchanged files, and :func:`validate_workflow` depends only on that object, the registry
    and ``strict``. So results are kept by object identity (the entry holds the object, so its
    id cannot be reused meanwhile) and dropped when the registry or ``strict`` changes; a
    one-file commit then validates one workflow instead of all of them. Cross-workflow checks
    (``dependsOn``, ``workflow.run`` names) are always recomputed, from each workflow's child
    runs kept beside its problems (finding them walks every action of a workflow, which at
    10,000 workflows costs more than the rest of a one-file revision).
    """

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._key: tuple[int, bool, Grants | None, Path | None] | None = None
        self._last: dict[str, LoadedWorkflow] = {}
        """The workflows of the last snapshot checked, by name."""
        self._flagged: dict[str, _Entry] = {}
        """The entries of those with something for the snapshot's checks (a problem, a
        ``dependsOn``, a child run), by name: most workflows have none."""

    def __len__(self) -> int:
        return len(self._entries)

    def _problems(
        self,
        snapshot: Snapshot,
        registry: PluginRegistry,
        *,
        strict: bool,
        grants: Grants | None = None,
        workdir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> _Checked:
        key = (id(registry), strict, grants, workdir)
        if self._key != key:
            self._entries, self._last, self._flagged = {}, {}, {}
            self._key = key
        known_errors = known_error_names(registry)
        workflows = snapshot.workflows
        if progress is None and self._last and workflows.keys() == self._last.keys():
            # the same names as last time (a commit changing files, not names): only the
            # workflows that are new objects are looked at, not every name
            for name, lw in workflows.items():
                old = self._last[name]
                if old is not lw:
                    self._entries.pop(id(old), None)
                    self._remember(
                        name, self._entry(lw, registry, strict, known_errors, grants, workdir)
                    )
            self._last = dict(workflows)
            return _Checked.of(sorted(self._flagged.items(), key=lambda item: item[0]))
        entries: dict[int, _Entry] = {}
        self._flagged = {}
        names = sorted(workflows)
        for done, name in enumerate(names, start=1):
            if progress is not None:
                progress(done - 1, len(names))
            lw = workflows[name]
            entry = self._known(lw) or _validated(
                lw, registry, strict, known_errors, grants, workdir
            )
            entries[id(lw)] = entry
            self._remember(name, entry)
        self._entries = entries
        self._last = dict(workflows)
        return _Checked.of(self._flagged.items())

    def _entry(
        self,
        lw: LoadedWorkflow,
        registry: PluginRegistry,
        strict: bool,
        known_errors: AbstractSet[str],
        grants: Grants | None,
        workdir: Path | None,
    ) -> _Entry:
        entry = self._known(lw)
        if entry is None:
            entry = _validated(lw, registry, strict, known_errors, grants, workdir)
            self._entries[id(lw)] = entry
        return entry

    def _known(self, lw: LoadedWorkflow) -> _Entry | None:
        """The entry kept for this very object, if any (an id may have been reused)."""
        entry = self._entries.get(id(lw))
        return entry if entry is not None and entry[0] is lw else None

    def _remember(self, name: str, entry: _Entry) -> None:
        if entry[1] or entry[2] or entry[3]:
            self._flagged[name] = entry
        else:
            self._flagged.pop(name, None)


def _validated(
    lw: LoadedWorkflow,
    registry: PluginRegistry,
    strict: bool,
    known_errors: AbstractSet[str],
    grants: Grants | None,
    workdir: Path | None,
) -> _Entry:
    """A fresh :class:`ValidationCache` entry of ``lw``."""
    found, sites = _validate(
        lw, registry, strict=strict, known_errors=known_errors, grants=grants, workdir=workdir
    )
    return (lw, found, bool(lw.workflow.spec.depends_on), tuple(_children_of(sites)))


_Entry = tuple[LoadedWorkflow, list[Problem], bool, tuple[tuple[Loc, str], ...]]
"""A :class:`ValidationCache` entry: the workflow, its own problems, whether it has a
``dependsOn``, and its child runs by literal name (:func:`_children_of`)."""


@dataclass
class _Checked:
    """What :meth:`ValidationCache._problems` found: every workflow's own problems, and the
    workflows the cross-workflow checks look at (by name, in name order)."""

    problems: list[Problem]
    dependent: list[tuple[str, LoadedWorkflow]]
    """Workflows with a ``dependsOn``."""
    parents: list[tuple[str, LoadedWorkflow, tuple[tuple[Loc, str], ...]]]
    """Workflows that run others by literal name, with those runs."""

    @classmethod
    def of(cls, entries: Iterable[tuple[str, _Entry]]) -> _Checked:
        """What the entries found, ``(name, entry)`` in name order (fresh lists: the caller
        adds the cross-workflow problems to ``problems``)."""
        checked = cls([], [], [])
        for name, (lw, found, depends, children) in entries:
            checked.problems.extend(found)
            if depends:
                checked.dependent.append((name, lw))
            if children:
                checked.parents.append((name, lw, children))
        return checked


def validate_snapshot(
    snapshot: Snapshot,
    registry: PluginRegistry,
    *,
    strict: bool = False,
    cache: ValidationCache | None = None,
    grants: Grants | None = None,
    workdir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Problem]:
    """Static problems of every valid workflow in ``snapshot``, plus cross-workflow ones.

    Returns only what the static checks find; the loader's own problems (YAML, schema,
    duplicate names) are already in ``snapshot.problems``. ``dependsOn`` may name any workflow
    of the snapshot, including an invalid one (it exists; it just cannot converge yet).
    ``cache`` (one per long-lived caller) skips workflows validated in an earlier snapshot.
    ``grants`` (with the ``workdir`` relative paths resolve against, default the current
    directory) adds the checks of literal paths and ``env:``/``file:`` references; without
    grants they are skipped. ``progress`` is told ``(workflows checked, workflows in all)``
    as the checks go.
    """
    checked = (cache if cache is not None else ValidationCache())._problems(
        snapshot, registry, strict=strict, grants=grants, workdir=workdir, progress=progress
    )
    problems = checked.problems
    problems.extend(_check_dependencies(snapshot, checked.dependent))
    problems.extend(_check_child_runs(snapshot, checked.parents))
    return problems


def validate_workflow(
    lw: LoadedWorkflow,
    registry: PluginRegistry,
    *,
    strict: bool = False,
    known_errors: AbstractSet[str] | None = None,
    grants: Grants | None = None,
    workdir: Path | None = None,
) -> list[Problem]:
    """Static problems of one workflow. ``strict`` turns "no failure transition" into an error.

    ``known_errors`` is :func:`known_error_names` of ``registry``, when the caller validates
    many workflows (it is computed otherwise). ``grants`` and ``workdir``: see
    :func:`validate_snapshot`.
    """
    if known_errors is None:
        known_errors = known_error_names(registry)
    return _validate(
        lw, registry, strict=strict, known_errors=known_errors, grants=grants, workdir=workdir
    )[0]


def _validate(
    lw: LoadedWorkflow,
    registry: PluginRegistry,
    *,
    strict: bool,
    known_errors: AbstractSet[str],
    grants: Grants | None,
    workdir: Path | None,
) -> tuple[list[Problem], list[_ActionSite]]:
    """:func:`validate_workflow`, and the workflow's action sites (its child runs are read
    from them)."""
    report = _Reporter(lw)
    wf = lw.workflow
    sites = list(_action_sites(wf))
    templated = list(_templated_values(wf, sites))
    for site in sites:
        _check_action(site, registry, report)
    _check_expressions(wf, templated, report)
    _check_secrets(wf, templated, report)
    _check_credentials(wf, sites, report)
    _check_parameters(wf, report)
    if grants is not None:
        base = workdir if workdir is not None else Path.cwd()
        _check_grants(wf, sites, registry, report, grants=grants, base=base)
    _check_states(wf, registry, report, strict=strict, known_errors=known_errors)
    _check_tests(wf, registry, report, known_errors=known_errors)
    return report.problems, sites


class KnownErrorNames(AbstractSet[str]):
    """Every error name an ``on:`` list may use: the built-in ones and every plugin's.

    A set that asks ``registry`` only when it must: ``in`` answers from the built-in names and
    the plugins imported so far (those the workflows use), and imports the other plugins only
    for a name none of those declares; listing the set (for a "did you mean" hint) imports
    them all. Validating a workflow thus imports the plugins it names, not every one installed.
    """

    def __init__(self, registry: PluginRegistry) -> None:
        self._registry = registry

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in BUILTIN_ERROR_NAMES or self._registry.declares_error(name)

    def _all(self) -> frozenset[str]:
        return frozenset(BUILTIN_ERROR_NAMES | self._registry.error_names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def known_error_names(registry: PluginRegistry) -> AbstractSet[str]:
    """Every error name an ``on:`` list may use (:class:`KnownErrorNames`)."""
    return KnownErrorNames(registry)


# -- actions ---------------------------------------------------------------------------------


def _action_sites(wf: Workflow) -> Iterator[_ActionSite]:
    spec = wf.spec
    base: Loc = ("spec",)
    if spec.observe is not None:
        yield _site(spec.observe, (*base, "observe"), "observe")
    for i, action in enumerate(spec.checks.pre):
        yield _site(action, (*base, "checks", "pre", i), "check")
    if spec.checks.during is not None:
        for i, action in enumerate(spec.checks.during.checks):
            yield _site(action, (*base, "checks", "during", "checks", i), "check")
    for i, action in enumerate(spec.checks.post):
        yield _site(action, (*base, "checks", "post", i), "check")
    for name, state in spec.states.items():
        sloc: Loc = (*base, "states", name)
        for i, action in enumerate(state.do):
            yield _site(action, (*sloc, "do", i), "action")
        if state.foreach is not None:
            for i, action in enumerate(state.foreach.do):
                yield _site(action, (*sloc, "foreach", "do", i), "action")
        for j, tr in enumerate(state.transitions):
            tloc: Loc = (*sloc, "transitions", j)
            if tr.poll is not None:
                yield _ActionSite((*tloc, "poll"), tr.poll.plugin, tr.poll.with_, "poll")
            if tr.subscribe is not None:
                yield _ActionSite(
                    (*tloc, "subscribe"), tr.subscribe.plugin, tr.subscribe.with_, "subscribe"
                )


def _site(action: Action, loc: Loc, role: str) -> _ActionSite:
    return _ActionSite(loc, action.plugin, action.with_, role)


def _check_action(site: _ActionSite, registry: PluginRegistry, report: _Reporter) -> None:
    if site.plugin not in registry:
        report.add((*site.loc, "plugin"), registry.unknown_message(site.plugin))
        return
    plugin_cls = registry.get(site.plugin)
    if site.role in ("observe", "check", "poll") and not plugin_cls.check:
        where = {"observe": "observe", "check": "checks", "poll": "poll"}[site.role]
        report.add(
            (*site.loc, "plugin"),
            f"plugin {site.plugin!r} is not a check (read-only) plugin; "
            f"only check plugins may be used in {where}",
        )
    if site.role == "subscribe" and not issubclass(plugin_cls, SubscribePlugin):
        report.add(
            (*site.loc, "plugin"),
            f"plugin {site.plugin!r} cannot feed a subscribe condition",
        )
    for name in shell_fields_of(plugin_cls.Request):
        text = site.with_.get(name)
        if isinstance(text, str) and "${{" in text:
            _check_shell_text(text, (*site.loc, "with", name), report)
    try:
        plugin_cls.Request.model_validate(dict(site.with_))
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc: Loc = tuple(err["loc"])
            if _templated_prefix(site.with_, loc):
                continue  # a ${{ }} value can only be checked once rendered
            report.add((*site.loc, "with", *loc), _request_message(site.plugin, err, plugin_cls))
    except (ValueError, TypeError) as exc:  # a plugin's own validator misbehaving
        report.add((*site.loc, "with"), f"plugin {site.plugin!r}: invalid request: {exc}")


def _check_shell_text(text: str, loc: Loc, report: _Reporter) -> None:
    """``${{ }}`` in shell text: an error where it would be refused, else a warning that says
    how the value reaches the shell."""
    problems = shell_problems(text)
    for problem in problems:
        report.add(loc, problem)
    if not problems:
        report.add(
            loc,
            "${{ }} in a shell command: each value is passed as one shell word quoted with "
            "shlex.quote (never parsed as shell syntax); prefer argv or env: for data",
            severity="warning",
        )


def _templated_prefix(value: Any, loc: Loc) -> bool:
    """Whether some prefix of ``loc`` inside ``value`` is a string holding ``${{ }}``."""
    current = value
    for part in loc:
        if isinstance(current, str):
            break
        in_map = isinstance(current, Mapping) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if not (in_map or in_list):
            break
        current = current[part]
    return isinstance(current, str) and "${{" in current


def _request_message(plugin: str, err: Any, plugin_cls: Any) -> str:
    loc: Loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        fields = sorted(
            (info.alias or name) for name, info in plugin_cls.Request.model_fields.items()
        )
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"fields: {', '.join(fields)}"
        return f"plugin {plugin!r}: unknown field {field!r} in with:; {hint}"
    if err["type"] == "missing":
        return f"plugin {plugin!r}: with: is missing required field {field!r}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"plugin {plugin!r}: with.{field}: {msg}" if field else f"plugin {plugin!r}: {msg}"


# -- what the operator grants ----------------------------------------------------------------


_path_fields = functools.cache(local_path_fields)
"""The marked path fields of a request model (the same for every call of a plugin)."""


def _check_grants(
    wf: Workflow,
    sites: list[_ActionSite],
    registry: PluginRegistry,
    report: _Reporter,
    *,
    grants: Grants,
    base: Path,
) -> None:
    """Literal ``env:``/``file:`` references and literal paths the grants refuse."""
    for name, ref in wf.spec.secrets.items():
        if not isinstance(ref, str) or "${{" in ref:
            continue
        scheme, _, rest = ref.partition(":")
        try:
            if scheme == "env":
                grants.check_env(rest)
            elif scheme == "file":
                grants.check_path(rest, base=base)
        except NotAllowed as exc:
            report.add(("spec", "secrets", name), f"{exc.name}: {exc.message}")
    for site in sites:
        if site.plugin not in registry:
            continue
        for key, marker in _path_fields(registry.get(site.plugin).Request).items():
            value = site.with_.get(key)
            if not isinstance(value, str) or "${{" in value:
                continue  # a ${{ }} value is checked when the plugin runs
            for path in marker.paths_in(value):
                try:
                    grants.check_path(path, base=base)
                except NotAllowed as exc:
                    report.add((*site.loc, "with", key), f"{exc.name}: {exc.message}")
                    break


# -- expressions and secrets -----------------------------------------------------------------


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    """Every (loc, leaf or key) in a nested structure; mapping entries yield (loc, key, value)."""
    yield loc, value
    if type(value) is str:  # most leaves: spared the checks against the abstract Mapping
        return
    if isinstance(value, dict | Mapping):
        for k, v in value.items():
            yield from _walk(v, (*loc, str(k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk(v, (*loc, i))


def _cel_fields(wf: Workflow) -> Iterator[tuple[Loc, str]]:
    """Every plain CEL field (not ``${{ }}``): inSync, when, until, match, foreach items."""
    spec = wf.spec
    if spec.in_sync is not None:
        yield ("spec", "inSync"), spec.in_sync
    for name, state in spec.states.items():
        sloc: Loc = ("spec", "states", name)
        if state.foreach is not None and isinstance(state.foreach.items, str):
            yield (*sloc, "foreach", "items"), state.foreach.items
        for j, tr in enumerate(state.transitions):
            tloc: Loc = (*sloc, "transitions", j)
            if tr.when is not None:
                yield (*tloc, "when"), tr.when
            if tr.poll is not None:
                yield (*tloc, "poll", "until"), tr.poll.until
            if tr.subscribe is not None and tr.subscribe.match is not None:
                yield (*tloc, "subscribe", "match"), tr.subscribe.match


def _templated_values(wf: Workflow, sites: list[_ActionSite]) -> Iterator[tuple[Loc, str, bool]]:
    """Every string holding ``${{ }}``, with whether it sits inside an action's ``with:``."""
    for site in sites:
        for loc, value in _walk(dict(site.with_), (*site.loc, "with")):
            if isinstance(value, str) and "${{" in value:
                yield loc, value, True
    spec = wf.spec
    for root, value in (
        (("spec", "inputs"), spec.inputs),
        (("spec", "desired"), spec.desired),
    ):
        for loc, leaf in _walk(value, root):
            if isinstance(leaf, str) and "${{" in leaf:
                yield loc, leaf, False
    for name, state in spec.states.items():
        if state.foreach is not None and isinstance(state.foreach.items, list):
            for loc, leaf in _walk(
                state.foreach.items, ("spec", "states", name, "foreach", "items")
            ):
                if isinstance(leaf, str) and "${{" in leaf:
                    yield loc, leaf, False
        for j, tr in enumerate(state.transitions):
            if tr.approval is not None and "${{" in tr.approval.message:
                loc = ("spec", "states", name, "transitions", j, "approval", "message")
                yield loc, tr.approval.message, False


def _check_expressions(
    wf: Workflow, templated: list[tuple[Loc, str, bool]], report: _Reporter
) -> None:
    for loc, source in _cel_fields(wf):
        if "${{" in source:
            report.add(loc, "write plain CEL here, without ${{ }}")
            continue
        _compile(source, loc, report)
    for loc, value, _ in templated:
        if value.count("${{") != len(templates_in(value)):
            report.add(loc, "unterminated ${{ (missing }})")
        for source in templates_in(value):
            _compile(source, loc, report)
            _check_clock(source, loc, report)


_NOW_CALL = re.compile(r"(?<![\w.])now\s*\(")
_DESIRED_ROOTS = (("spec", "desired"), ("spec", "inputs"))


def _check_clock(source: str, loc: Loc, report: _Reporter) -> None:
    """A warning for ``now()`` in desired state: its value differs at every drift check, so
    the workflow would never stay in sync. (In ``inSync`` it is the way to say "until it
    expires", and in an action's ``with:`` it is evaluated once per run: both are fine.)"""
    if loc[:2] in _DESIRED_ROOTS and _NOW_CALL.search(_strip_cel_strings(source)):
        report.add(
            loc,
            "now() in desired state changes at every drift check, so the workflow would "
            "never stay in sync; compare against now() in inSync instead",
            severity="warning",
        )


def _compile(source: str, loc: Loc, report: _Reporter) -> None:
    if not source.strip():
        report.add(loc, "empty expression")
        return
    try:
        compile_expr(source)
    except ExpressionError as exc:
        report.add(loc, _EXPECTING.sub("", exc.message))
        return
    problem = static_problem(source)
    if problem is not None:
        report.add(loc, f"{problem} (expression {source.strip()[:80]!r})")


def _check_secrets(wf: Workflow, templated: list[tuple[Loc, str, bool]], report: _Reporter) -> None:
    declared = set(wf.spec.secrets)
    for loc, value, in_with in templated:
        for source in templates_in(value):
            _secret_refs(source, loc, report, declared=declared, allowed=in_with)
    for loc, source in _cel_fields(wf):
        _secret_refs(source, loc, report, declared=declared, allowed=False)


def _secret_refs(
    source: str, loc: Loc, report: _Reporter, *, declared: set[str], allowed: bool
) -> None:
    for m in _SECRETS_REF.finditer(_strip_cel_strings(source)):
        if not allowed:
            report.add(
                loc,
                "secrets may only be used inside an action's with: "
                "(they must never reach conditions, inputs or logs)",
            )
            return
        name = m.group(1) or m.group(2)
        if name is None:
            continue
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            report.add(loc, f"secret {name!r} is not declared under spec.secrets{hint}")


def _strip_cel_strings(source: str) -> str:
    """CEL with string literals blanked, so text inside quotes is not taken for a reference."""
    return re.sub(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'", '""', source)


# -- clear-text credentials ------------------------------------------------------------------


def _check_credentials(wf: Workflow, sites: list[_ActionSite], report: _Reporter) -> None:
    roots: list[tuple[Loc, Any]] = [(("spec", "inputs"), wf.spec.inputs)]
    roots += [
        (("spec", "parameters", name, "default"), p.default)
        for name, p in wf.spec.parameters.items()
    ]
    roots += [((*site.loc, "with"), dict(site.with_)) for site in sites]
    for root, value in roots:
        for loc, what in find_credentials(value, root):
            # a random-looking literal may be a false positive: a warning, not a blocker
            severity = "warning" if what.startswith(RANDOM_LITERAL) else "error"
            report.add(loc, f"{what}; {SECRET_HINT}", severity=severity)


def _check_parameters(wf: Workflow, report: _Reporter) -> None:
    """A name is either desired state (``spec.inputs``) or a parameter, never both: which
    value ``inputs.<name>`` held would otherwise depend on who started the run."""
    for name in wf.spec.parameters:
        if name in wf.spec.inputs:
            report.add(
                ("spec", "parameters", name),
                f"parameter {name!r} is also in spec.inputs: declare it in one place "
                "(spec.parameters gives it a type and a default)",
                key=True,
            )


# -- the state machine -----------------------------------------------------------------------


def _check_states(
    wf: Workflow,
    registry: PluginRegistry,
    report: _Reporter,
    *,
    strict: bool,
    known_errors: AbstractSet[str],
) -> None:
    """The machine's references, outcomes, failure branches and paths, reported in that order."""
    spec = wf.spec
    states = spec.states
    names = list(states)
    if spec.start not in states:
        report.add(("spec", "start"), _unknown_state(spec.start, names))
    if spec.on_delete is not None and spec.on_delete not in states:
        report.add(("spec", "onDelete"), _unknown_state(spec.on_delete, names))
    edges: dict[str, set[str]] = {}
    for name, state in states.items():
        edges[name] = _check_transitions(
            name, state, report, states=states, known_errors=known_errors
        )
        if state.has_work and not _has_failure_branch(state.transitions):
            report.add(
                ("spec", "states", name),
                f"state {name!r} runs actions but has no failure transition "
                "(add `onError:`, `on: error` or a default branch)",
                severity="error" if strict else "warning",
                key=True,
            )
    _check_paths(spec, edges, report)


def _unknown_state(target: str, names: list[str]) -> str:
    """The message for a reference to a state that does not exist, with a close name if any."""
    close = difflib.get_close_matches(target, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown state {target!r}{hint}"


def _check_transitions(
    name: str,
    state: State,
    report: _Reporter,
    *,
    states: Mapping[str, State],
    known_errors: AbstractSet[str],
) -> set[str]:
    """Report unknown targets and unknown ``on:`` outcomes of one state's transitions; returns
    the existing states they lead to."""
    targets: set[str] = set()
    for j, tr in enumerate(state.transitions):
        tloc: Loc = ("spec", "states", name, "transitions", j)
        if tr.to in states:
            targets.add(tr.to)
        else:
            report.add((*tloc, "to"), _unknown_state(tr.to, list(states)))
        for k, outcome in enumerate(tr.on or []):
            if outcome not in known_errors:
                close = difflib.get_close_matches(outcome, sorted(known_errors), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                report.add(
                    (*tloc, "on", k),
                    f"unknown outcome {outcome!r} in on: (not 'success', 'error', a built-in "
                    f"error or an error some plugin declares){hint}",
                )
    return targets


def _check_paths(spec: Spec, edges: Mapping[str, set[str]], report: _Reporter) -> None:
    """Warn about states unreachable from start (or onDelete), and report states with no path
    to an end state. ``edges`` holds every state, each with the existing states it leads to."""
    states = spec.states
    if spec.start in states:
        roots = [s for s in (spec.start, spec.on_delete) if s is not None and s in states]
        reachable = _closure(roots, edges)
        for name in states:
            if name not in reachable:
                report.add(
                    ("spec", "states", name),
                    f"state {name!r} is unreachable from start {spec.start!r}",
                    severity="warning",
                    key=True,
                )
    reverse: dict[str, set[str]] = {name: set() for name in states}
    for src, targets in edges.items():
        for dst in targets:
            reverse[dst].add(src)
    ending = _closure([n for n, s in states.items() if s.is_end], reverse)
    for name in states:
        if name not in ending:
            report.add(
                ("spec", "states", name),
                f"state {name!r} has no path to an end state (the run could never finish)",
                key=True,
            )


def _has_failure_branch(transitions: list[Any]) -> bool:
    for tr in transitions:
        if tr.kind == "default":
            return True
        if tr.on and any(outcome != "success" for outcome in tr.on):
            return True
    return False


def _closure(roots: list[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen = set(roots)
    queue = deque(roots)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


# -- inline tests ----------------------------------------------------------------------------


def _check_tests(
    wf: Workflow, registry: PluginRegistry, report: _Reporter, *, known_errors: AbstractSet[str]
) -> None:
    """``tests:`` mock real plugins, raise known errors and expect existing states."""
    states = list(wf.spec.states)
    for i, test in enumerate(wf.tests):
        tloc: Loc = ("tests", i)
        for plugin, responses in test.mocks.items():
            if plugin not in registry:
                report.add((*tloc, "mocks", plugin), registry.unknown_message(plugin), key=True)
            for k, response in enumerate(responses):
                error = _mock_error_name(response)
                if error is not None and error not in known_errors:
                    close = difflib.get_close_matches(error, sorted(known_errors), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    report.add(
                        (*tloc, "mocks", plugin, k, "error"),
                        f"test {test.name!r}: unknown error {error!r}{hint}",
                    )
        for j, state in enumerate(test.expect.path or []):
            if state not in states:
                close = difflib.get_close_matches(state, states, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                report.add(
                    (*tloc, "expect", "path", j),
                    f"test {test.name!r}: unknown state {state!r} in expect.path{hint}",
                )


def _mock_error_name(response: Any) -> str | None:
    if isinstance(response, MockError):
        return response.error
    if (
        isinstance(response, Mapping)
        and isinstance(response.get("error"), str)
        and set(response) <= {"error", "message", "retryable"}
    ):
        return str(response["error"])
    return None


# -- across workflows ------------------------------------------------------------------------


def _check_dependencies(
    snapshot: Snapshot, dependent: list[tuple[str, LoadedWorkflow]]
) -> list[Problem]:
    """``dependsOn`` naming a workflow the snapshot does not hold, and cycles of them;
    ``dependent`` are the workflows with a ``dependsOn``, in name order."""
    problems: list[Problem] = []
    existing = set(snapshot.workflows) | set(snapshot.invalid)
    graph: dict[str, list[str]] = {}
    for name, lw in dependent:  # the others have no edge out: in no cycle, name nothing
        deps = lw.workflow.spec.depends_on
        graph[name] = [d for d in deps if d in snapshot.workflows]
        for i, dep in enumerate(deps):
            if dep not in existing:
                close = difflib.get_close_matches(dep, sorted(existing), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                line, column = lw.locate(("spec", "dependsOn", i))
                problems.append(
                    Problem(
                        lw.path,
                        line,
                        column,
                        f"dependsOn: unknown workflow {dep!r}{hint}",
                        workflow=name,
                    )
                )
    for cycle in _cycles(graph):
        shown = " -> ".join([*cycle, cycle[0]])
        for i, name in enumerate(cycle):
            lw = snapshot.workflows[name]
            dep = cycle[(i + 1) % len(cycle)]
            index = lw.workflow.spec.depends_on.index(dep)
            line, column = lw.locate(("spec", "dependsOn", index))
            problems.append(
                Problem(lw.path, line, column, f"dependsOn cycle: {shown}", workflow=name)
            )
    return problems


CHILD_RUN_PLUGIN = "workflow.run"


def _children_of(sites: Iterable[_ActionSite]) -> Iterator[tuple[Loc, str]]:
    """Where these action sites run another workflow by a literal name, and that name (a name
    computed by ``${{ }}`` is known only at run time and is not listed)."""
    for site in sites:
        name = site.with_.get("workflow") if site.plugin == CHILD_RUN_PLUGIN else None
        if isinstance(name, str) and "${{" not in name:
            yield (*site.loc, "with", "workflow"), name


def _check_child_runs(
    snapshot: Snapshot, parents: list[tuple[str, LoadedWorkflow, tuple[tuple[Loc, str], ...]]]
) -> list[Problem]:
    """``workflow.run`` of a workflow the snapshot does not hold, and workflows that run each
    other in a cycle (the engine would stop them only at its nesting limit). ``parents`` are the
    workflows that run others, with their :func:`_children_of`, in name order."""
    problems: list[Problem] = []
    existing = set(snapshot.workflows) | set(snapshot.invalid)
    graph: dict[str, list[str]] = {}
    first_site: dict[tuple[str, str], Loc] = {}
    for name, lw, found in parents:
        for loc, child in found:
            first_site.setdefault((name, child), loc)
            if child in snapshot.workflows and child not in graph.setdefault(name, []):
                graph[name].append(child)
            if child in existing:
                continue
            close = difflib.get_close_matches(child, sorted(existing), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            line, column = lw.locate(loc)
            problems.append(
                Problem(
                    lw.path,
                    line,
                    column,
                    f"{CHILD_RUN_PLUGIN}: unknown workflow {child!r}{hint}",
                    workflow=name,
                )
            )
    for cycle in _cycles(graph):
        shown = " -> ".join([*cycle, cycle[0]])
        for i, name in enumerate(cycle):
            lw = snapshot.workflows[name]
            line, column = lw.locate(first_site[(name, cycle[(i + 1) % len(cycle)])])
            problems.append(
                Problem(
                    lw.path,
                    line,
                    column,
                    f"{CHILD_RUN_PLUGIN} cycle: {shown} (each run would start the next "
                    "until the nesting limit)",
                    workflow=name,
                )
            )
    return problems


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (self-loops included)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def strongconnect(root: str) -> None:
        nonlocal counter
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = graph.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, []):
                    out.append(_cycle_in(sorted(component), graph))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])

    for name in sorted(graph):
        if name not in index:
            strongconnect(name)
    return out


def _cycle_in(component: list[str], graph: Mapping[str, list[str]]) -> list[str]:
    """The shortest cycle through the component's first member, by breadth-first search."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph.get(node, []):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt in members and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return [start]  # pragma: no cover - a strongly connected component always has one
