"""Runs with inputs against the real daemon process: ``reconciler sync NAME --input k=v``
starts a run that has the value (journal, run detail, its effect), two syncs with different
inputs give two runs, and a run with inputs that is interrupted by ``kill -9`` while it waits in
an ``after:`` state resumes with the same inputs after the restart.

The daemon runs as a process on a SQLite store; the test reads the store beside it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.store import Store
from tests.support.daemon import CLI, DaemonProcess, Starter, restartable, without_settings
from tests.support.repos import commit, init_repo
from tests.support.waiting import until
from tests.support.workflows import put

pytestmark = pytest.mark.timeout(180)

TOKEN = "inputs-e2e-token"
HOLD = "6s"
"""How long the run waits in ``hold``: long enough to kill the daemon while it does."""


def scale_workflow(out: Path, *, hold: bool = False) -> dict[str, Any]:
    """``scale`` writes ``<content> x<replicas>`` to ``out`` (both parameters); with ``hold``,
    it first waits :data:`HOLD` in state ``hold``."""
    states: dict[str, Any] = {
        "write": {
            "action": {
                "plugin": "file.write",
                "with": {
                    "path": str(out),
                    "content": "${{ inputs.content }} x${{ inputs.replicas }}",
                },
            },
            "next": "done",
            "onError": "failed",
        },
        "done": {"end": "success"},
        "failed": {"end": "failure"},
    }
    if hold:
        states = {"hold": {"transitions": [{"to": "write", "after": HOLD}]}, **states}
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": "scale"},
        "spec": {
            "interval": "1h",
            "parameters": {
                "content": {"type": "string", "default": "plain"},
                "replicas": {"type": "integer", "default": 1},
            },
            "start": "hold" if hold else "write",
            "states": states,
        },
    }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Starter]:
    """Starts ``reconciler run`` on ``tmp_path / "repo"`` (same data each time) and returns it
    with its URL; every process still running is killed at teardown."""
    flags = ("--poll-interval", "500ms", "--grace-period", "2s")
    with restartable(tmp_path, *flags, env={"RECONCILER_API_TOKEN": TOKEN}) as start_daemon:
        yield start_daemon


def reconciler(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``reconciler`` command as its own process, as a user types it."""
    env = without_settings()
    env.update(RECONCILER_API_TOKEN=TOKEN, RECONCILER_SERVER=url, COLUMNS="200")
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def stored(data: Path, name: str) -> list[tuple[RunRecord, list[JournalEntry]]]:
    """``name``'s runs (newest first) with their journals, read from the daemon's store."""

    async def read() -> list[tuple[RunRecord, list[JournalEntry]]]:
        store = await Store.open(None, data_dir=data)
        try:
            return [(run, await store.entries(run.id)) for run in await store.list_runs(name)]
        finally:
            await store.close()

    return asyncio.run(read())


def manual(data: Path) -> list[RunRecord]:
    return [run for run, _ in stored(data, "scale") if run.reason == "manual"]


def first_run_done(data: Path) -> bool:
    runs = stored(data, "scale")
    return bool(runs) and runs[-1][0].status is RunStatus.SUCCEEDED


def test_sync_with_an_input_starts_a_run_that_has_the_value(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, str]]
) -> None:
    repo, data, out = init_repo(tmp_path / "repo"), tmp_path / "data", tmp_path / "scale.txt"
    put(repo, scale_workflow(out))
    commit(repo, "scale")
    _, url = daemon()
    until(lambda: first_run_done(data), 30, "scale's first run (with the defaults)")
    assert out.read_text() == "plain x1"

    synced = reconciler(url, "sync", "scale", "--input", "replicas=5", "--input", "content=hi")
    assert synced.returncode == 0, synced.stderr
    assert "with inputs content, replicas" in synced.stdout
    run = until(lambda: next(iter(manual(data)), None), 30, "the manual run of scale")
    until(lambda: out.read_text() == "hi x5", 30, "the file the run with inputs wrote")
    assert run.inputs == {"replicas": 5, "content": "hi"}  # 5 is an integer, as declared
    [(_, journal)] = [(r, j) for r, j in stored(data, "scale") if r.id == run.id]
    started = journal[0]
    assert started.kind is EventKind.RUN_STARTED
    assert started.detail["inputs"] == {"replicas": 5, "content": "hi"}

    shown = reconciler(url, "runs", run.id[:8])
    assert shown.returncode == 0, shown.stderr
    assert 'inputs content="hi" replicas=5' in shown.stdout
    assert "requested by default" in shown.stdout

    refused = reconciler(url, "sync", "scale", "--input", "replicas=many")
    assert refused.returncode == 2
    assert "input 'replicas' of workflow 'scale': expected an integer, got 'many'" in (
        refused.stderr
    )
    assert "HTTP 422" in refused.stderr


def test_two_syncs_with_different_inputs_give_two_runs_and_wait_follows_its_own(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, str]]
) -> None:
    repo, data, out = init_repo(tmp_path / "repo"), tmp_path / "data", tmp_path / "scale.txt"
    put(repo, scale_workflow(out))
    commit(repo, "scale")
    _, url = daemon()
    until(lambda: first_run_done(data), 30, "scale's first run (with the defaults)")

    first = reconciler(url, "sync", "scale", "--input", "content=one")
    assert first.returncode == 0, first.stderr
    waited = reconciler(url, "sync", "scale", "--input", "content=two", "--wait", "-o", "json")
    assert waited.returncode == 0, waited.stderr
    assert '"content": "two"' in waited.stdout  # the run --wait followed is the one it caused
    runs = until(
        lambda: (
            (found := manual(data))
            and len(found) == 2
            and all(r.status.finished for r in found)
            and found
        ),
        30,
        "two manual runs of scale",
    )
    assert sorted(r.inputs["content"] for r in runs if r.inputs) == ["one", "two"]
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    listed = reconciler(url, "runs", "-w", "scale")
    assert listed.returncode == 0, listed.stderr
    assert "INPUTS" in listed.stdout
    assert 'content="one"' in listed.stdout and 'content="two"' in listed.stdout


def test_a_run_with_inputs_interrupted_by_kill_9_resumes_with_the_same_inputs(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, str]]
) -> None:
    repo, data, out = init_repo(tmp_path / "repo"), tmp_path / "data", tmp_path / "scale.txt"
    put(repo, scale_workflow(out, hold=True))
    commit(repo, "scale, which waits before it writes")
    process, url = daemon()
    until(lambda: first_run_done(data), 60, "scale's first run (with the defaults)")

    synced = reconciler(url, "sync", "scale", "--input", "content=kept", "--input", "replicas=3")
    assert synced.returncode == 0, synced.stderr

    def holding() -> RunRecord | None:
        runs = manual(data)
        return runs[0] if runs and runs[0].current_state == "hold" else None

    run = until(holding, 30, "the run with inputs waiting in hold")
    process.kill()
    [interrupted] = manual(data)
    assert interrupted.status is RunStatus.RUNNING, "killed while it waited"
    assert interrupted.inputs == {"content": "kept", "replicas": 3}

    daemon()

    def finished() -> RunRecord | None:
        runs = manual(data)
        return runs[0] if len(runs) == 1 and runs[0].status.finished else None

    resumed = until(finished, 60, "the resumed run to finish")
    assert resumed.id == run.id and resumed.attempt == 2
    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.inputs == {"content": "kept", "replicas": 3}
    assert out.read_text() == "kept x3"
