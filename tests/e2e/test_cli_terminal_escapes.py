"""What the CLI prints of a daemon's data cannot drive the terminal that shows it.

An approval's question comes from a workflow in the repository and a comment from any token
allowed to decide; either may carry terminal control sequences (``ESC ]0;…BEL`` retitles the
window, ``ESC [2J`` clears the screen, a carriage return rewrites a line). ``reconciler
approvals`` and ``reconciler runs RUN`` print them as visible ``\\x1b`` text, never as bytes.
The daemon runs in this process on a real store; the CLI is a separate process over HTTP.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.api.conftest import TOKEN, Daemon, start_daemon, write_repo
from tests.support.daemon import CLI, without_settings
from tests.support.repos import commit, init_repo
from tests.support.workflows import file_workflow, gated_workflow, put

pytestmark = pytest.mark.timeout(120)

HOSTILE = "\x1b]0;pwned\x07\x1b[2Jdeploy\r\x9b31m now?"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    repo = tmp_path / "repo"
    init_repo(repo)
    write_repo(repo, tmp_path / "motd.txt")
    put(repo, gated_workflow("gate", tmp_path / "gate.txt", "x", message=HOSTILE))
    frozen = file_workflow("frozen", tmp_path / "frozen.txt", "x")
    frozen["spec"]["windows"] = [
        {"kind": "deny", "schedule": "* * * * *", "duration": "2m", "description": HOSTILE}
    ]
    put(repo, frozen)
    commit(repo)
    async for d in start_daemon(tmp_path):
        yield d


async def run_cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**without_settings(), "RECONCILER_API_TOKEN": TOKEN}
    return await asyncio.to_thread(
        subprocess.run,
        [*CLI, *args, "--server", daemon.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def cli(daemon: Daemon, *args: str) -> str:
    done = await run_cli(daemon, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def shows_no_control(text: str) -> bool:
    return not any(c in text for c in "\x1b\x07\r\x9b")


async def test_a_question_and_a_comment_with_terminal_escapes_print_as_visible_text(
    daemon: Daemon,
) -> None:
    waiting: list[str] = []

    async def asked() -> bool:
        runs = (await daemon.client.get("/api/v1/approvals")).json()["runs"]
        waiting[:] = [r["id"] for r in runs]
        return bool(waiting)

    await daemon.until(asked, "the run of gate to wait for approval")
    listed = await cli(daemon, "approvals")
    detail = await cli(daemon, "runs", waiting[0])
    await cli(daemon, "approve", waiting[0], "--reject", "--comment", f"no {HOSTILE}")

    async def decided() -> bool:
        run = (await daemon.client.get(f"/api/v1/runs/{waiting[0]}")).json()
        return bool(run["status"] != "running")

    await daemon.until(decided, "the rejected run to finish")
    journal = await cli(daemon, "runs", waiting[0])
    for shown in (listed, detail, journal):
        assert shows_no_control(shown), repr(shown)
    assert "\\x1b]0;pwned\\x07" in detail
    assert "\\x1b]0;pwned\\x07" in journal.replace("\n", "")


async def test_a_refusal_quoting_a_windows_description_prints_it_as_visible_text(
    daemon: Daemon,
) -> None:
    refused = await run_cli(daemon, "sync", "frozen")
    assert refused.returncode != 0
    assert "window" in refused.stderr
    assert shows_no_control(refused.stderr), repr(refused.stderr)
    assert "\\x1b]0;pwned\\x07" in refused.stderr.replace("\n", "")
