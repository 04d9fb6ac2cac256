"""``reconciler status|runs|sync|suspend|resume|cancel`` against a real ``reconciler run`` process.

One daemon (a git repository in a temporary directory, SQLite store, the API on a free loopback
port, a token in ``RECONCILER_API_TOKEN``) serves the whole module. A few commands run as their
own process, exactly as a user types them (table layout, one-line errors, exit codes); the others
run in-process through typer's runner against the same daemon, to keep the module fast (each
new interpreter spends seconds importing).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.engine.journal import RunRecord
from reconciler.store import Store
from tests.support.daemon import CLI, running, without_settings
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.terminal import piped_beside_a_terminal
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(90)

TOKEN = "cli-e2e-token-5b2f"
TOKEN_ENV = {"RECONCILER_API_TOKEN": TOKEN}
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


LONG_NAME = "daemon-preflight-checks-of-the-platform-team-for-every-region"
NAP = {
    "apiVersion": "reconciler/v1",
    "kind": "Workflow",
    "metadata": {"name": "nap"},
    "spec": {
        "interval": "1h",
        "start": "nap",
        "states": {
            "nap": {
                # stands for a long run while the file hold exists in the daemon's directory
                "action": {
                    "plugin": "shell.run",
                    "with": {"argv": ["sh", "-c", "if [ -e hold ]; then sleep 60; fi"]},
                },
                "next": "done",
                "onError": "failed",
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
    },
}


def clean_env(**extra: str) -> dict[str, str]:
    env = without_settings()
    env["COLUMNS"] = "200"  # wide enough that rich never truncates a cell
    env.update(extra)
    return env


@dataclass
class Daemon:
    url: str
    out: Path
    tmp: Path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("remote")
    repo, out = init_repo(tmp / "repo"), tmp / "motd.txt"
    put(repo, file_workflow("motd", out, "hello", keep=True, labels={"team": "ops"}))
    put(repo, file_workflow("gate", tmp / "gate", "open"))  # fails while gate is a directory
    put(repo, NAP)
    put(repo, file_workflow(LONG_NAME, tmp / "long.txt", "whole", keep=True))
    commit(repo, "motd")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        repo,
        tmp / "data",
        "--listen",
        f"127.0.0.1:{port}",
        "--grace-period",
        "2s",
        cwd=tmp,
        log=tmp / "daemon.log",
        env=clean_env(RECONCILER_API_TOKEN=TOKEN),
    ) as process:
        process.wait_ready(url)
        yield Daemon(url, out, tmp)
        code = process.stop(within=30)
    assert code == 0, process.log_text()


def cli(*args: str, **env: str) -> Result:
    """The command in-process (typer's runner), with no RECONCILER_* but ``env``."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RECONCILER_")}
    result = CliRunner().invoke(app, list(args), env={**unset, **env})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command as its own process, as a user types it."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )


def converged(daemon: Daemon, *names: str) -> None:
    for name in names:
        wait_for(daemon, lambda s: s["status"] == "Converged", f"{name} converged", name=name)


def status_json(daemon: Daemon, name: str = "motd") -> dict[str, Any]:
    """Straight from the API (waiting is not what these tests are about)."""
    response = httpx.get(f"{daemon.url}/api/v1/workflows/{name}", timeout=10)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_for(daemon: Daemon, check: Any, what: str, *, name: str = "motd") -> dict[str, Any]:
    def matching() -> dict[str, Any] | None:
        current = status_json(daemon, name)
        return current if check(current) else None

    found = until(matching, 30, what, interval=0.1)
    assert found is not None
    return found


def test_status_shows_a_table_for_people_and_json_for_scripts(daemon: Daemon) -> None:
    converged = wait_for(daemon, lambda s: s["status"] == "Converged", "motd converged")
    table = cli_process("status", "--server", daemon.url)
    assert table.returncode == 0, table.stderr
    header = next(li for li in table.stdout.splitlines() if "WORKFLOW" in li)
    for column in ("STATUS", "SYNC", "REVISION", "LAST RUN", "NEXT CHECK", "REASON"):
        assert column in header
    row = next(li for li in table.stdout.splitlines() if "motd" in li)
    assert "Converged" in row and "Synced" in row
    assert converged["revision"][:12] in row
    listing = cli("status", "--server", daemon.url, "-o", "json")
    assert listing.returncode == 0, listing.stderr
    workflows = json.loads(listing.stdout)["workflows"]
    assert [(w["name"], w["status"], w["labels"]) for w in workflows if w["name"] == "motd"] == [
        ("motd", "Converged", {"team": "ops"})
    ]


def test_sync_with_the_token_runs_the_workflow_again(daemon: Daemon) -> None:
    before = wait_for(daemon, lambda s: s["status"] == "Converged", "motd converged")
    result = cli("sync", "motd", "--server", daemon.url, RECONCILER_API_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sync of workflow motd queued"
    after = wait_for(
        daemon,
        lambda s: s["last_run_id"] != before["last_run_id"] and s["status"] == "Converged",
        "a second run of motd",
    )
    runs = cli("runs", "--workflow", "motd", "--server", daemon.url, "-o", "json")
    reasons = [r["reason"] for r in json.loads(runs.stdout)["runs"]]
    assert reasons[0] == "manual"
    detail = cli("runs", after["last_run_id"], "--server", daemon.url)
    assert detail.returncode == 0, detail.stderr
    assert "succeeded" in detail.stdout and "transition" in detail.stdout
    # RECONCILER_API_TOKEN is the admin token named "default": the manual run says who asked
    assert "requested by default" in detail.stdout


def test_token_from_a_file_works_for_suspend_and_resume(daemon: Daemon) -> None:
    token_file = daemon.tmp / "token"
    token_file.write_text(TOKEN + "\n")
    args = ("--server", daemon.url, "--token-file", str(token_file))
    suspended = cli("suspend", "motd", *args)
    assert suspended.returncode == 0, suspended.stderr
    state = wait_for(daemon, lambda s: s["status"] == "Suspended", "motd suspended")
    assert state["reason"] == "SuspendedManually"
    refused = cli("sync", "motd", *args)
    assert refused.returncode == 2
    assert "suspended" in refused.stderr
    resumed = cli("resume", "motd", *args)
    assert resumed.returncode == 0, resumed.stderr
    wait_for(daemon, lambda s: s["status"] == "Converged" and not s["suspended"], "resumed")


def test_mutation_without_a_token_says_how_to_give_one(daemon: Daemon) -> None:
    result = cli_process("sync", "motd", "--server", daemon.url)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "needs the daemon's API token" in result.stderr
    assert "RECONCILER_API_TOKEN" in result.stderr


def test_wrong_token_and_unknown_names_are_one_clear_line(daemon: Daemon) -> None:
    wrong = cli("sync", "motd", "--server", daemon.url, "--token", "nope")
    assert wrong.returncode == 2
    assert "the API token is not valid (HTTP 401)" in wrong.stderr
    assert TOKEN not in wrong.stderr
    unknown = cli("status", "nope", "--server", daemon.url)
    assert unknown.returncode == 2
    assert "no workflow named 'nope' (HTTP 404)" in unknown.stderr
    assert "Traceback" not in wrong.stderr + unknown.stderr


def test_server_down_is_one_clear_line_and_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = cli_process("status", RECONCILER_SERVER=url)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot reach the daemon at {url}")
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
    for args in (("runs",), ("sync", "motd", "--token", TOKEN)):
        quick = cli(*args, RECONCILER_SERVER=url)
        assert quick.returncode == 2, args
        assert f"cannot reach the daemon at {url}" in quick.stderr


def test_runs_and_cancel_take_the_short_ids_the_tables_show(daemon: Daemon) -> None:
    converged = wait_for(daemon, lambda s: s["status"] == "Converged", "motd converged")
    run_id = converged["last_run_id"]
    shown = cli_process("runs", run_id[:8], "--server", daemon.url, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == run_id
    finished = cli_process("cancel", run_id[:8], "--server", daemon.url, RECONCILER_API_TOKEN=TOKEN)
    assert finished.returncode == 2
    assert f"run {run_id} already succeeded" in finished.stderr


def test_an_ambiguous_short_id_is_one_line_naming_the_candidates(daemon: Daemon) -> None:
    ids = ["feed0000" + "0" * 23 + str(n) for n in (1, 2)]
    asyncio.run(_add_runs(daemon.tmp / "data", ids))
    result = cli_process("runs", "feed", "--server", daemon.url)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "ambiguous" in result.stderr and all(i in result.stderr for i in ids)
    assert result.stdout == ""


async def _add_runs(data_dir: Path, ids: list[str]) -> None:
    """Runs with these ids in the daemon's store (uuid4 ids never share a prefix on purpose)."""
    store = await Store.open(None, data_dir=data_dir)
    try:
        for run_id in ids:
            await store.run_started(RunRecord(id=run_id, workflow="motd", started_at=T0))
    finally:
        await store.close()


def test_sync_wait_follows_the_run_and_exits_with_its_outcome(daemon: Daemon) -> None:
    converged(daemon, "gate")
    gate = daemon.tmp / "gate"
    gate.unlink()
    gate.mkdir()  # file.write cannot write a directory: the next run fails
    try:
        failed = cli_process("sync", "gate", "--wait", "--server", daemon.url, **TOKEN_ENV)
        assert failed.returncode == 1, failed.stderr
        assert "of workflow gate failed after" in failed.stdout
        assert "error:" in failed.stdout
    finally:
        gate.rmdir()
    done = cli_process("sync", "gate", "--wait", "-o", "json", "--server", daemon.url, **TOKEN_ENV)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert (run["workflow"], run["reason"], run["status"]) == ("gate", "manual", "succeeded")
    assert gate.read_text() == "open"


def test_status_exit_code_says_whether_everything_converged(daemon: Daemon) -> None:
    converged(daemon, "motd", "gate", "nap")
    healthy = cli_process("status", "--server", daemon.url)
    assert healthy.returncode == 0, healthy.stderr
    gate = daemon.tmp / "gate"
    gate.unlink()
    gate.mkdir()
    try:
        failed = cli_process("sync", "gate", "--wait", "--server", daemon.url, **TOKEN_ENV)
        assert failed.returncode == 1, failed.stderr
        for args in (("status",), ("status", "gate"), ("status", "-o", "json")):
            degraded = cli_process(*args, "--server", daemon.url)
            assert degraded.returncode == 1, (args, degraded.stderr)
        assert cli_process("status", "motd", "--server", daemon.url).returncode == 0
    finally:
        gate.rmdir()
    assert (
        cli_process("sync", "gate", "--wait", "--server", daemon.url, **TOKEN_ENV).returncode == 0
    )
    assert cli_process("status", "--server", daemon.url).returncode == 0
    down = cli_process("status", RECONCILER_SERVER=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 2


def test_sync_wait_gives_up_after_its_timeout_with_exit_2(daemon: Daemon) -> None:
    converged(daemon, "nap")
    hold = daemon.tmp / "hold"
    hold.touch()
    try:
        slow = cli_process(
            "sync", "nap", "--wait", "--timeout", "2s", "--server", daemon.url, **TOKEN_ENV
        )
        assert slow.returncode == 2, slow.stdout + slow.stderr
        assert "timed out after 2s waiting for run" in slow.stderr
        assert "of workflow nap to finish" in slow.stderr
        running = status_json(daemon, "nap")["running_run_id"]
        assert running, "the run goes on in the daemon"
        unsettled = cli_process("status", "nap", "--server", daemon.url)
        assert unsettled.returncode == 3, unsettled.stderr
    finally:
        hold.unlink()
    cancelled = cli_process("cancel", running[:8], "--server", daemon.url, **TOKEN_ENV)
    assert cancelled.returncode == 0, cancelled.stderr


def test_status_piped_beside_a_narrow_terminal_prints_whole_rows(daemon: Daemon) -> None:
    converged(daemon, "motd", "gate", "nap", LONG_NAME)
    shown = status_json(daemon, LONG_NAME)
    proc = piped_beside_a_terminal(
        [*CLI, "status", "--server", daemon.url], columns=60, env=clean_env()
    )
    assert proc.returncode == 0
    row = next(line for line in proc.stdout.splitlines() if LONG_NAME in line)
    assert f"{shown['reason']}: {shown['message']}" in row
    assert shown["revision"][:12] in row and "Converged" in row
    assert "…" not in proc.stdout
