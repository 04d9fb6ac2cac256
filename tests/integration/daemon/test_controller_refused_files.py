"""A file the source refuses to read turns the workflows it held ``Invalid``, naming the path.

Like a YAML syntax error: the last good version keeps its status, nothing from the refused file
runs, and the other workflows go on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.store import Health, WorkflowStatusRecord
from tests.support.controller import eventually, running
from tests.support.hostile import writer_workflow

pytestmark = pytest.mark.timeout(60)


def converged(status: WorkflowStatusRecord) -> bool:
    return status.status is Health.CONVERGED


def invalid(status: WorkflowStatusRecord) -> bool:
    return status.status is Health.INVALID


async def test_a_workflow_replaced_by_a_symlink_leaving_the_directory_turns_invalid(
    tmp_path: Path,
) -> None:
    watched, outside, out = tmp_path / "wf", tmp_path / "outside", tmp_path / "out"
    watched.mkdir()
    outside.mkdir()
    (watched / "alpha.yaml").write_text(writer_workflow("alpha", out / "alpha.txt", "mine"))
    (watched / "beta.yaml").write_text(writer_workflow("beta", out / "beta.txt", "mine"))
    (outside / "alpha.yaml").write_text(writer_workflow("alpha", out / "alpha.txt", "stolen"))

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
