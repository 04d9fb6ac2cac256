"""Approval gates over real HTTP: the waiting run is listed with what it asks and why it started,
approve and reject are recorded with the token's name and reach the run, and who may decide is
checked before anything is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.approvals import payload
from reconciler.engine.approvals import pending_approval
from reconciler.store.records import CommandKind
from tests.integration.api.conftest import Daemon, start_daemon, tokens_file
from tests.support.workflows import gated_workflow

pytestmark = pytest.mark.timeout(90)

ALICE, BOB, READER = "al1ce-token-0a1b", "b0b-token-2c3d", "r3ader-token-4e5f"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """The API test daemon with three gated workflows: ``gate`` (anyone may decide),
    ``gate-bob`` (only bob) and ``gate-4eyes`` (not whoever asked for the run)."""
    gates = [
        gated_workflow("gate", tmp_path / "gate.txt", "approved"),
        gated_workflow("gate-bob", tmp_path / "bob.txt", "x", approvers=("bob",)),
        gated_workflow("gate-4eyes", tmp_path / "4eyes.txt", "y", separate_requester=True),
    ]
    tokens = tokens_file(
        tmp_path / "tokens.json",
        {"alice": (ALICE, "operate"), "bob": (BOB, "operate"), "dashboard": (READER, "read")},
    )
    async for d in start_daemon(tmp_path, extra=gates, api_tokens_file=tokens):
        yield d


async def waiting_run(daemon: Daemon, workflow: str) -> dict[str, Any]:
    """The entry of ``/api/v1/approvals`` for ``workflow``, once its run waits."""
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        runs = (await daemon.client.get("/api/v1/approvals")).json()["runs"]
        found[:] = [r for r in runs if r["workflow"] == workflow]
        return bool(found)

    await daemon.until(check, f"a run of {workflow} waiting for approval")
    return found[0]


async def finished(daemon: Daemon, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def check() -> bool:
        body.update((await daemon.client.get(f"/api/v1/runs/{run_id}")).json())
        return body["status"] != "running"

    await daemon.until(check, f"run {run_id} to finish")
    return body


async def test_a_waiting_run_is_listed_with_its_question_and_why_it_started(
    daemon: Daemon, tmp_path: Path
) -> None:
    entry = await waiting_run(daemon, "gate")
    approval = entry["approval"]
    assert approval["state"] == "ask"
    assert approval["message"] == f"Write approved to {tmp_path / 'gate.txt'}?"
    assert approval["approvers"] == [] and approval["separate_requester"] is False
    assert approval["why"] == "workflow gate: no run of it is recorded and it has no observe probe"
    detail = (await daemon.client.get(f"/api/v1/runs/{entry['id']}")).json()
    assert detail["approval"] == approval
    kinds = [e["kind"] for e in detail["journal"]]
    assert kinds[-1] == "approval_requested"


async def test_an_approval_is_recorded_with_its_approver_and_the_run_goes_on(
    daemon: Daemon, tmp_path: Path
) -> None:
    run_id = (await waiting_run(daemon, "gate"))["id"]
    answer = await daemon.client.post(
        f"/api/v1/runs/{run_id[:8]}/approve",
        json={"comment": "checked with the DBA"},
        headers=daemon.auth(ALICE),
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["run_id"] == run_id

    run = await finished(daemon, run_id)
    assert run["status"] == "succeeded"
    assert (tmp_path / "gate.txt").read_text() == "approved"
    decided = next(e for e in run["journal"] if e["kind"] == "approval_decided")
    assert decided["outcome"] == "approved"
    assert decided["detail"]["by"] == "alice"
    assert decided["detail"]["comment"] == "checked with the DBA"
    assert run["approval"] is None
    [command] = [c for c in await daemon.store.commands_after(0) if c.kind is CommandKind.APPROVE]
    assert command.requested_by == "alice" and command.handled_at is not None
    assert command.payload is not None and command.payload["verdict"] == "approve"


async def test_a_rejection_routes_the_run_and_nothing_is_written(
    daemon: Daemon, tmp_path: Path
) -> None:
    run_id = (await waiting_run(daemon, "gate"))["id"]
    answer = await daemon.client.post(
        f"/api/v1/runs/{run_id}/reject", json={"comment": "not today"}, headers=daemon.auth(BOB)
    )
    assert answer.status_code == 202, answer.text
    run = await finished(daemon, run_id)
    assert run["status"] == "failed"
    assert run["current_state"] == "rejected"
    assert not (tmp_path / "gate.txt").exists()
    decided = next(e for e in run["journal"] if e["kind"] == "approval_decided")
    assert (decided["outcome"], decided["detail"]["by"]) == ("rejected", "bob")


async def test_a_run_that_is_not_waiting_cannot_be_approved(daemon: Daemon) -> None:
    slow = await daemon.running_run("slow")
    answer = await daemon.client.post(f"/api/v1/runs/{slow}/approve", headers=daemon.auth(ALICE))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "not_awaiting_approval"

    run_id = (await waiting_run(daemon, "gate"))["id"]
    first = await daemon.client.post(f"/api/v1/runs/{run_id}/approve", headers=daemon.auth(ALICE))
    assert first.status_code == 202, first.text
    second = await daemon.client.post(f"/api/v1/runs/{run_id}/reject", headers=daemon.auth(BOB))
    assert second.status_code == 409
    # refused whichever moment it arrives: decided, moved on, or finished
    assert second.json()["error"]["code"] in {
        "already_decided",
        "not_awaiting_approval",
        "not_running",
    }
    assert (await finished(daemon, run_id))["status"] == "succeeded"


async def test_only_the_named_approvers_may_decide(daemon: Daemon) -> None:
    run_id = (await waiting_run(daemon, "gate-bob"))["id"]
    refused = await daemon.client.post(f"/api/v1/runs/{run_id}/approve", headers=daemon.auth(ALICE))
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "not_an_approver",
        "message": f"token 'alice' may not decide state 'ask' of run {run_id}: "
        "its approvers are bob",
    }
    assert [c for c in await daemon.store.commands_after(0) if c.kind is CommandKind.APPROVE] == []
    read_only = await daemon.client.post(
        f"/api/v1/runs/{run_id}/approve", headers=daemon.auth(READER)
    )
    assert read_only.status_code == 403
    assert read_only.json()["error"]["code"] == "forbidden"
    accepted = await daemon.client.post(f"/api/v1/runs/{run_id}/approve", headers=daemon.auth(BOB))
    assert accepted.status_code == 202, accepted.text
    assert (await finished(daemon, run_id))["status"] == "succeeded"


async def test_whoever_asked_for_the_run_may_not_approve_it_with_separate_requester(
    daemon: Daemon,
) -> None:
    first = (await waiting_run(daemon, "gate-4eyes"))["id"]
    await daemon.client.post(f"/api/v1/runs/{first}/reject", headers=daemon.auth(BOB))
    await finished(daemon, first)
    synced = await daemon.client.post(
        "/api/v1/workflows/gate-4eyes/sync", headers=daemon.auth(ALICE)
    )
    assert synced.status_code == 202, synced.text

    found: list[dict[str, Any]] = []

    async def alices_run() -> bool:
        runs = (await daemon.client.get("/api/v1/approvals")).json()["runs"]
        found[:] = [r for r in runs if r["requested_by"] == "alice"]
        return bool(found)

    await daemon.until(alices_run, "the run alice asked for to wait")
    run_id = found[0]["id"]
    refused = await daemon.client.post(f"/api/v1/runs/{run_id}/approve", headers=daemon.auth(ALICE))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "requester_cannot_approve"
    accepted = await daemon.client.post(f"/api/v1/runs/{run_id}/approve", headers=daemon.auth(BOB))
    assert accepted.status_code == 202, accepted.text
    assert (await finished(daemon, run_id))["status"] == "succeeded"


async def test_a_decision_the_run_has_taken_but_not_journaled_yet_still_refuses_another(
    daemon: Daemon,
) -> None:
    # the moment between the run taking a decision (its command marked handled) and its
    # journal saying so: the request still looks open, but it is decided
    run_id = (await waiting_run(daemon, "gate"))["id"]
    pending = pending_approval(await daemon.store.entries(run_id))
    assert pending is not None
    taken = await daemon.store.request(
        CommandKind.APPROVE,
        run_id,
        requested_by="alice",
        payload=payload(approved=True, comment="", pending=pending),
    )
    await daemon.store.commands_handled([taken.id])
    second = await daemon.client.post(f"/api/v1/runs/{run_id}/reject", headers=daemon.auth(BOB))
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "already_decided"
