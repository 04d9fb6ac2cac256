"""The store under the real engine: a process killed with SIGKILL mid-run leaves a run that a
new process finds in ``unfinished_runs`` and resumes in the journaled state, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from reconciler_plugins.shell import ShellRun

from reconciler.config.models import Workflow
from reconciler.engine.journal import EventKind, RunStatus
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry
from reconciler.store import Store
from tests.support.waiting import until_async


def machine(b_argv: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": "drain-node"},
        "spec": {
            "start": "a",
            "states": {
                "a": {
                    "action": {"plugin": "shell.run", "with": {"argv": ["true"]}, "as": "a"},
                    "next": "b",
                },
                "b": {"action": {"plugin": "shell.run", "with": {"argv": b_argv}}, "next": "c"},
                "c": {
                    "action": {"plugin": "shell.run", "with": {"argv": ["true"]}},
                    "next": "done",
                },
                "done": {"end": "success"},
            },
        },
    }


CHILD = """
import asyncio, sys
from pathlib import Path
from reconciler.config.models import Workflow
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry
from reconciler.store import Store
from reconciler_plugins.shell import ShellRun
import json

async def main() -> None:
    store = await Store.open(sys.argv[1], data_dir=Path(sys.argv[2]))
    registry = PluginRegistry()
    registry.register("shell.run", ShellRun)
    workflow = Workflow.model_validate(json.loads(sys.argv[3]))
    await Engine(registry, journal=store).run(workflow, run_id="crashy", reason="drift")

asyncio.run(main())
"""


async def test_a_killed_process_leaves_a_run_that_resumes_in_its_state(
    store_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    store = await Store.open(store_url, data_dir=data_dir)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        store_url,
        str(data_dir),
        json.dumps(machine(["sleep", "60"])),
        start_new_session=True,
    )

    async def in_state_b() -> bool:
        run = await store.get_run("crashy")
        assert child.returncode is None, "the child ended before reaching state b"
        return run is not None and run.current_state == "b"

    try:
        await until_async(in_state_b, 30, "the child's run to reach state b", interval=0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone if it failed early
            os.killpg(child.pid, signal.SIGKILL)  # the process and its `sleep` die at once
        await child.wait()

    unfinished = await store.unfinished_runs()
    assert [r.id for r in unfinished] == ["crashy"]
    interrupted = unfinished[0]
    assert interrupted.status is RunStatus.RUNNING and interrupted.current_state == "b"
    assert "a" in interrupted.outputs

    registry = PluginRegistry()
    registry.register("shell.run", ShellRun)
    fast = Workflow.model_validate(machine(["true"]))
    result = await Engine(registry, journal=store).run(fast, resume=interrupted)

    assert result.ok and result.path == ["b", "c", "done"]
    finished = await store.get_run("crashy")
    assert finished is not None
    assert finished.status is RunStatus.SUCCEEDED and finished.attempt == 2
    assert await store.unfinished_runs() == []
    log = await store.entries("crashy")
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    kinds = [e.kind for e in log]
    assert kinds[0] is EventKind.RUN_STARTED and EventKind.RUN_RESUMED in kinds
    assert kinds[-1] is EventKind.RUN_FINISHED
    await store.close()
