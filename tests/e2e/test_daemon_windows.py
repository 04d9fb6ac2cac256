"""Change windows in the real daemon: a blocked workflow reports OutOfSync/WindowClosed and runs
nothing, a manual sync is refused naming the window unless it says ``manualSync: true``, the
operator's windows file blocks by label, and a workflow converges as soon as its window lets it.

The daemon runs as a process on a SQLite store, steered through its HTTP API and the
``reconciler`` CLI. Windows are made open "now" with ``* * * * *`` and a duration (open for
good), or with a schedule computed from the current time when the test needs it to close.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.daemon import CLI, DaemonProcess, spawn, start, without_settings
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(180)

TOKEN = "windows-e2e-token"
ALWAYS_DENY = {"kind": "deny", "schedule": "* * * * *", "duration": "1h"}
"""Opens every minute for an hour: open from the daemon's start on, for good."""


def with_windows(document: dict[str, Any], *windows: dict[str, Any]) -> dict[str, Any]:
    document["spec"]["windows"] = list(windows)
    return document


class Daemon:
    """A running daemon, its API and its CLI."""

    def __init__(self, process: DaemonProcess, url: str) -> None:
        self.process = process
        self.url = url

    def get(self, path: str) -> Any:
        response = httpx.get(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        response.raise_for_status()
        return response.json() if "json" in response.headers["content-type"] else response.text

    def sync(self, name: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api/v1/workflows/{name}/sync",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )

    def workflow(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/v1/workflows/{name}")
        return result

    def runs(self, name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(f"/api/v1/runs?workflow={name}")["runs"]
        return result

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args, "--server", self.url],
            env={**without_settings(), "RECONCILER_API_TOKEN": TOKEN, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def wait_for(self, name: str, reason: str) -> dict[str, Any]:
        return until(
            lambda: (wf := self.workflow(name))["reason"] == reason and wf,
            60,
            f"workflow {name} with reason {reason}",
        )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Any]:
    """Starts ``reconciler run`` on ``tmp_path / "repo"`` with the given extra flags."""
    started: list[DaemonProcess] = []

    def start_daemon(*flags: str) -> Daemon:
        port = free_port()
        process = start(
            tmp_path / "repo",
            tmp_path / "data",
            "--listen",
            f"127.0.0.1:{port}",
            "--poll-interval",
            "500ms",
            *flags,
            cwd=tmp_path,
            log=tmp_path / "daemon.log",
            env={"RECONCILER_API_TOKEN": TOKEN},
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        process.wait_ready(url)
        return Daemon(process, url)

    yield start_daemon
    for process in started:
        if process.proc.poll() is None:
            process.stop()


def test_deny_window_keeps_workflow_out_of_sync_and_refuses_a_manual_sync(
    tmp_path: Path, daemon: Any
) -> None:
    repo = init_repo(tmp_path / "repo")
    put(
        repo,
        with_windows(
            file_workflow("frozen", tmp_path / "frozen.txt", "x", keep=True),
            {**ALWAYS_DENY, "description": "release freeze"},
        ),
    )
    put(
        repo,
        with_windows(
            file_workflow("lenient", tmp_path / "lenient.txt", "x", keep=True),
            {**ALWAYS_DENY, "manualSync": True},
        ),
    )
    put(repo, file_workflow("free", tmp_path / "free.txt", "x", keep=True))
    commit(repo, "three workflows, two under a freeze")
    d = daemon()

    d.wait_for("free", "RunSucceeded")
    frozen = d.wait_for("frozen", "WindowClosed")
    assert frozen["status"] == "Pending"
    assert frozen["sync"] == "OutOfSync"
    assert "deny window spec.windows[0]" in frozen["message"]
    assert frozen["window"]["state"] == "blocked"
    assert frozen["window"]["windows"][0]["description"] == "release freeze"
    assert frozen["window"]["manual_sync"] is False
    assert d.runs("frozen") == []
    assert not (tmp_path / "frozen.txt").exists()
    assert d.workflow("free")["window"] is None

    refused = d.sync("frozen")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "window_closed"
    assert "spec.windows[0]" in refused.json()["error"]["message"]
    printed = d.cli("sync", "frozen")
    assert printed.returncode == 2
    assert "spec.windows[0]" in printed.stderr

    d.wait_for("lenient", "WindowClosed")
    assert d.sync("lenient").status_code == 202
    until(lambda: d.runs("lenient"), 60, "the manual run of lenient")
    assert [r["reason"] for r in d.runs("lenient")] == ["manual"]
    until(lambda: (tmp_path / "lenient.txt").exists(), 60, "lenient's file")

    assert d.runs("frozen") == []  # nothing started it meanwhile
    metrics = d.get("/metrics")
    assert 'reconciler_workflow_window_blocked{workflow="frozen"} 1.0' in metrics
    assert 'workflow="free"' not in "".join(
        line for line in metrics.splitlines() if "window_blocked{" in line
    )
    status = d.cli("status", "-o", "json")
    listed = {w["name"]: w for w in json.loads(status.stdout)["workflows"]}
    assert listed["frozen"]["window"]["state"] == "blocked"
    table = d.cli("status")
    assert "WINDOW" in table.stdout
    assert "blocked" in table.stdout


def test_operator_windows_file_blocks_by_label(tmp_path: Path, daemon: Any) -> None:
    repo = init_repo(tmp_path / "repo")
    put(repo, file_workflow("prod-app", tmp_path / "prod.txt", "x", labels={"tier": "prod"}))
    put(repo, file_workflow("dev-app", tmp_path / "dev.txt", "x", labels={"tier": "dev"}))
    commit(repo, "a prod and a dev workflow")
    windows = tmp_path / "windows.yaml"
    windows.write_text(
        yaml.safe_dump([{**ALWAYS_DENY, "selector": {"matchLabels": {"tier": "prod"}}}])
    )
    d = daemon("--windows-file", str(windows))

    d.wait_for("dev-app", "RunSucceeded")
    prod = d.wait_for("prod-app", "WindowClosed")
    assert "deny window windows-file[0]" in prod["message"]
    assert d.runs("prod-app") == []
    assert not (tmp_path / "prod.txt").exists()
    refused = d.sync("prod-app")
    assert refused.status_code == 409
    assert "windows-file[0]" in refused.json()["error"]["message"]


def test_a_bad_windows_file_stops_the_daemon_from_starting_naming_file_and_field(
    tmp_path: Path,
) -> None:
    repo = init_repo(tmp_path / "repo")
    put(repo, file_workflow("motd", tmp_path / "motd.txt", "x"))
    commit(repo, "one workflow")
    windows = tmp_path / "windows.yaml"
    windows.write_text(yaml.safe_dump([{**ALWAYS_DENY, "schedule": "61 * * * *"}]))
    process = spawn(
        [
            "run",
            "--repo",
            str(repo),
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--windows-file",
            str(windows),
        ],
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
    )
    try:
        code = process.wait(within=60)
    finally:
        process.kill()
    assert code != 0
    text = process.log_text()
    assert str(windows) in text
    assert "[0].schedule" in text


def test_a_blocked_workflow_runs_as_soon_as_its_window_closes(tmp_path: Path, daemon: Any) -> None:
    repo = init_repo(tmp_path / "repo")
    put(repo, file_workflow("other", tmp_path / "other.txt", "x"))
    commit(repo, "another workflow, so that the daemon starts")
    d = daemon()
    # once the daemon is up (its start takes long on a loaded machine): a deny window that
    # opened at the start of this minute and closes ~20 s from now; the workflow's interval (1h)
    # is far away, so only the queue's feedback can run it in time
    now = datetime.now(UTC)
    opened = now.replace(second=0, microsecond=0)
    closes = now + timedelta(seconds=20)
    seconds = int((closes - opened).total_seconds()) + 1
    deny = {
        "kind": "deny",
        "schedule": f"{opened.minute} {opened.hour} * * *",
        "duration": f"{seconds}s",
    }
    put(repo, with_windows(file_workflow("later", tmp_path / "later.txt", "x", keep=True), deny))
    commit(repo, "a workflow under a short freeze")

    until(
        lambda: any(
            e.get("workflow") == "later" and e.get("reason") == "WindowClosed"
            for e in d.process.events()
        ),
        30,
        "the daemon to hold later's run for the window",
    )
    runs = until(lambda: d.runs("later"), 90, "later's run once the window closed")
    started = datetime.fromisoformat(runs[-1]["started_at"])
    assert started >= opened + timedelta(seconds=seconds)
    d.wait_for("later", "RunSucceeded")


def test_apply_skips_a_workflow_its_own_window_blocks_and_runs_the_others(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    put(tree, with_windows(file_workflow("frozen", tmp_path / "frozen.txt", "x"), ALWAYS_DENY))
    put(tree, file_workflow("free", tmp_path / "free.txt", "x"))
    proc = subprocess.run(
        [*CLI, "apply", str(tree), "--output", "json"],
        cwd=tmp_path,
        env=without_settings(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = {w["workflow"]: w for w in json.loads(proc.stdout)["workflows"]}
    assert report["frozen"]["result"] == "skipped"
    assert report["frozen"]["reason"] == "WindowClosed"
    assert "spec.windows[0]" in report["frozen"]["message"]
    assert report["free"]["result"] == "converged"
    assert not (tmp_path / "frozen.txt").exists()
    assert (tmp_path / "free.txt").exists()
