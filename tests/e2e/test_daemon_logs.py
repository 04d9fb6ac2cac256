"""The daemon's log as a real process writes it: every line of every logger one JSON object
with the same keys, the libraries quiet, and every line about a run naming it.

``reconciler run --log-level debug`` on a plain directory (so the file watcher is at work)
converges one workflow, answers an API request, and converges again after its file changes;
then its whole output is read.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.store import Health, Store
from reconciler.telemetry.logging import CONTEXT_KEYS
from tests.support.daemon import CLI, run_args, running, statuses, without_settings
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, put

ANY_PORT = {"RECONCILER_LISTEN": "127.0.0.1:0"}

COMMON_KEYS = {"timestamp", "level", "logger", "event", *CONTEXT_KEYS}

pytestmark = pytest.mark.timeout(120)


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as JSON (a line that is not fails the test, naming it)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"line {number} is not JSON: {line!r}")
    return lines


def holds(path: Path, content: str) -> bool:
    return path.exists() and path.read_text() == content


async def converged_at(data_dir: Path, name: str, content_file: Path, content: str) -> None:
    async def done() -> bool:
        status = (await statuses(data_dir)).get(name)
        return (
            status is not None
            and status.status is Health.CONVERGED
            and await asyncio.to_thread(holds, content_file, content)
        )

    await until_async(done, 30, f"{name} converged with {content!r}", interval=0.1)


async def run_ids(data_dir: Path, name: str) -> list[str]:
    store = await Store.open(None, data_dir=data_dir)
    try:
        return [run.id for run in await store.list_runs(name)]
    finally:
        await store.close()


async def test_a_debug_daemon_writes_only_json_lines_with_the_run_keys(tmp_path: Path) -> None:
    repo, out, data = tmp_path / "repo", tmp_path / "out", tmp_path / "data"
    repo.mkdir()
    out.mkdir()
    target = out / "motd.txt"
    put(repo, file_workflow("motd", target, "hello", keep=True))

    with running(
        repo,
        data,
        "--log-level",
        "debug",
        "--log-format",
        "json",
        "--poll-interval",
        "500ms",
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
        env=ANY_PORT,
    ) as daemon:
        await converged_at(data, "motd", target, "hello")
        found = re.search(r"API listening on (http://[0-9.]+:[0-9]+)", daemon.log_text())
        assert found is not None
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"{found.group(1)}/api/v1/workflows")
        assert answer.status_code == 200
        put(repo, file_workflow("motd", target, "changed", keep=True))
        await converged_at(data, "motd", target, "changed")
        assert daemon.stop() == 0

    runs = await run_ids(data, "motd")
    lines = parse_lines(daemon.log_text())

    assert len(runs) == 2
    for line in lines:
        assert set(line) >= COMMON_KEYS, line
        assert not line["logger"].startswith(("aiosqlite", "sqlalchemy", "watchfiles")), line
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    for run in runs:
        about = [x for x in lines if x["run"] == run or run[:8] in str(x["event"])]
        assert len(about) >= 6  # started, two states, a transition, finished, the outcome
        for line in about:
            assert line["workflow"] == "motd", line
            assert line["run"] == run, line
            assert line["revision"] is not None, line
        assert {x["state"] for x in about} >= {"write", "done"}
    engine = [x for x in lines if x["logger"] == "reconciler.engine"]
    assert engine and all(x["run"] in runs for x in engine)


def test_console_format_is_readable_and_log_levels_come_from_the_environment(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    put(repo, file_workflow("motd", tmp_path / "motd.txt", "hello"))
    env = {**ANY_PORT, "RECONCILER_LOG_LEVELS": "aiosqlite=debug"}

    with running(
        repo,
        tmp_path / "data",
        "--log-format",
        "console",
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
        env=env,
    ) as daemon:
        assert daemon.stop() == 0

    text = daemon.log_text()
    assert not [line for line in text.splitlines() if line.startswith("{")]
    started = next(line for line in text.splitlines() if "reconciler started" in line)
    assert "[info" in started and "[reconciler.daemon]" in started
    assert "[aiosqlite]" in text  # named in RECONCILER_LOG_LEVELS: let through at debug


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--log-levels", "aiosqlite=loud"], {}, "'aiosqlite=loud': the level is one of"),
        ([], {"RECONCILER_LOG_LEVELS": "httpx"}, "'httpx' is not logger=level"),
        (["--log-format", "xml"], {}, "log-format"),
    ],
)
def test_a_bad_logging_setting_is_a_clear_error_before_anything_starts(
    tmp_path: Path, flags: list[str], env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [*CLI, *run_args(tmp_path, tmp_path / "data", *flags)],
        cwd=tmp_path,
        env={**without_settings(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()
