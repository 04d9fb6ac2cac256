"""Each provider against a fake of its endpoint on loopback, through the real httpx client:
what arrives, and how bad answers (4xx, 5xx, 429 with Retry-After, timeouts) are handled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.config.notifications import Alert, EventType, Provider
from reconciler.notify import Notifier, NotifyPolicy, RetryPolicy
from reconciler.notify.events import Event
from reconciler.notify.providers import Message
from reconciler.secrets.resolver import DefaultResolver
from reconciler.status import Health, WorkflowStatusRecord
from reconciler.telemetry.metrics import NOTIFICATIONS
from tests.support.notify_server import FakeNotifyServer
from tests.support.waiting import until_async

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def server() -> Iterator[FakeNotifyServer]:
    with FakeNotifyServer() as fake:
        yield fake


def provider(name: str, **spec: Any) -> Provider:
    return Provider.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Provider",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def alert(name: str, refs: list[str], **spec: Any) -> Alert:
    return Alert.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Alert",
            "metadata": {"name": name},
            "spec": {"providerRefs": refs, **spec},
        }
    )


def notifier(server: FakeNotifyServer, **kw: Any) -> Notifier:
    environ = {
        "RECONCILER_SECRET_SLACK": f"{server.url}/slack/{server.slack_token}",
        "RECONCILER_SECRET_TOKEN": server.token,
        "RECONCILER_SECRET_HMAC": server.hmac_key,
    }
    return Notifier(
        NotifyPolicy.of(["127.0.0.1:*"], None),
        secrets=DefaultResolver(environ=environ),
        external_url="https://reconciler.example.com",
        retry=kw.pop("retry", RetryPolicy(attempts=3, base=0.05)),
        **kw,
    )


def failed(workflow: str = "app", revision: str = SHA) -> Message:
    return Message(
        Event(EventType.RUN_FAILED, workflow, revision, status="Degraded"),
        "app failed",
        "https://r/#app",
    )


def count(name: str, outcome: str) -> float:
    return NOTIFICATIONS.labels(provider=name, outcome=outcome)._value.get()


async def test_slack_webhook_url_from_a_secret_receives_the_message(
    server: FakeNotifyServer,
) -> None:
    chat = provider("int-slack", type="slack", secretRef="env:RECONCILER_SECRET_SLACK")
    assert await notifier(server).deliver("int-slack", chat, failed()) == "sent"
    [got] = server.requests_to("/slack/")
    assert got.status == 200 and got.body["text"] == "app failed"


async def test_slack_unknown_webhook_is_a_failure_without_retries(
    server: FakeNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = provider("int-slack-404", type="slack", address=f"{server.url}/slack/wrong")
    before = count("int-slack-404", "failed")
    assert await notifier(server).deliver("int-slack-404", chat, failed()) == "failed"
    assert len(server.requests_to("/slack/")) == 1  # a 404 is not retried
    assert count("int-slack-404", "failed") == before + 1


async def test_teams_workflow_webhook_accepts_the_adaptive_card(server: FakeNotifyServer) -> None:
    teams = provider("int-teams", type="teams", address=f"{server.url}/teams/abc")
    assert await notifier(server).deliver("int-teams", teams, failed()) == "sent"
    [got] = server.requests_to("/teams/")
    assert got.status == 202


async def test_generic_webhook_is_signed_so_the_receiver_accepts_it(
    server: FakeNotifyServer,
) -> None:
    hook = provider(
        "int-hook",
        type="webhook",
        address=f"{server.url}/hook",
        secretRef="env:RECONCILER_SECRET_HMAC",
    )
    assert await notifier(server).deliver("int-hook", hook, failed()) == "sent"
    [got] = server.requests_to("/hook")
    assert got.status == 204 and got.body["event"] == "run.failed"


async def test_generic_webhook_signed_with_the_wrong_key_is_refused_by_the_receiver(
    server: FakeNotifyServer,
) -> None:
    sink = notifier(server)
    server.hmac_key = "another-key"  # the receiver expects another key than the daemon's
    hook = provider(
        "int-hook-bad",
        type="webhook",
        address=f"{server.url}/hook",
        secretRef="env:RECONCILER_SECRET_HMAC",
    )
    assert await sink.deliver("int-hook-bad", hook, failed()) == "failed"
    assert [r.status for r in server.requests_to("/hook")] == [401]


async def test_github_commit_status_on_the_revision_with_enterprise_base(
    server: FakeNotifyServer,
) -> None:
    gh = provider(
        "int-github",
        type="github",
        repository="acme/infra",
        secretRef="env:RECONCILER_SECRET_TOKEN",
        address=f"{server.url}/api/v3",
    )
    assert await notifier(server).deliver("int-github", gh, failed()) == "sent"
    [got] = server.requests_to("/api/v3/repos/")
    assert got.path == f"/api/v3/repos/acme/infra/statuses/{SHA}"
    assert (
        got.status == 201
        and got.body["state"] == "failure"
        and got.body["context"] == "reconciler/app"
    )


async def test_gitlab_commit_status_with_its_private_token(server: FakeNotifyServer) -> None:
    gl = provider(
        "int-gitlab",
        type="gitlab",
        repository="group/project",
        secretRef="env:RECONCILER_SECRET_TOKEN",
        address=server.url,
    )
    assert await notifier(server).deliver("int-gitlab", gl, failed()) == "sent"
    [got] = server.requests_to("/api/v4/")
    assert got.path == f"/api/v4/projects/group%2Fproject/statuses/{SHA}"
    assert got.status == 201 and got.body["state"] == "failed"


async def test_server_errors_are_retried_with_back_off_then_succeed(
    server: FakeNotifyServer,
) -> None:
    server.script("/teams/", 502, 503)
    teams = provider("int-teams-5xx", type="teams", address=f"{server.url}/teams/abc")
    assert await notifier(server).deliver("int-teams-5xx", teams, failed()) == "sent"
    assert [r.status for r in server.requests_to("/teams/")] == [502, 503, 202]


async def test_429_honours_retry_after(server: FakeNotifyServer) -> None:
    server.script("/teams/", 429, retry_after="1")
    teams = provider("int-teams-429", type="teams", address=f"{server.url}/teams/abc")
    loop = asyncio.get_running_loop()
    started = loop.time()
    # back-off alone would wait 0.05 s: the server asked for a second
    assert await notifier(server).deliver("int-teams-429", teams, failed()) == "sent"
    assert loop.time() - started >= 0.9
    assert [r.status for r in server.requests_to("/teams/")] == [429, 202]


async def test_a_client_error_is_not_retried_and_the_log_names_provider_and_status_not_the_url(
    server: FakeNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script("/slack/", 403)
    chat = provider("int-slack-403", type="slack", secretRef="env:RECONCILER_SECRET_SLACK")
    assert await notifier(server).deliver("int-slack-403", chat, failed()) == "failed"
    assert len(server.requests_to("/slack/")) == 1
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "int-slack-403" in text and "HTTP 403" in text
    assert server.slack_token not in text


async def test_timeouts_are_retried_and_then_reported(server: FakeNotifyServer) -> None:
    server.script("/teams/", 200, 200, 200, stall=1.0)
    teams = provider(
        "int-teams-slow", type="teams", address=f"{server.url}/teams/abc", timeout="200ms"
    )
    assert await notifier(server).deliver("int-teams-slow", teams, failed()) == "failed"
    assert len(server.requests_to("/teams/")) == 3  # every attempt timed out


async def test_a_host_the_operator_did_not_list_gets_nothing(server: FakeNotifyServer) -> None:
    # the secret points the Slack provider elsewhere: checked after resolution
    chat = provider("int-slack-refused", type="slack", secretRef="env:RECONCILER_SECRET_SLACK")
    strict = Notifier(
        NotifyPolicy.of(["hooks.slack.com"], None),
        secrets=DefaultResolver(environ={"RECONCILER_SECRET_SLACK": f"{server.url}/slack/x"}),
    )
    assert await strict.deliver("int-slack-refused", chat, failed()) == "refused"
    assert server.received == []


async def test_repeats_are_sent_once_and_the_rate_limit_holds(server: FakeNotifyServer) -> None:
    name = "int-flood"
    hook = provider(
        name,
        type="webhook",
        address=f"{server.url}/hook",
        secretRef="env:RECONCILER_SECRET_HMAC",
        rateLimit={"burst": 2, "perMinute": 1},
    )
    sink = notifier(server)
    sink.configure({name: hook}, {"all": alert("all", [name])})
    sink.start()
    try:
        before = {o: count(name, o) for o in ("sent", "deduplicated", "rate_limited")}
        for _ in range(3):  # the same failure at the same commit, retried three times
            sink.emit(Event(EventType.RUN_FAILED, "app", SHA))
        sink.emit(Event(EventType.RUN_SUCCEEDED, "app", SHA))
        sink.emit(Event(EventType.RUN_FAILED, "app", SHA))
        await until_async(lambda: count(name, "sent") == before["sent"] + 2, 10, "the deliveries")
    finally:
        await sink.close()
    assert count(name, "deduplicated") == before["deduplicated"] + 2
    assert count(name, "rate_limited") == before["rate_limited"] + 1
    assert [json.loads(r.raw)["event"] for r in server.requests_to("/hook")] == [
        "run.failed",
        "run.succeeded",
    ]


async def test_status_changes_become_events_for_the_matching_alert(
    server: FakeNotifyServer,
) -> None:
    name = "int-status"
    hook = provider(
        name, type="webhook", address=f"{server.url}/hook", secretRef="env:RECONCILER_SECRET_HMAC"
    )
    sink = notifier(server)
    sink.configure(
        {name: hook}, {"pay": alert("pay", [name], labels={"team": "pay"}, events=["run.failed"])}
    )
    sink.start()
    try:
        running = WorkflowStatusRecord(
            name="app", status=Health.PROGRESSING, last_run_id="r1", last_attempted_revision=SHA
        )
        done = running.model_copy(update={"status": Health.DEGRADED, "reason": "RunFailed"})
        sink.status_stored(running, done, labels={"team": "other"})
        sink.status_stored(running, done, labels={"team": "pay"})
        await until_async(lambda: len(server.requests_to("/hook")) == 1, 10, "the deliveries")
    finally:
        await sink.close()
    [got] = server.requests_to("/hook")
    assert (
        got.body["workflow"] == "app" and got.body["url"] == "https://reconciler.example.com/#app"
    )


async def test_a_full_queue_drops_the_oldest_and_counts_it(server: FakeNotifyServer) -> None:
    name = "int-full"
    hook = provider(
        name,
        type="webhook",
        address=f"{server.url}/hook",
        secretRef="env:RECONCILER_SECRET_HMAC",
        rateLimit={"burst": 100},
    )
    sink = notifier(server, queue_size=2)
    sink.configure({name: hook}, {"all": alert("all", [name])})
    before = count(name, "dropped")
    for i in range(3):  # no worker yet: the queue fills
        sink.emit(Event(EventType.RUN_FAILED, f"w{i}", SHA))
    assert count(name, "dropped") == before + 1
    sink.start()
    try:
        await until_async(lambda: len(server.requests_to("/hook")) == 2, 10, "the deliveries")
    finally:
        await sink.close()
    # two workers deliver side by side: the order between them is not kept
    assert sorted(r.body["workflow"] for r in server.requests_to("/hook")) == ["w1", "w2"]


async def test_commit_status_providers_skip_events_without_a_commit_status_or_a_commit(
    server: FakeNotifyServer,
) -> None:
    name = "int-github-skips"
    gh = provider(
        name,
        type="github",
        repository="acme/infra",
        secretRef="env:RECONCILER_SECRET_TOKEN",
        address=f"{server.url}/api/v3",
        rateLimit={"burst": 1},
    )
    sink = notifier(server)
    sink.configure({name: gh}, {"all": alert("all", [name])})
    sink.start()
    try:
        sink.emit(Event(EventType.DRIFT_DETECTED, "app", SHA))  # no commit state for it
        sink.emit(Event(EventType.RUN_FAILED, "app", "dir-0123abcd"))  # a directory: no commit
        sink.emit(Event(EventType.RUN_FAILED, "app", SHA))  # the one token is still there
        await until_async(lambda: server.requests_to("/api/v3/"), 10, "the commit status")
    finally:
        await sink.close()
    [got] = server.requests_to("/api/v3/")
    assert got.body["state"] == "failure"
    assert count(name, "rate_limited") == 0
