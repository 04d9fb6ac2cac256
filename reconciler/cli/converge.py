"""``reconciler plan`` and ``reconciler apply``: one-shot observe and converge, for people and CI.

``plan`` runs only the read-only ``observe`` probes and shows which workflows are out of sync and
the field diff (like ``terraform plan``). ``apply`` then runs what is out of sync, observes again,
prints a summary table and exits non-zero if anything failed; it is what the daemon does for one
revision, without the daemon. Both act on the valid workflows of a path and report the invalid
ones (a broken file never stops the good ones). With ``--data-dir``/``--store`` their runs land
in the same history the daemon keeps; otherwise runs are journaled in memory. ``plan --ref``
previews a branch or commit of a git repository against a base instead of planning paths
(:mod:`reconciler.cli.preview`).

Decisions are the daemon's own (:func:`reconciler.daemon.check.check_workflow`, then
:func:`~reconciler.daemon.planner.plan_finished` after a run), taken per workflow in
``dependsOn`` order from the workflow's stored status when there is history (``--data-dir`` or
``--store``: the status the daemon, or an earlier ``apply`` on that store, recorded — ``apply``
records each outcome there too, except over a status a daemon wrote), else as the daemon takes them for a workflow it sees for the
first time (no stored status). With history, a workflow without a probe whose spec is unchanged
since its last run, which succeeded, has nothing to do, so ``plan --detailed-exitcode`` exits 0
on a converged tree; without history such a workflow counts as "would run" (nothing says its
spec ever ran) and the output says so. Then: suspended → skipped; a dependency not converged (failed, invalid, not selected)
→ skipped; observe says in sync → nothing to do; observe failed → failed (no run on a blind
guess); otherwise (out of sync, or no probe) → run, then observe again: still out of sync →
``Degraded`` (a failure: "run finished, drift remains"). Each outcome carries the status and
reason the daemon would store. A workflow's own change windows (``spec.windows``) gate its run
as they gate the daemon's automatic runs: while one blocks it, it is skipped with
``Pending``/``WindowClosed`` (the operator's windows file is the daemon's, not read here).
``plan`` counts a workflow that would run as converged for what
depends on it, so dependents are checked too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from reconciler.cli.app import OutputFormat, OutputOption, app, console, err_console, fail
from reconciler.cli.workspace import Workspace, dependency_order, load_workspace
from reconciler.clock import utcnow
from reconciler.config.snapshot import LoadedWorkflow
from reconciler.daemon.check import check_workflow
from reconciler.daemon.planner import Decision, Next, plan_finished, plan_invalid
from reconciler.daemon.windows import verdict_for
from reconciler.engine.journal import Journal, MemoryJournal
from reconciler.engine.runner import Engine, Observation
from reconciler.errors import ConfigError, StoreError
from reconciler.plugin import PluginRegistry
from reconciler.secrets.resolver import resolver_from_env
from reconciler.status import Health, WorkflowStatusRecord

if TYPE_CHECKING:
    from reconciler.store import Store

PathsArg = Annotated[list[Path], typer.Argument(help="Workflow files or directories.")]
WorkflowOpt = Annotated[
    list[str] | None,
    typer.Option("--workflow", "-w", metavar="NAME", help="Only this workflow (repeatable)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Record runs in this data directory's store (as the daemon).",
    ),
]
REVISION = "local"
"""The revision the one-shot commands record (the files as they are, not a commit)."""

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Store URL (e.g. postgresql+psycopg://...) to record runs in.",
    ),
]


@dataclass
class Outcome:
    """What happened to one workflow in a plan or apply."""

    name: str
    before: str = "Unknown"
    """Sync before: Synced, OutOfSync, Unknown (no probe), or Error."""
    action: str = "none"
    """none, run, skipped."""
    result: str = "ok"
    """ok, converged, failed, degraded, skipped, would-run."""
    after: str = ""
    status: str = ""
    """The status the daemon would store (``Converged``, ``Degraded``, ``Pending``...)."""
    reason: str = ""
    """That status's reason (``RunSucceeded``, ``InSync``, ``DependencyNotReady``...)."""
    changed: bool = False
    run_id: str | None = None
    path: list[str] = field(default_factory=list)
    diff: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.result in {"failed", "degraded"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.name,
            "before": self.before,
            "action": self.action,
            "result": self.result,
            "after": self.after,
            "status": self.status,
            "reason": self.reason,
            "changed": self.changed,
            "runId": self.run_id,
            "path": self.path,
            "diff": self.diff,
            "message": self.message,
        }


