"""``reconciler test``: run workflows' inline ``tests:`` with mocks, or check idempotence for real.

Without flags it runs every inline test of the valid workflows under the paths through
:func:`reconciler.testing.run_inline_test` (mocked plugins, the real engine) and shows the path
each took. ``--idempotence`` instead runs each workflow's machine twice against the real plugins in
a scratch directory (relative paths resolve there) and fails a workflow whose second run reported
``changed`` for any action: the Ansible contract that a converged workflow changes nothing.

Exit codes: 0 all passed, 1 a test failed or a workflow is invalid, 2 the command could not run.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from reconciler.cli.app import OutputFormat, OutputOption, app, console, err_console
from reconciler.cli.converge import PathsArg, WorkflowOpt
from reconciler.cli.workspace import Workspace, dependency_order, load_workspace
from reconciler.engine.journal import EventKind, MemoryJournal
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry
from reconciler.testing import run_inline_test


@dataclass
class Result:
    workflow: str
    test: str
    passed: bool
    path: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "test": self.test,
            "passed": self.passed,
            "path": self.path,
            "failures": self.failures,
        }


async def _inline(ws: Workspace, registry: PluginRegistry) -> list[Result]:
    workflows = {n: lw.workflow for n, lw in ws.snapshot.workflows.items()}
    results: list[Result] = []
    for name in sorted(ws.runnable):
        wf = ws.runnable[name].workflow
        for case in wf.tests:
            outcome = await run_inline_test(wf, case, registry=registry, workflows=workflows)
            results.append(
                Result(name, case.name, outcome.passed, outcome.path, list(outcome.failures))
            )
    return results


async def _changed_actions(journal: MemoryJournal, run_id: str) -> list[str]:
    return [
        f"{e.state}: {e.detail.get('plugin')} #{e.detail.get('index')}"
        for e in await journal.entries(run_id)
        if e.kind is EventKind.ACTION and e.detail.get("ok") and e.detail.get("changed")
    ]


async def _idempotence(ws: Workspace, registry: PluginRegistry, scratch: Path) -> list[Result]:
    journal = MemoryJournal()
    engine = Engine(
        registry,
        journal=journal,
        workflows={n: lw.workflow for n, lw in ws.snapshot.workflows.items()},
        workdir=scratch,
    )
    results: list[Result] = []
    try:
        for name in dependency_order(ws.runnable):
            wf = ws.runnable[name].workflow
            first = await engine.run(wf, reason="test", revision="idempotence")
            if not first.ok:
                results.append(
                    Result(name, "idempotence", False, first.path, [f"first run: {first.error}"])
                )
                continue
            second = await engine.run(wf, reason="test", revision="idempotence")
            failures: list[str] = []
            if not second.ok:
                failures.append(f"second run failed: {second.error}")
            for action in await _changed_actions(journal, second.run.id):
                failures.append(f"second run changed something: {action}")
            results.append(Result(name, "idempotence", not failures, second.path, failures))
    finally:
        await registry.close()
    return results


@app.command()
def test(
    paths: PathsArg,
    workflow: WorkflowOpt = None,
    idempotence: Annotated[
        bool,
        typer.Option(
            "--idempotence",
            help="Run each workflow twice for real in a scratch directory; fail if the second "
            "run changed anything.",
        ),
    ] = False,
    output: OutputFormat = OutputOption,
) -> None:
    """Run the workflows' inline tests (mocked plugins), or check idempotence for real."""
    registry = PluginRegistry.discover()
    ws = load_workspace(paths, registry, only=workflow or ())
    results = _run_tests(ws, registry, idempotence=idempotence)
    # idempotence runs every workflow, so none is "untested" there
    untested = [] if idempotence else sorted(_untested(ws))
    failed = [r for r in results if not r.passed]
    if output is OutputFormat.json:
        print(json.dumps(_json_report(ws, results, untested=untested, failed=len(failed))))
    else:
        _print_text(ws, results, untested=untested, failed=len(failed))
    if failed or ws.invalid or (not results and not ws.runnable):
        raise typer.Exit(1)


def _run_tests(ws: Workspace, registry: PluginRegistry, *, idempotence: bool) -> list[Result]:
    """Every result of the chosen mode, in the order they are shown; plugins are closed after an
    idempotence check, and its scratch directory is gone on return."""
    if idempotence:
        with tempfile.TemporaryDirectory(prefix="reconciler-idempotence-") as scratch:
            return asyncio.run(_idempotence(ws, registry, Path(scratch)))
    return asyncio.run(_inline(ws, registry))


def _untested(ws: Workspace) -> list[str]:
    """The runnable workflows without any inline test."""
    return [n for n, lw in ws.runnable.items() if not lw.workflow.tests]


def _json_report(
    ws: Workspace, results: list[Result], *, untested: list[str], failed: int
) -> dict[str, Any]:
    """The ``--output json`` document: results, untested workflows, problems and a summary."""
    return {
        "results": [r.as_dict() for r in results],
        "untested": untested,
        "problems": [p.as_dict() for p in ws.problems],
        "summary": {
            "passed": len(results) - failed,
            "failed": failed,
            "invalid": len(ws.invalid),
        },
    }


def _print_text(ws: Workspace, results: list[Result], *, untested: list[str], failed: int) -> None:
    """The human report: errors on stderr, one PASS/FAIL line per result, then a summary."""
    for problem in ws.errors:
        err_console.print(f"[red]{escape(problem.format())}[/red]", highlight=False)
    for r in results:
        mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        shown = " → ".join(r.path) if r.path else "(no run)"
        console.print(f"{mark} {escape(r.workflow)} / {escape(r.test)}: {escape(shown)}")
        for line in r.failures:
            console.print(f"     {escape(line)}", highlight=False)
    if untested:
        console.print(f"[dim]no inline tests: {', '.join(untested)}[/dim]")
    colour = "red" if failed or ws.invalid else "green"
    console.print(
        f"[{colour}]{len(results) - failed} passed, {failed} failed"
        + (f", {len(ws.invalid)} invalid" if ws.invalid else "")
        + f"[/{colour}]"
    )
