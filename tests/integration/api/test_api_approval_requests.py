"""A decision answers the question its approver read, not whatever the run asks by the time it
arrives.

A committer can chain two gates: ``ask`` ("restart staging?") gives up after a moment and goes
on to ``prod`` ("wipe production?"). An approver who read the first question and presses
Approve as the run moves on must not approve the second. The page sends the ``request`` it
showed (``approval.request``); a decision naming a request of an earlier visit is refused with
409 ``request_changed`` and nothing is recorded. A resumed run asking again in the same visit
still takes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.store.records import CommandKind
from tests.integration.api.conftest import Daemon, start_daemon

pytestmark = pytest.mark.timeout(90)

CHAINED = {
    "apiVersion": "reconciler/v1",
    "kind": "Workflow",
    "metadata": {"name": "chained"},
    "spec": {
        "interval": "1h",
        "start": "ask",
        "states": {
            "ask": {
                "transitions": [
                    {"to": "done", "approval": {"message": "restart staging?"}},
                    {"to": "prod", "after": "2s"},
                ]
            },
            "prod": {
                "transitions": [
                    {"to": "done", "approval": {"message": "wipe production?"}},
                    {"to": "failed", "after": "1h"},
                ]
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
    },
}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async for d in start_daemon(tmp_path, extra=[CHAINED]):
        yield d


async def approval_of(daemon: Daemon, state: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        runs = (await daemon.client.get("/api/v1/approvals")).json()["runs"]
        found[:] = [
            r for r in runs if r["workflow"] == "chained" and r["approval"]["state"] == state
        ]
        return bool(found)

    await daemon.until(check, f"chained to wait in {state}")
    return found[0]


async def test_an_approval_of_the_question_read_is_refused_once_the_run_asks_another(
    daemon: Daemon,
) -> None:
    seen = await approval_of(daemon, "ask")
    assert seen["approval"]["message"] == "restart staging?"
    now = await approval_of(daemon, "prod")
    assert now["id"] == seen["id"]
    answer = await daemon.client.post(
        f"/api/v1/runs/{seen['id']}/approve",
        json={"request": seen["approval"]["request"]},
        headers=daemon.auth(),
    )
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "request_changed"
    assert "prod" in error["message"]
    assert await daemon.store.unhandled_commands(CommandKind.APPROVE, target=seen["id"]) == []

    accepted = await daemon.client.post(
        f"/api/v1/runs/{now['id']}/approve",
        json={"request": now["approval"]["request"]},
        headers=daemon.auth(),
    )
    assert accepted.status_code == 202, accepted.text
