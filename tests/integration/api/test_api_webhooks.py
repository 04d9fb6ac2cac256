"""Push webhooks over real HTTP: correctly signed pushes of the tracked branch make the daemon
fetch at once (its poll interval is an hour, so only the hook can explain the new revision);
wrong or missing signatures get 401 and fetch nothing; replayed deliveries (same id, same body,
or a generic one signed too long ago) get 409 or 400 and fetch nothing; other branches, other
events, oversized bodies and a daemon without a secret are refused or ignored with a clear
answer."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.webhooks import MAX_BODY, TIMESTAMP_TOLERANCE, sign, sign_generic
from tests.integration.api.conftest import SECRET, Daemon, start_daemon
from tests.support.repos import commit

pytestmark = pytest.mark.timeout(60)


def github_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps({"ref": ref, "repository": {"default_branch": "main"}}).encode()


def gitlab_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {"object_kind": "push", "ref": ref, "project": {"default_branch": "main"}}
    ).encode()


def github_headers(
    body: bytes, *, secret: str = SECRET, event: str = "push", delivery: str | None = None
) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": sign(secret, body),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
    }


def gitlab_headers(
    *, token: str = SECRET, event: str = "Push Hook", delivery: str | None = None
) -> dict[str, str]:
    return {
        "X-Gitlab-Token": token,
        "X-Gitlab-Event": event,
        "Idempotency-Key": delivery or str(uuid.uuid4()),
    }


def generic_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    delivery: str | None = None,
) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    delivery = delivery or str(uuid.uuid4())
    return {
        "X-Signature-Timestamp": str(stamp),
        "X-Delivery-Id": delivery,
        "X-Signature-256": sign_generic(secret, body, timestamp=stamp, delivery=delivery),
    }


SIGNED: dict[str, Any] = {
    "github": lambda: (github_push(), github_headers(github_push())),
    "gitlab": lambda: (gitlab_push(), gitlab_headers()),
    "generic": lambda: (b'{"any": "thing"}', generic_headers(b'{"any": "thing"}')),
}
WRONG: dict[str, Any] = {
    "github": lambda: (github_push(), github_headers(github_push(), secret="guess")),
    "gitlab": lambda: (gitlab_push(), gitlab_headers(token="guess")),
    "generic": lambda: (b"{}", generic_headers(b"{}", secret="guess")),
}
UNSIGNED: dict[str, Any] = {
    "github": lambda: (github_push(), {"X-GitHub-Event": "push"}),
    "gitlab": lambda: (gitlab_push(), {"X-Gitlab-Event": "Push Hook"}),
    "generic": lambda: (
        b"{}",
        {"X-Signature-Timestamp": str(int(time.time())), "X-Delivery-Id": str(uuid.uuid4())},
    ),
}


@pytest.fixture
def refreshes(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every ``source.refresh()`` the hooks ask for, as it happens (the call goes through to
    the real source). A hook calls it before answering, so the list is final once the answer
    has arrived."""
    calls: list[str] = []
    source = daemon.controller.source
    real = source.refresh

    def counted() -> None:
        calls.append("refresh")
        real()

    monkeypatch.setattr(source, "refresh", counted)
    yield calls


async def new_commit(daemon: Daemon) -> str:
    (daemon.repo / "notes.txt").write_text("a change the daemon can only learn of by fetching\n")
    return await asyncio.to_thread(commit, daemon.repo, "pushed")


