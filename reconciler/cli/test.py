"""``reconciler test``: run workflows' inline ``tests:`` with mocks, or check idempotence for real.

Without flags it runs every inline test of the valid workflows under the paths through
:func:`reconciler.testing.run_inline_test` (mocked plugins, the real engine) and shows the path
each took. ``--idempotence`` instead runs each workflow's machine twice against the real plugins in
a scratch directory (relative paths resolve there) and fails a workflow whose second run reported
``changed`` for any action: the Ansible contract that a converged workflow changes nothing.

``--junit FILE`` also writes the results as JUnit XML for CI (:func:`junit_report`). The
errors inline tests mock are on purpose, so the engine's "action failed" warnings are silenced
for them (``-v`` shows the log again); logs only ever go to stderr, never into the report on
stdout.

Exit codes: 0 all passed, 1 a test failed or a workflow is invalid, 2 the command could not run.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from reconciler.cli.app import OutputFormat, OutputOption, app, console, err_console, fail
from reconciler.cli.converge import PathsArg, WorkflowOpt
from reconciler.cli.workspace import Workspace, dependency_order, load_workspace
from reconciler.engine.journal import EventKind, MemoryJournal
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry
from reconciler.telemetry.logging import configure_logging
from reconciler.testing import ScriptedApprovals, run_inline_test


@dataclass
class Result:
    workflow: str
    test: str
    passed: bool
    path: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """How long the test took (the JUnit report's ``time``)."""

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
            began = time.perf_counter()
            outcome = await run_inline_test(wf, case, registry=registry, workflows=workflows)
            took = time.perf_counter() - began
            results.append(
                Result(name, case.name, outcome.passed, outcome.path, list(outcome.failures), took)
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
        approvals=ScriptedApprovals(then="approve"),  # both runs pass every approval gate
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
    ctx: typer.Context,
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
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="FILE",
            help="Also write the results as JUnit XML to this file, for CI: one testcase per "
            "test, failures with their messages.",
        ),
    ] = None,
) -> None:
    """Run the workflows' inline tests (mocked plugins), or check idempotence for real."""
    if not idempotence and not ctx.find_root().params.get("verbose"):
        # the errors inline tests mock are on purpose: no "action failed" warning for them
        configure_logging("error")
    registry = PluginRegistry.discover()
    ws = load_workspace(paths, registry, only=workflow or ())
    results = _run_tests(ws, registry, idempotence=idempotence)
    # idempotence runs every workflow, so none is "untested" there
    untested = [] if idempotence else sorted(_untested(ws))
    failed = [r for r in results if not r.passed]
    if junit is not None:
        _write_junit(junit, junit_report(ws, results, untested=untested))
    if output is OutputFormat.json:
        print(json.dumps(_json_report(ws, results, untested=untested, failed=len(failed))))
    else:
        _print_text(ws, results, untested=untested, failed=len(failed))
    if failed or ws.invalid or (not results and not ws.runnable):
        raise typer.Exit(1)


def junit_report(ws: Workspace, results: list[Result], *, untested: list[str]) -> ET.Element:
    """The results as JUnit XML, the format CI systems read: one ``<testsuite>`` per workflow,
    one ``<testcase>`` per test (a failed one holds a ``<failure>`` whose ``message`` is the
    first failure and whose text is every failure and the path taken); an invalid workflow is a
    testcase ``valid`` with an ``<error>`` giving its problems, a workflow without inline tests
    a skipped testcase. The counts on each suite and on the root add up its testcases."""
    root = ET.Element("testsuites", name="reconciler test")
    suites: dict[str, ET.Element] = {}

    def case(workflow: str, name: str, seconds: float = 0.0) -> ET.Element:
        suite = suites.get(workflow)
        if suite is None:
            suite = suites[workflow] = ET.SubElement(root, "testsuite", name=workflow)
        return ET.SubElement(
            suite, "testcase", classname=workflow, name=name, time=f"{seconds:.3f}"
        )

    for r in results:
        testcase = case(r.workflow, r.test, r.seconds)
        if not r.passed:
            message = r.failures[0] if r.failures else "failed"
            text = "\n".join([*r.failures, "path: " + (" -> ".join(r.path) or "(no run)")])
            ET.SubElement(testcase, "failure", message=message, type="TestFailed").text = text
    for name, problems in sorted(ws.invalid.items()):
        error = ET.SubElement(case(name, "valid"), "error", type="InvalidWorkflow")
        error.set("message", problems[0].format() if problems else "invalid")
        error.text = "\n".join(p.format() for p in problems)
    for name in untested:
        ET.SubElement(case(name, "(no inline tests)"), "skipped", message="no inline tests")
    _count(root, list(suites.values()))
    return root


def _count(root: ET.Element, suites: list[ET.Element]) -> None:
    """Set ``tests``, ``failures``, ``errors``, ``skipped`` and ``time`` on every suite and on
    the root from the testcases they hold."""
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    seconds = 0.0
    for suite in suites:
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(c.find("failure") is not None for c in cases),
            "errors": sum(c.find("error") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
        }
        took = sum(float(c.get("time", "0")) for c in cases)
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{took:.3f}")
        seconds += took
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")


def _write_junit(path: Path, report: ET.Element) -> None:
    """Write ``report`` to ``path`` (UTF-8, with the XML declaration); exit 2 with one line
    when the file cannot be written."""
    ET.indent(report)
    try:
        ET.ElementTree(report).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise fail(f"--junit {path}: cannot write: {exc.strerror or type(exc).__name__}") from None


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