def _sync_of(observation: Observation | None) -> str:
    if observation is None:
        return "Unknown"
    if observation.error is not None:
        return "Error"
    if observation.in_sync is None:
        return "Unknown"
    return "Synced" if observation.in_sync else "OutOfSync"


@dataclass
class History:
    """Where runs are journaled and, when history is kept, the statuses read and recorded."""

    journal: Journal
    store: Store | None = None
    """The store of ``--data-dir``/``--store``; ``None``: no history (runs journaled in memory)."""
    stored: dict[str, WorkflowStatusRecord] = field(default_factory=dict)
    """Every workflow's stored status, read once at the start."""

    async def record(self, status: WorkflowStatusRecord) -> None:
        """Keep ``status`` as the workflow's stored status (``apply`` with history only) — unless
        a daemon keeps that workflow's status: a row it wrote (at a git revision) is left alone,
        so an ``apply`` next to a daemon never overwrites what the daemon decided (nor makes a
        replica take ``local`` for a newer revision than its own)."""
        if self.store is None:
            return
        before = self.stored.get(status.name)
        if before is None or before.last_attempted_revision in {None, REVISION}:
            await self.store.put_status(status)


@asynccontextmanager
async def _history(data_dir: Path | None, store_url: str | None) -> AsyncIterator[History]:
    if data_dir is None and store_url is None:
        yield History(MemoryJournal())
        return
    from reconciler.store import Store  # the store is only needed when history is kept

    try:
        store = await Store.open(store_url, data_dir=data_dir or Path(".reconciler"))
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        stored = {st.name: st for st in await store.list_statuses()}
        yield History(store, store, stored)
    finally:
        await store.close()


def _settled(outcome: Outcome, decision: Decision) -> Outcome:
    """Fill ``outcome`` from a decision that runs nothing (or nothing more)."""
    outcome.status = decision.status.status.value
    outcome.reason = decision.status.reason
    outcome.message = decision.message
    return outcome


async def _check(
    engine: Engine,
    lw: LoadedWorkflow,
    statuses: dict[str, WorkflowStatusRecord],
    stored: WorkflowStatusRecord | None,
) -> tuple[Outcome, Decision, Observation | None]:
    """The daemon's decision for ``lw`` from its ``stored`` status (``None``: as if the daemon
    saw it for the first time)."""
    wf = lw.workflow
    decision, observation = await check_workflow(
        lw,
        stored,
        revision=REVISION,
        statuses={d: statuses[d] for d in wf.spec.depends_on if d in statuses},
        observe=lambda: engine.observe(wf),
        now=utcnow,
        window=lambda at: verdict_for(wf, (), at),
    )
    out = _settled(Outcome(wf.name, before=_sync_of(observation)), decision)
    if observation is not None:
        out.diff = [d.as_dict() for d in observation.diff]
    if decision.next is Next.RUN:
        out.result = "would-run"
    elif decision.failed:
        out.result = "failed"
    elif not decision.converged:  # suspended, waiting for a dependency or for a window
        out.action, out.result = "skipped", "skipped"
    return out, decision, observation


async def _run(
    engine: Engine, lw: LoadedWorkflow, out: Outcome, decision: Decision, observed: Any
) -> Decision:
    """Run ``lw`` as the daemon would for ``decision``, observe again, decide the outcome."""
    wf = lw.workflow
    out.action = "run"
    result = await engine.run(
        wf,
        reason=str(decision.run_reason),
        revision=REVISION,
        observed=observed if isinstance(observed, dict) else None,
    )
    out.run_id, out.path, out.changed = result.run.id, result.path, result.changed
    again = await engine.observe(wf) if result.ok and wf.spec.observe is not None else None
    error = result.run.error or (str(result.error) if result.error else None)
    final = plan_finished(
        wf,
        decision.status,
        revision=REVISION,
        digest=lw.digest,
        run_id=result.run.id,
        error=error,
        observation=again,
        now=utcnow(),
    )
    _settled(out, final)
    out.after = _sync_of(again) if again is not None else ("Degraded" if error else "Unknown")
    out.result = "failed" if error else ("degraded" if final.failed else "converged")
    return final