@pytest.mark.parametrize("provider", sorted(SIGNED))
async def test_signed_push_fetches_the_new_revision_at_once(daemon: Daemon, provider: str) -> None:
    fetches = daemon.controller.source.fetch_count_ok
    head = await new_commit(daemon)
    body, headers = SIGNED[provider]()
    response = await daemon.client.post(f"/hooks/{provider}", content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["triggered"] is True

    async def fetched() -> bool:
        return daemon.controller.target.revision == head

    await daemon.until(fetched, f"revision {head} picked up after the {provider} hook")
    assert daemon.controller.source.fetch_count_ok > fetches


@pytest.mark.parametrize("provider", sorted(SIGNED))
@pytest.mark.parametrize("case", ["wrong", "missing"])
async def test_bad_signature_is_401_and_fetches_nothing(
    daemon: Daemon, provider: str, case: str
) -> None:
    fetches = daemon.controller.source.fetch_count_ok
    before = daemon.controller.target.revision
    await new_commit(daemon)
    body, headers = (WRONG if case == "wrong" else UNSIGNED)[provider]()
    response = await daemon.client.post(f"/hooks/{provider}", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert SECRET not in response.text
    await asyncio.sleep(0.5)  # time passing is the test here: no fetch follows a refused hook
    assert daemon.controller.source.fetch_count_ok == fetches
    assert daemon.controller.target.revision == before


async def test_github_signature_of_another_body_is_refused(daemon: Daemon) -> None:
    body = github_push()
    headers = github_headers(github_push("refs/heads/other"))
    response = await daemon.client.post("/hooks/github", content=body, headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("provider", "body", "headers"),
    [
        ("github", github_push("refs/heads/dev"), github_headers(github_push("refs/heads/dev"))),
        ("github", github_push("refs/tags/v1"), github_headers(github_push("refs/tags/v1"))),
        ("github", b"{}", github_headers(b"{}", event="issues")),
        ("gitlab", gitlab_push("refs/heads/dev"), gitlab_headers()),
        ("gitlab", b"{}", gitlab_headers(event="Merge Request Hook")),
    ],
    ids=["github-other-branch", "github-tag", "github-issues", "gitlab-other-branch", "gitlab-mr"],
)
async def test_valid_deliveries_that_are_not_a_push_of_the_branch_trigger_nothing(
    daemon: Daemon, provider: str, body: bytes, headers: dict[str, str]
) -> None:
    fetches = daemon.controller.source.fetch_count_ok
    response = await daemon.client.post(f"/hooks/{provider}", content=body, headers=headers)
    assert response.status_code == 202
    assert response.json()["triggered"] is False
    assert response.json()["message"]
    await asyncio.sleep(0.3)  # time passing is the test here: no fetch follows
    assert daemon.controller.source.fetch_count_ok == fetches


async def test_github_ping_answers_200(daemon: Daemon) -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    response = await daemon.client.post(
        "/hooks/github", content=body, headers=github_headers(body, event="ping")
    )
    assert response.status_code == 200
    assert response.json() == {"triggered": False, "message": "pong"}


async def test_oversized_body_is_413_before_any_check(daemon: Daemon) -> None:
    body = b"x" * (MAX_BODY + 1)
    response = await daemon.client.post(
        "/hooks/generic", content=body, headers=generic_headers(body)
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_without_a_secret_hooks_are_403_saying_how_to_set_one(tmp_path: Path) -> None:
    async for daemon in start_daemon(tmp_path, secret=None):
        for provider in SIGNED:
            body, headers = SIGNED[provider]()
            response = await daemon.client.post(f"/hooks/{provider}", content=body, headers=headers)
            assert response.status_code == 403
            assert "RECONCILER_WEBHOOK_SECRET" in response.json()["error"]["message"]


@pytest.mark.parametrize("provider", sorted(SIGNED))
async def test_a_replayed_delivery_is_409_and_fetches_nothing(
    daemon: Daemon, refreshes: list[str], provider: str
) -> None:
    body, headers = SIGNED[provider]()
    first = await daemon.client.post(f"/hooks/{provider}", content=body, headers=headers)
    assert first.status_code == 202 and first.json()["triggered"] is True
    assert refreshes == ["refresh"]
    replay = await daemon.client.post(f"/hooks/{provider}", content=body, headers=headers)
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "duplicate_delivery"
    assert refreshes == ["refresh"]


@pytest.mark.parametrize(
    ("provider", "replay"),
    [
        ("github", lambda body: github_headers(body)),
        ("gitlab", lambda body: gitlab_headers()),
    ],
    ids=["github", "gitlab"],
)
async def test_a_replay_under_a_new_delivery_id_is_still_refused_by_its_body(
    daemon: Daemon, refreshes: list[str], provider: str, replay: Any
) -> None:
    """The providers' delivery ids are not signed: a replayer can change them at will."""
    body, headers = SIGNED[provider]()
    assert (
        await daemon.client.post(f"/hooks/{provider}", content=body, headers=headers)
    ).status_code == 202
    again = await daemon.client.post(f"/hooks/{provider}", content=body, headers=replay(body))
    assert again.status_code == 409
    assert refreshes == ["refresh"]


async def test_a_generic_delivery_signed_too_long_ago_is_refused(
    daemon: Daemon, refreshes: list[str]
) -> None:
    body = b'{"any": "thing"}'
    stale = int(time.time() - TIMESTAMP_TOLERANCE - 60)
    response = await daemon.client.post(
        "/hooks/generic", content=body, headers=generic_headers(body, timestamp=stale)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "stale_delivery"
    assert refreshes == []


async def test_a_generic_signature_covers_the_timestamp_and_the_delivery_id(
    daemon: Daemon, refreshes: list[str]
) -> None:
    body = b'{"any": "thing"}'
    headers = generic_headers(body)
    for forged in (
        {**headers, "X-Delivery-Id": str(uuid.uuid4())},
        {**headers, "X-Signature-Timestamp": str(int(time.time()) + 1)},
        {**headers, "X-Signature-256": sign(SECRET, body)},  # the body alone, replayable
    ):
        response = await daemon.client.post("/hooks/generic", content=body, headers=forged)
        assert response.status_code == 401, forged
    assert refreshes == []


@pytest.mark.parametrize(
    ("provider", "headers"),
    [
        ("github", {"X-GitHub-Event": "push"}),
        ("gitlab", {"X-Gitlab-Event": "Push Hook"}),
        ("generic", {}),
    ],
)
async def test_a_delivery_without_its_id_is_400_and_fetches_nothing(
    daemon: Daemon, refreshes: list[str], provider: str, headers: dict[str, str]
) -> None:
    body = github_push()
    signed = {
        "github": {"X-Hub-Signature-256": sign(SECRET, body)},
        "gitlab": {"X-Gitlab-Token": SECRET},
        "generic": {"X-Signature-256": sign(SECRET, body)},
    }[provider]
    response = await daemon.client.post(
        f"/hooks/{provider}", content=body, headers={**headers, **signed}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_delivery_id"
    assert refreshes == []


async def test_gitlab_event_uuid_serves_when_there_is_no_idempotency_key(
    daemon: Daemon, refreshes: list[str]
) -> None:
    body = gitlab_push()
    headers = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"}
    headers["X-Gitlab-Event-UUID"] = str(uuid.uuid4())
    assert (await daemon.client.post("/hooks/gitlab", content=body, headers=headers)).json()[
        "triggered"
    ] is True
    assert (
        await daemon.client.post("/hooks/gitlab", content=body, headers=headers)
    ).status_code == 409
    assert refreshes == ["refresh"]
