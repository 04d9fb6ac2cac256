"""What the API accepted survives ``kill -9`` of the real daemon: a manual sync answered 202 runs
after the restart (as a manual run), a suspension holds after it, and a cancelled run does not
come back to life.

The daemon runs as a process on a SQLite store; the test reads the store beside it. A sync that
is waiting in the daemon's queue when it is killed — ``quick`` depends on ``gate``, whose run
waits for a file the test creates only after the restart — used to be lost with the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.engine.journal import EventKind, RunRecord, RunStatus
from reconciler.store import Health, Store
from tests.support.daemon import DaemonProcess, restartable
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(120)

TOKEN = "commands-e2e-token"


def gate_workflow(gate: Path) -> dict[str, Any]:
    """``gate``: a run that goes on until the file ``gate`` exists."""
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": "gate"},
        "spec": {
            "interval": "1h",
            "start": "wait",
            "states": {
                "wait": {
                    "action": {
                        "plugin": "shell.run",
                        "with": {
                            "argv": ["sh", "-c", f"while [ ! -e '{gate}' ]; do sleep 0.05; done"]
                        },
                    },
                    "next": "done",
                    "onError": "failed",
                },
                "done": {"end": "success"},
                "failed": {"end": "failure"},
            },
        },
    }


class Api:
    """The daemon's API at ``url`` with the steering token."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[], tuple[DaemonProcess, Api]]]:
    """Starts ``reconciler run`` on ``tmp_path / "repo"`` (same data each time), ready to steer;
    every process still running is killed at teardown."""
    flags = ("--poll-interval", "500ms", "--grace-period", "2s")
    with restartable(tmp_path, *flags, env={"RECONCILER_API_TOKEN": TOKEN}) as start_daemon:

        def steerable() -> tuple[DaemonProcess, Api]:
            process, url = start_daemon()
            return process, Api(url)

        yield steerable


async def runs_of(data_dir: Path, name: str) -> list[RunRecord]:
    store = await Store.open(None, data_dir=data_dir)
    try:
        return await store.list_runs(name)
    finally:
        await store.close()


async def test_a_sync_answered_202_runs_after_a_kill_9_as_a_manual_run(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, Api]]
) -> None:
    repo, data, gate = init_repo(tmp_path / "repo"), tmp_path / "data", tmp_path / "gate"
    put(repo, gate_workflow(gate))
    quick = file_workflow("quick", tmp_path / "quick.txt", "hello")
    quick["spec"]["dependsOn"] = ["gate"]
    put(repo, quick)
    commit(repo, "a gate and a workflow that waits for it")
    process, api = daemon()

    async def gate_running() -> bool:
        runs = await runs_of(data, "gate")
        return bool(runs) and runs[0].current_state == "wait"

    await until_async(gate_running, 30, "the run of gate waiting for its file")
    answer = api.post("/api/v1/workflows/quick/sync")
    assert answer.status_code == 202, answer.text
    process.kill()  # a crash right after the answer: the sync was only queued
    assert await runs_of(data, "quick") == []

    daemon()
    gate.touch()

    async def quick_ran() -> list[RunRecord] | None:
        runs = await runs_of(data, "quick")
        return runs if runs and runs[0].status is RunStatus.SUCCEEDED else None

    runs = await until_async(quick_ran, 60, "the run of quick")
    assert runs is not None and [r.reason for r in runs] == ["manual"]
    store = await Store.open(None, data_dir=data)
    try:
        started = [e for e in await store.entries(runs[0].id) if e.kind is EventKind.RUN_STARTED]
    finally:
        await store.close()
    assert [e.detail["reason"] for e in started] == ["manual"]


async def test_a_suspend_answered_before_a_kill_9_still_holds_after_the_restart(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, Api]]
) -> None:
    repo, data = init_repo(tmp_path / "repo"), tmp_path / "data"
    put(repo, file_workflow("motd", tmp_path / "motd.txt", "hello", keep=True))
    commit(repo, "motd")
    process, api = daemon()

    async def converged() -> bool:
        runs = await runs_of(data, "motd")
        return bool(runs) and runs[0].status is RunStatus.SUCCEEDED

    await until_async(converged, 30, "motd's first run")
    answer = api.post("/api/v1/workflows/motd/suspend")
    assert answer.status_code == 200, answer.text
    process.kill()

    _, api = daemon()
    detail = api.get("/api/v1/workflows/motd").json()
    assert detail["suspended"] is True and detail["status"] == Health.SUSPENDED.value
    refused = api.post("/api/v1/workflows/motd/sync")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "suspended"
    (tmp_path / "motd.txt").write_text("drifted")
    assert api.post("/api/v1/workflows/motd/resume").status_code == 200

    async def healed() -> bool:
        return (tmp_path / "motd.txt").read_text() == "hello"

    await until_async(healed, 30, "motd healed once resumed")


async def test_a_cancel_answered_202_before_a_kill_9_still_cancels_the_run(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, Api]]
) -> None:
    repo, data, gate = init_repo(tmp_path / "repo"), tmp_path / "data", tmp_path / "gate"
    put(repo, gate_workflow(gate))
    commit(repo, "a gate")
    process, api = daemon()

    async def waiting_run() -> RunRecord | None:
        runs = await runs_of(data, "gate")
        return runs[0] if runs and runs[0].current_state == "wait" else None

    run = await until_async(waiting_run, 30, "the run of gate waiting for its file")
    answer = api.post(f"/api/v1/runs/{run.id}/cancel")
    assert answer.status_code == 202, answer.text
    process.kill()  # maybe before the run was recorded cancelled: then it resumes, and stops

    daemon()
    gate.touch()  # were the cancel forgotten, the resumed run would now succeed

    async def ended() -> RunRecord | None:
        runs = [r for r in await runs_of(data, "gate") if r.id == run.id]
        return runs[0] if runs and runs[0].status is not RunStatus.RUNNING else None

    final = await until_async(ended, 30, "the run of gate to end")
    assert final.status is RunStatus.CANCELLED
