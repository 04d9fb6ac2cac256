"""A daemon killed with SIGKILL while its writer commits the runs of many workflows in batches:
after a restart every workflow has run exactly once, and no state's action ran twice except
in the state its run resumed in (the durability promise of ``reconciler/daemon/journal.py``).

A real ``reconciler run`` on a SQLite store, with runs of 40 workflows in flight eight at a
time; each state's action appends its name to a file of the workflow's own, so the test counts
what ran, not only what the journal says.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from reconciler.engine.journal import EventKind, RunStatus
from reconciler.store import Health, Store
from tests.support.daemon import DaemonProcess, start, statuses
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.waiting import until, until_async

pytestmark = pytest.mark.timeout(240)

WORKFLOWS = 40

TWO_STEPS = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  interval: 1h
  start: a
  states:
    a:
      action: {{plugin: shell.run, with: {{argv: [sh, -c, "echo a >> {marks}"]}}}}
      next: b
    b:
      action: {{plugin: shell.run, with: {{argv: [sh, -c, "echo b >> {marks}"]}}}}
      next: done
    done: {{end: success}}
"""
"""No probe: each workflow runs once per revision; every action leaves a line in ``marks``."""


def launch(tmp_path: Path) -> DaemonProcess:
    return start(
        tmp_path / "repo",
        tmp_path / "data",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--max-concurrent-runs",
        "8",
        "--grace-period",
        "1s",
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
    )


async def test_a_daemon_killed_mid_batch_resumes_every_run_exactly_once(tmp_path: Path) -> None:
    repo, marks = init_repo(tmp_path / "repo"), tmp_path / "marks"
    marks.mkdir()
    names = [f"gc-{n:02d}" for n in range(WORKFLOWS)]
    for name in names:
        (repo / f"{name}.yaml").write_text(TWO_STEPS.format(name=name, marks=marks / name))
    revision = commit(repo, "forty workflows")
    data_dir = tmp_path / "data"

    first = launch(tmp_path)
    try:
        # runs in flight: some workflows have run an action, most have not finished
        until(lambda: len(list(marks.iterdir())) >= 10, 60, "ten workflows to run an action")
    finally:
        first.kill()

    store = await Store.open(None, data_dir=data_dir)
    try:
        left = await store.unfinished_runs()
        assert left, "the kill should leave runs in flight (the test kills too late)"

        second = launch(tmp_path)
        try:

            async def all_converged() -> bool:
                found = await statuses(data_dir)
                return all(
                    name in found and found[name].status is Health.CONVERGED for name in names
                )

            await until_async(all_converged, 120, "every workflow to converge after the restart")
        finally:
            assert second.stop() == 0

        runs = [r for r in await store.list_runs(limit=1000) if r.workflow in names]
        assert not [r.id for r in runs if r.status is RunStatus.RUNNING]
        succeeded = Counter(
            r.workflow for r in runs if r.status is RunStatus.SUCCEEDED and r.revision == revision
        )
        assert succeeded == Counter(names), "every workflow ran exactly once"
        for run in runs:
            journal = await store.entries(run.id)
            assert [e.seq for e in journal] == list(range(1, len(journal) + 1)), run.id
            kinds = Counter(e.kind for e in journal)
            assert kinds[EventKind.RUN_FINISHED] == 1, f"run {run.id} finished twice or never"
            resumed_in = {e.state for e in journal if e.kind is EventKind.RUN_RESUMED}
            done = (marks / run.workflow).read_text().split()
            for state in ("a", "b"):
                # an action runs again only in the state its run was resumed in
                allowed = 2 if state in resumed_in else 1
                assert 1 <= done.count(state) <= allowed, (run.workflow, done, resumed_in)
        for run in left:
            kinds = [e.kind for e in await store.entries(run.id)]
            assert EventKind.RUN_RESUMED in kinds, f"run {run.id} in flight was not resumed"
    finally:
        await store.close()
