"""Change windows in an in-process controller: a blocked workflow is queued once for the window's
next opening however often it is checked, and a removed workflow's onDelete run waits for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.controller import Controller
from reconciler.daemon.queue import Reason
from reconciler.status import Health, WorkflowStatusRecord
from tests.support.controller import running
from tests.support.repos import commit, git
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(60)


def closing_in_an_hour() -> dict[str, Any]:
    """A deny window open now that closes about an hour from now."""
    now = datetime.now(UTC)
    opened = now.replace(second=0, microsecond=0)
    return {
        "kind": "deny",
        "schedule": f"{opened.minute} {opened.hour} * * *",
        "duration": "1h",
        "description": "freeze",
    }


async def status_of(
    controller: Controller, name: str, reason: str, *, after: datetime | None = None
) -> WorkflowStatusRecord:
    async def found() -> WorkflowStatusRecord | None:
        status = await controller.statuses.get(name)
        if status is None or status.reason != reason:
            return None
        return status if after is None or status.updated_at > after else None

    status = await until_async(found, 20, f"{name} with reason {reason}")
    assert status is not None
    return status


async def test_a_blocked_workflow_is_queued_once_for_the_window_however_often_it_is_checked(
    tmp_path: Path, repo: Path
) -> None:
    document = file_workflow("frozen", tmp_path / "frozen.txt", "x", keep=True)
    document["spec"]["windows"] = [closing_in_an_hour()]
    put(repo, document)
    commit(repo, "a workflow under a freeze")
    async with running(tmp_path, repo) as (controller, store):
        status = await status_of(controller, "frozen", "WindowClosed")
        assert status.status is Health.PENDING
        for _ in range(3):  # drift checks while the freeze lasts
            controller.queue.add("frozen", Reason.DRIFT_CHECK)
            status = await status_of(controller, "frozen", "WindowClosed", after=status.updated_at)
        assert controller.queue.due_later("frozen") == 1
        due = controller.queue.next_due()
        assert due is not None and 55 * 60 < due <= 61 * 60
        assert await store.list_runs("frozen") == []


async def test_a_removed_workflows_on_delete_run_waits_for_its_window(
    tmp_path: Path, repo: Path
) -> None:
    marker = tmp_path / "bye.txt"
    document = file_workflow("leaving", tmp_path / "leaving.txt", "x", keep=True)
    document["spec"]["states"]["cleanup"] = {
        "action": {"plugin": "file.write", "with": {"path": str(marker), "content": "bye"}},
        "next": "done",
    }
    document["spec"]["onDelete"] = "cleanup"
    put(repo, document)
    commit(repo, "a workflow to remove")
    async with running(tmp_path, repo) as (controller, store):
        await status_of(controller, "leaving", "RunSucceeded")
        document["spec"]["windows"] = [closing_in_an_hour()]
        put(repo, document)
        commit(repo, "freeze it")
        await status_of(controller, "leaving", "InSync")  # in sync: a window changes nothing
        git(repo, "rm", "-q", "leaving.yaml")
        commit(repo, "remove it during the freeze")
        held = await status_of(controller, "leaving", "WindowClosed")
        assert "onDelete run waits" in held.message
        assert [r.reason for r in await store.list_runs("leaving")] == [
            "drift"
        ]  # only the first run
        assert not marker.exists()
        assert controller.target.removed.get("leaving") is not None