async def _step(
    engine: Engine,
    lw: LoadedWorkflow,
    statuses: dict[str, WorkflowStatusRecord],
    *,
    apply: bool,
    history: History,
) -> Outcome:
    """Check (and with ``apply`` run) one workflow; record the status it leaves in ``statuses``
    (and, for ``apply``, in the history's store).

    ``plan`` records a workflow that would run as converged, as if its run succeeded: what
    depends on it is then checked too (as ``terraform plan`` assumes its changes apply).
    """
    name = lw.name
    out, decision, observation = await _check(engine, lw, statuses, history.stored.get(name))
    status = decision.status
    if decision.next is Next.RUN and apply:
        observed = observation.observed if observation is not None else None
        status = (await _run(engine, lw, out, decision, observed)).status
    elif decision.next is Next.RUN:
        status = status.model_copy(
            update={"status": Health.CONVERGED, "last_applied_revision": REVISION}
        )
    else:
        out.after = out.before
    if apply:
        await history.record(status)
    statuses[name] = status
    return out


async def _converge(
    ws: Workspace, *, apply: bool, history: History, registry: PluginRegistry, show: bool
) -> list[Outcome]:
    try:
        secrets = resolver_from_env()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    engine = Engine(
        registry,
        journal=history.journal,
        workflows={n: lw.workflow for n, lw in ws.snapshot.workflows.items()},
        workdir=Path.cwd(),
        secrets=secrets,
    )
    statuses = {
        name: plan_invalid(name, None, problems=problems, now=utcnow()).status
        for name, problems in ws.invalid.items()
    }
    outcomes: list[Outcome] = []
    verb = "applying" if apply else "observing"
    try:
        for name in dependency_order(ws.runnable):
            lw = ws.runnable[name]
            with err_console.status(f"{verb} {name}…") if show else contextlib.nullcontext():
                outcomes.append(await _step(engine, lw, statuses, apply=apply, history=history))
    finally:
        await registry.close()
    return outcomes


_STYLE = {
    "converged": "green",
    "ok": "green",
    "would-run": "yellow",
    "skipped": "dim",
    "failed": "red",
    "degraded": "red",
}


def _print(ws: Workspace, outcomes: list[Outcome], *, apply: bool) -> None:
    for problem in ws.problems:
        colour = "red" if problem.is_error else "yellow"
        console.print(f"[{colour}]{escape(problem.format())}[/{colour}]", highlight=False)
    table = Table(title="apply" if apply else "plan", title_justify="left")
    table.add_column("workflow")
    table.add_column("before")
    if apply:
        table.add_column("action")
        table.add_column("changed")
        table.add_column("after")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for o in outcomes:
        style = _STYLE.get(o.result, "")
        cells = [o.name, o.before]
        if apply:
            cells += [o.action, "yes" if o.changed else "no", o.after]
        cells += [f"[{style}]{o.result}[/{style}]", escape(o.message)]
        table.add_row(*cells)
    for name, problems in ws.invalid.items():
        cells = [name, "-"] + (["skipped", "no", "Invalid"] if apply else [])
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        first = problems[0]
        cells += ["[red]invalid[/red]", escape(f"{first.path}:{first.line}: see above{more}")]
        table.add_row(*cells)
    console.print(table)
    failed = sum(o.failed for o in outcomes) + len(ws.invalid)
    summary = ", ".join(
        f"{n} {r}"
        for r in ("converged", "ok", "would-run", "skipped", "failed", "degraded")
        if (n := sum(o.result == r for o in outcomes))
    )
    if ws.invalid:
        summary += (", " if summary else "") + f"{len(ws.invalid)} invalid"
    console.print(f"{'[red]' if failed else '[green]'}{summary or 'nothing to do'}[/]")


NO_HISTORY = (
    "{names}: no observe probe to compare with and no run history (give --data-dir or --store "
    "where the daemon or an earlier apply keeps it), so nothing says this spec ever ran: "
    "counted as would-run"
)
"""The note ``plan`` prints under its table for workflows it cannot know to be converged."""


def _emit(
    ws: Workspace,
    outcomes: list[Outcome],
    output: OutputFormat,
    *,
    apply: bool,
    history: bool,
    unknown: list[str],
) -> None:
    if output is OutputFormat.json:
        print(
            json.dumps(
                {
                    "workflows": [o.as_dict() for o in outcomes],
                    "invalid": {n: [p.as_dict() for p in ps] for n, ps in ws.invalid.items()},
                    "problems": [p.as_dict() for p in ws.problems],
                    "history": history,
                    "withoutHistory": unknown,
                }
            )
        )
        return
    _print(ws, outcomes, apply=apply)
    if unknown and not apply:
        console.print(f"[yellow]{escape(NO_HISTORY.format(names=', '.join(unknown)))}[/yellow]")


