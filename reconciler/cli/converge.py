"""``reconciler plan`` and ``reconciler apply``: one-shot observe and converge, for people and CI.

``plan`` runs only the read-only ``observe`` probes and shows which workflows are out of sync and
the field diff (like ``terraform plan``). ``apply`` then runs what is out of sync, observes again,
prints a summary table and exits non-zero if anything failed; it is what the daemon does for one
revision, without the daemon. Both act on the valid workflows of a path and report the invalid
ones (a broken file never stops the good ones). With ``--data-dir``/``--store`` their runs land
in the same history the daemon keeps; otherwise runs are journaled in memory.

Decisions, per workflow, in ``dependsOn`` order: suspended → skipped; a dependency that did not
converge → skipped; observe says in sync → nothing to do; observe failed → failed (no run on a
blind guess); otherwise (out of sync, or no probe) → run, then observe again: still out of sync
→ ``Degraded`` (a failure: "run finished, drift remains").
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from reconciler.cli.app import OutputFormat, OutputOption, app, console, err_console, fail
from reconciler.cli.workspace import Workspace, dependency_order, load_workspace
from reconciler.engine.journal import Journal, MemoryJournal
from reconciler.engine.runner import Engine, Observation
from reconciler.errors import ConfigError, StoreError
from reconciler.plugin import PluginRegistry
from reconciler.secrets.resolver import resolver_from_env

PathsArg = Annotated[list[Path], typer.Argument(help="Workflow files or directories.")]
WorkflowOpt = Annotated[
    list[str] | None,
    typer.Option("--workflow", "-w", help="Only this workflow (repeatable)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Record runs in this data directory's store (as the daemon)."),
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (e.g. postgresql+psycopg://...) to record runs in."),
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
            "changed": self.changed,
            "runId": self.run_id,
            "path": self.path,
            "diff": self.diff,
            "message": self.message,
        }


def _sync_of(observation: Observation) -> str:
    if observation.error is not None:
        return "Error"
    if observation.in_sync is None:
        return "Unknown"
    return "Synced" if observation.in_sync else "OutOfSync"


def _describe_diff(observation: Observation) -> str:
    parts = [f"{d.path}: want {d.desired!r}, have {d.observed!r}" for d in observation.diff[:3]]
    more = len(observation.diff) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@asynccontextmanager
async def _journal(data_dir: Path | None, store_url: str | None) -> AsyncIterator[Journal]:
    if data_dir is None and store_url is None:
        yield MemoryJournal()
        return
    from reconciler.store import Store  # the store is only needed when history is kept

    try:
        store = await Store.open(store_url, data_dir=data_dir or Path(".reconciler"))
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        yield store
    finally:
        await store.close()


def _blocked_by(ws: Workspace, name: str, done: dict[str, Outcome]) -> str | None:
    for dep in ws.runnable[name].workflow.spec.depends_on:
        if dep in ws.invalid:
            return f"dependency {dep} is invalid"
        outcome = done.get(dep)
        if outcome is None:
            if dep not in ws.runnable:
                return f"dependency {dep} was not selected"
            continue
        if outcome.failed or outcome.result == "skipped":
            return f"dependency {dep} did not converge"
    return None


async def _plan_one(engine: Engine, ws: Workspace, name: str) -> tuple[Outcome, Observation | None]:
    wf = ws.runnable[name].workflow
    out = Outcome(name)
    if wf.spec.suspend:
        out.action, out.result, out.message = "skipped", "skipped", "suspended"
        return out, None
    observation = await engine.observe(wf)
    out.before = _sync_of(observation)
    out.diff = [d.as_dict() for d in observation.diff]
    if observation.error is not None:
        out.result, out.message = "failed", f"observe failed: {observation.error}"
    elif observation.in_sync:
        out.message = "in sync"
    elif observation.in_sync is None:
        out.result, out.message = "would-run", "no observe probe: runs when its spec changes"
    else:
        out.result, out.message = "would-run", f"out of sync: {_describe_diff(observation)}"
    return out, observation


async def _apply_one(engine: Engine, ws: Workspace, name: str, done: dict[str, Outcome]) -> Outcome:
    wf = ws.runnable[name].workflow
    blocked = _blocked_by(ws, name, done)
    if blocked is not None:
        return Outcome(name, action="skipped", result="skipped", message=blocked)
    out, observation = await _plan_one(engine, ws, name)
    if out.result != "would-run":
        out.after = out.before
        return out
    out.action = "run"
    result = await engine.run(
        wf,
        reason="drift" if out.before == "OutOfSync" else "spec-change",
        revision="local",
        observed=observation.observed if observation else None,
    )
    out.run_id, out.path, out.changed = result.run.id, result.path, result.changed
    if not result.ok:
        out.result, out.after = "failed", "Degraded"
        out.message = f"run failed: {result.error}"
        return out
    if wf.spec.observe is None:
        out.result, out.after, out.message = "converged", "Unknown", "run succeeded"
        return out
    again = await engine.observe(wf)
    out.after = _sync_of(again)
    if again.in_sync is False:
        out.result = "degraded"
        out.message = f"run finished, drift remains: {_describe_diff(again)}"
    elif again.error is not None:
        out.result, out.message = "degraded", f"observe after the run failed: {again.error}"
    else:
        out.result, out.message = "converged", "run succeeded"
    return out


async def _converge(
    ws: Workspace, *, apply: bool, journal: Journal, registry: PluginRegistry, show: bool
) -> list[Outcome]:
    try:
        secrets = resolver_from_env()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    engine = Engine(
        registry,
        journal=journal,
        workflows={n: lw.workflow for n, lw in ws.snapshot.workflows.items()},
        workdir=Path.cwd(),
        secrets=secrets,
    )
    done: dict[str, Outcome] = {}
    verb = "applying" if apply else "observing"
    try:
        for name in dependency_order(ws.runnable):
            if show:
                with err_console.status(f"{verb} {name}…"):
                    outcome = await _step(engine, ws, name, done, apply=apply)
            else:
                outcome = await _step(engine, ws, name, done, apply=apply)
            done[name] = outcome
    finally:
        await registry.close()
    return list(done.values())


async def _step(
    engine: Engine, ws: Workspace, name: str, done: dict[str, Outcome], *, apply: bool
) -> Outcome:
    if apply:
        return await _apply_one(engine, ws, name, done)
    return (await _plan_one(engine, ws, name))[0]


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


def _emit(ws: Workspace, outcomes: list[Outcome], output: OutputFormat, *, apply: bool) -> None:
    if output is OutputFormat.json:
        print(
            json.dumps(
                {
                    "workflows": [o.as_dict() for o in outcomes],
                    "invalid": {n: [p.as_dict() for p in ps] for n, ps in ws.invalid.items()},
                    "problems": [p.as_dict() for p in ws.problems],
                }
            )
        )
    else:
        _print(ws, outcomes, apply=apply)


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
    show = output is OutputFormat.text and sys.stderr.isatty()

    async def go() -> list[Outcome]:
        async with _journal(data_dir, store) as journal:
            return await _converge(ws, apply=apply, journal=journal, registry=registry, show=show)

    outcomes = asyncio.run(go())
    _emit(ws, outcomes, output, apply=apply)
    return ws, outcomes


@app.command()
def plan(
    paths: PathsArg,
    workflow: WorkflowOpt = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option("--detailed-exitcode", help="Exit 2 when something would run (as terraform)."),
    ] = False,
    output: OutputFormat = OutputOption,
    data_dir: DataDirOpt = None,
    store: StoreOpt = None,
) -> None:
    """Observe only: show which workflows are out of sync, with the field diff. Changes nothing."""
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
