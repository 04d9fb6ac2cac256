"""A file the source refuses to read turns the workflows it held ``Invalid``, naming the path.

Like a YAML syntax error: the last good version keeps its status, nothing from the refused file
runs, and the other workflows go on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.config.loader import MAX_FILE_BYTES
from reconciler.store import Health, WorkflowStatusRecord
from tests.support.controller import eventually, running
from tests.support.repos import commit, init_repo
from tests.support.workflows import file_workflow_yaml

pytestmark = pytest.mark.timeout(60)


def converged(status: WorkflowStatusRecord) -> bool:
    return status.status is Health.CONVERGED


def invalid(status: WorkflowStatusRecord) -> bool:
    return status.status is Health.INVALID


def converged_at(revision: str) -> Callable[[WorkflowStatusRecord], bool]:
    return lambda s: converged(s) and s.last_applied_revision == revision


async def test_a_workflow_replaced_by_a_symlink_leaving_the_directory_turns_invalid(
    tmp_path: Path,
) -> None:
    watched, outside, out = tmp_path / "wf", tmp_path / "outside", tmp_path / "out"
    watched.mkdir()
    outside.mkdir()
    (watched / "alpha.yaml").write_text(file_workflow_yaml("alpha", out / "alpha.txt", "mine"))
    (watched / "beta.yaml").write_text(file_workflow_yaml("beta", out / "beta.txt", "mine"))
    (outside / "alpha.yaml").write_text(file_workflow_yaml("alpha", out / "alpha.txt", "stolen"))

    async with running(tmp_path, watched, workdir=tmp_path) as (_controller, store):
        first = await eventually(store, "alpha", converged)
        await eventually(store, "beta", converged)
        (watched / "alpha.yaml").unlink()
        (watched / "alpha.yaml").symlink_to(outside / "alpha.yaml")
        status = await eventually(store, "alpha", invalid)
        beta = await store.get_status("beta")

    assert status.message.startswith("alpha.yaml:1:1: symlink to a file outside"), status.message
    assert status.last_applied_revision == first.last_applied_revision
    assert (out / "alpha.txt").read_text() == "mine", "the workflow outside must never run"
    assert beta is not None and beta.status is Health.CONVERGED


async def test_a_workflow_grown_past_the_size_limit_turns_invalid_naming_path_and_size(
    tmp_path: Path,
) -> None:
    repo, out = init_repo(tmp_path / "repo"), tmp_path / "out"
    (repo / "alpha.yaml").write_text(file_workflow_yaml("alpha", out / "alpha.txt", "first"))
    first = commit(repo, "alpha")

    async with running(tmp_path, repo, workdir=tmp_path) as (_controller, store):
        await eventually(store, "alpha", converged_at(first))
        with (repo / "alpha.yaml").open("r+b") as grown:  # sparse: git stores it compressed
            grown.truncate(MAX_FILE_BYTES + 1)
        commit(repo, "grow alpha")
        status = await eventually(store, "alpha", invalid)

    assert status.message == (
        f"alpha.yaml:1:1: file is {MAX_FILE_BYTES + 1} bytes, larger than the limit of "
        f"{MAX_FILE_BYTES} bytes; refused without reading it"
    )
    assert status.last_applied_revision == first
