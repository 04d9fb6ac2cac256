"""A daemon restarted on unchanged files takes them from its snapshot cache, and behaves the same.

The first start keeps every loaded file in the data directory by git blob id (git's own ids of
the committed files); the second start rebuilds them from there, finds every workflow as it was
(converged, nothing runs again) and still reports a broken file at its ``path:line:col``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.daemon.snapshot_cache import CACHE_FILE
from reconciler.store import Health, WorkflowStatusRecord
from tests.support.controller import eventually, running
from tests.support.repos import commit, git, init_repo
from tests.support.workflows import file_workflow_yaml

pytestmark = pytest.mark.timeout(60)


def converged(status: WorkflowStatusRecord) -> bool:
    return status.status is Health.CONVERGED


def invalid(status: WorkflowStatusRecord) -> bool:
    return status.status is Health.INVALID


async def test_a_restart_on_unchanged_files_reads_them_from_the_cache(tmp_path: Path) -> None:
    repo, out = init_repo(tmp_path / "repo"), tmp_path / "out"
    (repo / "alpha.yaml").write_text(
        file_workflow_yaml("alpha", out / "alpha.txt", "hi", keep=True)
    )
    (repo / "beta.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Workflow\nmetadata:\n  name: beta\n"
        "spec:\n  start: write\n  statez: {}\n"
    )
    first = commit(repo, "alpha and a broken beta")

    async with running(tmp_path, repo) as (_controller, store):
        await eventually(store, "alpha", converged)
        runs = await store.list_runs("alpha")

    cache = json.loads((tmp_path / "data" / CACHE_FILE).read_bytes())
    assert [f["blob"] for f in cache["files"]] == [git(repo, "rev-parse", f"{first}:alpha.yaml")]

    async with running(tmp_path, repo) as (controller, store):
        await controller.ready.wait()
        assert controller.target.valid["alpha"].workflow.spec.inputs["content"] == "hi"
        again = await eventually(store, "alpha", converged)
        broken = await eventually(store, "beta", invalid)
        assert [r.id for r in await store.list_runs("alpha")] == [r.id for r in runs]

    assert again.last_applied_revision == first
    assert broken.message.startswith("beta.yaml:5:1: spec.states: required"), broken.message
