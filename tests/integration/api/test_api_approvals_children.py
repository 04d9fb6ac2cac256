"""The four-eyes rule of an approval gate holds through ``workflow.run``: a gate in a child run
is decided by someone other than whoever asked for the top-level run that started it.

A child run has no ``requested_by`` of its own; the gate must look at the run the sync
started, or the requester approves their own change by wrapping the gated workflow in another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.conftest import Daemon, start_daemon, tokens_file
from tests.support.workflows import gated_workflow

pytestmark = pytest.mark.timeout(90)

ALICE, BOB = "al1ce-token-child-1", "b0b-token-child-2"

RELEASE = {
    "apiVersion": "reconciler/v1",
    "kind": "Workflow",
    "metadata": {"name": "release"},
    "spec": {
        "interval": "1h",
        "start": "child",
        "states": {
            "child": {
                "action": {"plugin": "workflow.run", "with": {"workflow": "gate-4eyes"}},
                "next": "done",
                "onError": "failed",
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
    },
}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    gate = gated_workflow("gate-4eyes", tmp_path / "4eyes.txt", "y", separate_requester=True)
    tokens = tokens_file(
        tmp_path / "tokens.json", {"alice": (ALICE, "operate"), "bob": (BOB, "operate")}
    )
    async for d in start_daemon(tmp_path, extra=[gate, RELEASE], api_tokens_file=tokens):
        yield d


async def waiting_children(daemon: Daemon, *, parent_of: str | None = None) -> list[str]:
    """The ids of the child runs waiting for approval (whose parent ran ``release``)."""
    runs = (await daemon.client.get("/api/v1/approvals")).json()["runs"]
    found: list[str] = []
    for run in runs:
        parent = run.get("parent_id")
        if parent is None:
            continue
        detail: dict[str, Any] = (await daemon.client.get(f"/api/v1/runs/{parent}")).json()
        if detail["workflow"] == "release" and (
            parent_of is None or detail.get("requested_by") == parent_of
        ):
            found.append(run["id"])
    return found


async def test_whoever_asked_for_the_parent_run_may_not_approve_the_gate_of_its_child(
    daemon: Daemon,
) -> None:
    first: list[str] = []

    async def the_first_child_waits() -> bool:
        first[:] = await waiting_children(daemon)
        return bool(first)

    await daemon.until(the_first_child_waits, "the child of release's first run to wait")
    rejected = await daemon.client.post(f"/api/v1/runs/{first[0]}/reject", headers=daemon.auth(BOB))
    assert rejected.status_code == 202, rejected.text

    async def release_is_idle() -> bool:
        runs = (await daemon.client.get("/api/v1/runs?workflow=release")).json()["runs"]
        return all(r["status"] != "running" for r in runs)

    await daemon.until(release_is_idle, "release's first run to end")
    synced = await daemon.client.post("/api/v1/workflows/release/sync", headers=daemon.auth(ALICE))
    assert synced.status_code == 202, synced.text
    alices: list[str] = []

    async def alices_child_waits() -> bool:
        alices[:] = await waiting_children(daemon, parent_of="alice")
        return bool(alices)

    await daemon.until(alices_child_waits, "the child of the run alice asked for to wait")
    refused = await daemon.client.post(
        f"/api/v1/runs/{alices[0]}/approve", headers=daemon.auth(ALICE)
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "requester_cannot_approve"
    accepted = await daemon.client.post(
        f"/api/v1/runs/{alices[0]}/approve", headers=daemon.auth(BOB)
    )
    assert accepted.status_code == 202, accepted.text
