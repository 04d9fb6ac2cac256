"""Push webhooks over real HTTP: correctly signed pushes of the tracked branch make the daemon
fetch at once (its poll interval is an hour, so only the hook can explain the new revision);
wrong or missing signatures get 401 and fetch nothing; other branches, other events, oversized
bodies and a daemon without a secret are refused or ignored with a clear answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.webhooks import MAX_BODY, sign
from tests.integration.api.conftest import SECRET, Daemon, start_daemon
from tests.support.repos import commit

pytestmark = pytest.mark.timeout(60)


def github_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps({"ref": ref, "repository": {"default_branch": "main"}}).encode()


def gitlab_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {"object_kind": "push", "ref": ref, "project": {"default_branch": "main"}}
    ).encode()


def github_headers(body: bytes, *, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    return {
        "X-Hub-Signature-256": sign(secret, body),
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


def gitlab_headers(*, token: str = SECRET, event: str = "Push Hook") -> dict[str, str]:
    return {"X-Gitlab-Token": token, "X-Gitlab-Event": event}


def generic_headers(body: bytes, *, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signature-256": sign(secret, body)}


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
    "generic": lambda: (b"{}", {}),
}


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
    await asyncio.sleep(0.5)
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
    await asyncio.sleep(0.3)
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
