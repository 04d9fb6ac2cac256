"""``reconciler plan``/``apply`` and the daemon decide alike: one decision path, two callers.

The same workflow files — the quickstart example and one of each outcome (drift that stays, a
failing run and what depends on it, a suspended workflow, one already in sync, an invalid one) —
go to the daemon (a real controller on a git repository) and to ``reconciler apply``/``plan``
(real subprocesses). Each workflow must end with the same status and reason on both sides.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconciler.status import Health
from reconciler.store import Store
from tests.support.controller import running
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, to_yaml

REPO = Path(__file__).resolve().parents[3]
QUICKSTART = REPO / "examples/quickstart"


def case(name: str, path: str, content: str, *, keep: bool = False, **spec: Any) -> str:
    """The shared file-writing workflow, with ``spec`` fields added or replaced."""
    document = file_workflow(name, path, content, keep=keep, interval=None)
    document["spec"].update(spec)
    return to_yaml(document)


def acting(name: str, action: dict[str, Any]) -> str:
    """The shared file-writing workflow with its one action replaced by ``action``."""
    document = file_workflow(name, "unused.txt", "x", interval=None)
    document["spec"]["states"]["write"]["action"] = action
    return to_yaml(document)


CASES = {
    "drifts": case(
        "drifts", "drift.txt", "something else", keep=True, desired={"content": "wanted"}
    ),
    "breaks": acting("breaks", {"plugin": "shell.run", "with": {"argv": ["false"]}}),
    "after-breaks": case("after-breaks", "after.txt", "x", dependsOn=["breaks"]),
    "paused": case("paused", "paused.txt", "x", suspend=True),
    "already": case("already", "already.txt", "here", keep=True),
    "unknown-plugin": acting("unknown-plugin", {"plugin": "no.such.plugin"}),
}


SETTLED = {
    "RunSucceeded",
    "InSync",
    "DriftRemains",
    "RunFailed",
    "DependencyNotReady",
    "Suspended",
    "InvalidSpec",
}
"""Reasons a first decision ends with (a retry after back-off decides the same again)."""


def workflow_files(into: Path) -> None:
    shutil.copytree(QUICKSTART, into, ignore=shutil.ignore_patterns("*.md"))
    for name, text in CASES.items():
        (into / f"{name}.yaml").write_text(text)


def workdir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "already.txt").write_text("here")
    return path


def cli(*args: str, cwd: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args, "--output", "json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def cli_decisions(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    found = {w["workflow"]: (w["status"], w["reason"]) for w in report["workflows"]}
    found.update({name: ("Invalid", "InvalidSpec") for name in report["invalid"]})
    return found


async def daemon_decisions(tmp_path: Path, names: set[str]) -> tuple[dict[str, Any], set[str]]:
    """Every workflow's first settled status in a real controller, and the ones that ran."""
    repo = init_repo(tmp_path / "repo")
    workflow_files(repo / "workflows")
    commit(repo, "the workflows")
    workdir(tmp_path / "daemon")
    settled: dict[str, tuple[str, str]] = {}

    async def all_settled(store: Store) -> bool:
        for name in names - set(settled):
            status = await store.get_status(name)
            if status is not None and status.reason in SETTLED:
                settled[name] = (status.status.value, status.reason)
        return set(settled) == names

    async with running(tmp_path / "daemon", repo) as (_controller, store):
        await until_async(lambda: all_settled(store), 60, "every workflow to settle")
        ran = {r.workflow for r in await store.list_runs(None, limit=1000)}
    return settled, ran


async def test_apply_and_the_daemon_decide_every_workflow_alike(tmp_path: Path) -> None:
    workflow_files(tmp_path / "cli/workflows")
    cli_dir = workdir(tmp_path / "cli/work")

    applied = cli_decisions(cli("apply", "../workflows", cwd=cli_dir))
    daemon, ran = await daemon_decisions(tmp_path, set(applied))

    assert daemon == applied
    assert applied["drifts"] == (Health.DEGRADED.value, "DriftRemains")
    assert applied["breaks"] == (Health.DEGRADED.value, "RunFailed")
    assert applied["after-breaks"] == (Health.PENDING.value, "DependencyNotReady")
    assert applied["paused"] == (Health.SUSPENDED.value, "Suspended")
    assert applied["already"] == (Health.CONVERGED.value, "InSync")
    assert applied["unknown-plugin"] == ("Invalid", "InvalidSpec")
    assert applied["motd"] == (Health.CONVERGED.value, "RunSucceeded")
    assert "already" not in ran and "paused" not in ran and "after-breaks" not in ran


async def test_plan_would_run_what_the_daemon_runs(tmp_path: Path) -> None:
    workflow_files(tmp_path / "cli/workflows")
    cli_dir = workdir(tmp_path / "cli/work")

    report = cli("plan", "../workflows", cwd=cli_dir)
    would_run = {w["workflow"] for w in report["workflows"] if w["result"] == "would-run"}
    _daemon, ran = await daemon_decisions(tmp_path, set(cli_decisions(report)))

    # plan counts a workflow that would run as converged, so it also checks what depends on
    # it; the daemon never runs after-breaks because breaks fails.
    assert would_run - {"after-breaks"} == ran
    assert "after-breaks" in would_run
    assert not (cli_dir / "quickstart-out").exists()  # plan changes nothing
