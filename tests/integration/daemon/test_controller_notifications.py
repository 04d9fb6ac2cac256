"""The controller's event sink: what an in-process daemon tells a webhook provider when a
workflow converges and is suspended through the API, when the source fails and recovers, and
what it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from reconciler.store import Health
from tests.support.controller import eventually, running
from tests.support.notify_server import FakeNotifyServer
from tests.support.repos import commit
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, gated_workflow, put


@pytest.fixture
def fake() -> Iterator[FakeNotifyServer]:
    with FakeNotifyServer() as server:
        yield server


def document(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def events(fake: FakeNotifyServer) -> list[tuple[str, str]]:
    return [(r.body["event"], r.body["workflow"]) for r in fake.requests_to("/hook")]


async def test_status_changes_and_an_api_suspend_reach_the_webhook(
    tmp_path: Path, repo: Path, fake: FakeNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_SECRET_CTL_HOOK", fake.hmac_key)
    put(repo, file_workflow("motd", tmp_path / "motd", "hi", keep=True))
    put(
        repo,
        document(
            "Provider",
            "hook",
            type="webhook",
            address=f"{fake.url}/hook",
            secretRef="env:RECONCILER_SECRET_CTL_HOOK",
        ),
    )
    put(
        repo,
        document(
            "Alert",
            "statuses",
            providerRefs=["hook"],
            events=["status.converged", "status.suspended", "status.invalid"],
        ),
    )
    commit(repo, "motd, notified")
    async with running(tmp_path, repo, notify_hosts=["127.0.0.1"]) as (controller, store):
        await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
        await until_async(
            lambda: events(fake) == [("status.converged", "motd")], 10, "the converged event"
        )
        assert await controller.suspend("motd", requested_by="ops")
        await until_async(lambda: len(events(fake)) == 2, 10, "the suspended event")
        assert events(fake)[1] == ("status.suspended", "motd")
    assert all(r.status == 204 for r in fake.received)


async def test_a_provider_on_a_host_not_allowed_is_refused_once_and_workflows_run(
    tmp_path: Path, repo: Path, fake: FakeNotifyServer
) -> None:
    put(repo, file_workflow("motd", tmp_path / "motd", "hi", keep=True))
    put(repo, document("Provider", "elsewhere", type="webhook", address=f"{fake.url}/hook"))
    put(repo, document("Alert", "all", providerRefs=["elsewhere"]))
    put(repo, document("Provider", "broken", type="teams"))  # neither address nor secretRef
    commit(repo, "motd, a provider the operator did not allow, and a broken one")
    with capture_logs() as logs:
        async with running(tmp_path, repo, notify_hosts=["hooks.slack.com"]) as (_c, store):
            await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
    refused = [e for e in logs if e.get("error") == "NotificationRefused"]
    assert [e["provider"] for e in refused] == ["elsewhere"]
    assert "host 127.0.0.1 is not allowed" in refused[0]["event"]
    assert fake.slack_token not in str(logs)
    invalid = [e for e in logs if e.get("document") == "Provider/broken"]
    assert len(invalid) == 1 and "broken.yaml:" in invalid[0]["event"]
    assert fake.received == []


async def test_the_source_failing_and_recovering_is_told_once_each(
    tmp_path: Path, repo: Path, fake: FakeNotifyServer
) -> None:
    put(repo, file_workflow("motd", tmp_path / "motd", "hi", keep=True))
    put(repo, document("Provider", "hook", type="webhook", address=f"{fake.url}/hook"))
    put(
        repo,
        document(
            "Alert", "source", providerRefs=["hook"], events=["source.failing", "source.recovered"]
        ),
    )
    commit(repo, "motd, and the source's health notified")
    moved = tmp_path / "moved-away"
    async with running(tmp_path, repo, notify_hosts=["127.0.0.1"]) as (_c, store):
        await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
        await asyncio.to_thread(repo.rename, moved)  # fetching fails while it is gone
        await until_async(lambda: events(fake) == [("source.failing", None)], 20, "source.failing")
        await asyncio.to_thread(moved.rename, repo)
        await until_async(lambda: len(events(fake)) == 2, 20, "source.recovered")
    assert events(fake) == [("source.failing", None), ("source.recovered", None)]


async def test_a_run_waiting_for_approval_is_announced_with_its_question(
    tmp_path: Path, repo: Path, fake: FakeNotifyServer
) -> None:
    put(repo, gated_workflow("gate", tmp_path / "gate.txt", "x", message="Open the gate?"))
    put(repo, document("Provider", "hook", type="webhook", address=f"{fake.url}/hook"))
    put(repo, document("Alert", "asks", providerRefs=["hook"], events=["run.awaiting_approval"]))
    commit(repo, "a gated workflow, its requests notified")
    async with running(tmp_path, repo, notify_hosts=["127.0.0.1"]) as (controller, _store):
        await until_async(lambda: len(events(fake)) == 1, 20, "the awaiting-approval event")
        [request] = fake.requests_to("/hook")
        assert (request.body["event"], request.body["workflow"]) == (
            "run.awaiting_approval",
            "gate",
        )
        assert request.body["message"] == "Open the gate?"
        run_id = request.body["run"]
        assert controller.approvals.waiting() == {run_id: "ask"}
