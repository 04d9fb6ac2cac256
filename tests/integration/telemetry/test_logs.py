"""The daemon's JSON log lines carry workflow, run, state and revision.

Configures logging as ``reconciler run`` does, with stderr going to a file (so not a terminal,
hence JSON lines), runs a real
Controller on a real git repository (one workflow that converges, one that fails), and reads
the lines it wrote to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from reconciler.store import Health
from reconciler.telemetry.logging import CONTEXT_KEYS, configure_logging
from tests.integration.telemetry.harness import (
    failing_workflow,
    file_workflow,
    put,
    until,
)
from tests.support.controller import eventually, running
from tests.support.repos import commit, init_repo

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def json_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Logging as the daemon configures it with stderr redirected to a file (not a terminal,
    so JSON lines); the file's path is yielded. Everything is restored afterwards."""
    path = tmp_path / "stderr.log"
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with path.open("w", encoding="utf-8") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        configure_logging("info", stream=stderr)
        try:
            yield path
        finally:
            structlog.reset_defaults()
            root.setLevel(level)
            root.handlers[:] = handlers


async def test_every_json_line_names_workflow_run_state_and_revision(
    tmp_path: Path, json_logs: Path
) -> None:
    uid = uuid.uuid4().hex[:8]
    ok, bad = f"ok-{uid}", f"bad-{uid}"
    repo = init_repo(tmp_path / "repo")
    put(repo, ok, file_workflow(ok, tmp_path / "motd", "hello"))
    put(repo, bad, failing_workflow(bad))
    head = commit(repo)
    async with running(tmp_path, repo) as (controller, store):
        await eventually(store, ok, lambda s: s.status is Health.CONVERGED)
        await eventually(store, bad, lambda s: s.status is Health.DEGRADED)
        await until(lambda: not controller.queue.processing, "workers idle")
        ok_run = (await store.list_runs(ok))[0].id
        bad_run = (await store.list_runs(bad))[0].id

    err = await asyncio.to_thread(json_logs.read_text, encoding="utf-8")
    lines: list[dict[str, Any]] = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert len(lines) >= 10
    missing = [line for line in lines if not set(CONTEXT_KEYS) <= set(line)]
    assert not missing, f"lines without {CONTEXT_KEYS}: {missing[:3]}"

    for name, run_id, first_state in [(ok, ok_run, "write"), (bad, bad_run, "slow")]:
        mine = [line for line in lines if line["workflow"] == name]
        of_run = [line for line in mine if line["run"] == run_id]
        # the controller's and the engine's lines about the run all carry its id and revision
        events = [line["event"] for line in of_run]
        assert {"run started", "state entered", "transition", "run finished"} <= set(events)
        assert any(f"starting run {run_id[:8]}" in event for event in events), "controller"
        assert all(line["revision"] == head for line in mine), name
        assert all(line["workflow"] == name for line in lines if line["run"] == run_id)
        entered = [line["state"] for line in of_run if line["event"] == "state entered"]
        assert entered[0] == first_state
        # the controller's decision after the run is logged with the run it was about
        decision = [line for line in mine if line.get("status") in ("Converged", "Degraded")]
        assert decision and all(line["run"] == run_id for line in decision)
    # a plugin's line names its state too (the failing action, each attempt)
    failed = [line for line in lines if line["event"] == "action failed" and line["run"] == bad_run]
    assert len(failed) == 2
    assert {line["state"] for line in failed} == {"slow"}
    # lines about no workflow still carry the keys, as null
    started = next(line for line in lines if line["event"].startswith("reconciler started"))
    assert started["workflow"] is None and started["run"] is None