def _execute(
    paths: list[Path],
    workflow: list[str] | None,
    *,
    apply: bool,
    output: OutputFormat,
    data_dir: Path | None,
    store: str | None,
) -> tuple[Workspace, list[Outcome]]:
    registry = PluginRegistry.discover()
    ws = load_workspace(paths, registry, only=workflow or ())
    missing = sorted(set(workflow or ()) - set(ws.snapshot.workflows) - set(ws.invalid))
    if missing:
        raise fail(f"no workflow named {', '.join(missing)} under {', '.join(map(str, paths))}")
    show = output is OutputFormat.table and sys.stderr.isatty()

    async def go() -> tuple[list[Outcome], bool]:
        async with _history(data_dir, store) as history:
            outcomes = await _converge(
                ws, apply=apply, history=history, registry=registry, show=show
            )
            return outcomes, history.store is not None

    outcomes, kept = asyncio.run(go())
    unknown = [] if kept else _unknown_without_history(ws, outcomes)
    _emit(ws, outcomes, output, apply=apply, history=kept, unknown=unknown)
    return ws, outcomes


def _unknown_without_history(ws: Workspace, outcomes: list[Outcome]) -> list[str]:
    """The workflows counted as "would run" only because there is no run history: they have
    no probe to compare with (or one without a desired state)."""
    return [
        o.name
        for o in outcomes
        if o.result == "would-run" and o.before == "Unknown" and o.name in ws.runnable
    ]


@app.command()
def plan(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Workflow files or directories (not with --ref)."),
    ] = None,
    workflow: WorkflowOpt = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 2 when something would run, 0 when nothing would (as terraform). A "
            "workflow without a probe would run unless --data-dir/--store shows its spec "
            "unchanged since its last, successful, run.",
        ),
    ] = False,
    output: OutputFormat = OutputOption,
    data_dir: DataDirOpt = None,
    store: StoreOpt = None,
    ref: Annotated[
        str | None,
        typer.Option(
            "--ref",
            metavar="BRANCH|SHA",
            help="Preview this branch, tag or commit of --repo against --base: new, changed, "
            "removed or unchanged, whether each would run, and the field diff. Read from git "
            "objects; the working tree is never touched.",
        ),
    ] = None,
    base: Annotated[
        str,
        typer.Option("--base", metavar="REF", help="What --ref is compared with."),
    ] = "HEAD",
    repo: Annotated[
        str,
        typer.Option("--repo", metavar="PATH|URL", help="The git repository of --ref."),
    ] = ".",
) -> None:
    """Observe only: show which workflows are out of sync, with the field diff. Changes nothing.

    With --ref, the workflows of a branch or commit are previewed against --base instead."""
    if ref is not None:
        if paths:
            raise fail("give either PATHS or --ref, not both")
        from reconciler.cli.preview import plan_ref

        report = plan_ref(
            ref, base=base, repo=repo, only=workflow, output=output, data_dir=data_dir, store=store
        )
        if report.failed:
            raise typer.Exit(1)
        if detailed_exitcode and any(w.would_run for w in report.workflows):
            raise typer.Exit(2)
        return
    if not paths:
        raise fail("give the workflow PATHS to plan, or --ref BRANCH|SHA")
    ws, outcomes = _execute(
        paths, workflow, apply=False, output=output, data_dir=data_dir, store=store
    )
    if ws.errors or any(o.failed for o in outcomes):
        raise typer.Exit(1)
    if detailed_exitcode and any(o.result == "would-run" for o in outcomes):
        raise typer.Exit(2)


@app.command()
def apply(
    paths: PathsArg,
    workflow: WorkflowOpt = None,
    output: OutputFormat = OutputOption,
    data_dir: DataDirOpt = None,
    store: StoreOpt = None,
) -> None:
    """Converge once: observe, run what is out of sync, observe again, print a summary, exit.

    Exits 1 if any workflow failed, stayed out of sync, or is invalid (the valid ones still run).
    """
    ws, outcomes = _execute(
        paths, workflow, apply=True, output=output, data_dir=data_dir, store=store
    )
    if ws.invalid or any(o.failed for o in outcomes):
        raise typer.Exit(1)
