"""``/readyz`` tells the truth about the repository.

A daemon whose repository has gone keeps reconciling its last good revision, but whatever is
pushed since is not applied: after a few poll intervals without a successful fetch it is not
ready, and says why in git's words. One failed fetch is not enough (git servers hiccup). A
daemon that never fetched says why too, with no credential of its URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.api.routes.health import SOURCE_FAILING_POLLS
from tests.integration.api.conftest import Daemon, start_daemon
from tests.support.controller import running, serving_api
from tests.support.net import free_port
from tests.support.waiting import until_async

pytestmark = pytest.mark.timeout(90)

POLL_SECONDS = 2


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


@pytest.fixture
async def polling_daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """The API tests' daemon, fetching its (file://) repository every 2 seconds."""
    async for daemon in start_daemon(tmp_path, poll_interval=f"{POLL_SECONDS}s"):
        yield daemon


async def test_readyz_is_503_with_gits_message_once_the_repository_fails_for_three_polls(
    polling_daemon: Daemon,
) -> None:
    daemon = polling_daemon
    status, body = await readiness(daemon.client)
    assert status == 200
    assert body["source"]["error"] is None
    synced = datetime.fromisoformat(body["source"]["last_success_at"])

    gone = daemon.repo.with_name("repo-moved-away")
    daemon.repo.rename(gone)
    try:
        # The first failed fetch shows in the body at once, but the daemon stays ready.
        first = await until_async(
            lambda: _failing(daemon.client), 30, "a failed fetch to show in /readyz"
        )
        # (a fetch may have succeeded since ``synced``: the daemon's own age is at most this)
        age = (datetime.fromisoformat(first["checked_at"]) - synced).total_seconds()
        if age < SOURCE_FAILING_POLLS * POLL_SECONDS - 1:
            assert first["status"] == 200, first
        assert "repo-moved-away" not in first["body"]["source"]["error"]
        assert str(daemon.repo) in first["body"]["source"]["error"]  # git names what it tried

        async def unready() -> dict[str, Any] | None:
            code, answer = await readiness(daemon.client)
            return answer if code == 503 else None

        answer = await until_async(unready, 30, "/readyz to answer 503")
        reason = answer["reason"]
        last = datetime.fromisoformat(answer["source"]["last_success_at"])
        assert last >= synced
        assert reason.startswith(
            f"the repository has not been fetched since {last.isoformat(timespec='seconds')} "
            f"(over 3 poll intervals of {POLL_SECONDS} s); changes pushed since are not applied: "
        )
        assert reason.endswith(answer["source"]["error"])
        assert answer["revision"]  # still working from the last good revision
        assert (await daemon.client.get("/healthz")).status_code == 200
    finally:
        gone.rename(daemon.repo)

    async def ready_again() -> bool:
        code, answer = await readiness(daemon.client)
        return code == 200 and answer["source"]["error"] is None

    await until_async(ready_again, 30, "/readyz to answer 200 once the repository is back")


async def _failing(client: httpx.AsyncClient) -> dict[str, Any] | None:
    sent = datetime.now().astimezone()
    status, body = await readiness(client)
    if body["source"]["error"] is None:
        return None
    return {"status": status, "body": body, "checked_at": sent.isoformat()}


@pytest.fixture
async def unreachable_daemon(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A daemon whose repository URL carries a password and points at a closed port."""
    password = "s3cret-Pa55word-never-shown"
    url = f"http://deploy-bot:{password}@127.0.0.1:{free_port()}/ops/maintenance.git"
    async with (
        running(tmp_path, url, branch="main", poll_interval="1h") as (controller, _store),
        serving_api(controller) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        yield client, password


async def test_a_daemon_that_never_fetched_says_why_without_the_urls_password(
    unreachable_daemon: tuple[httpx.AsyncClient, str],
) -> None:
    client, password = unreachable_daemon

    async def failed() -> dict[str, Any] | None:
        code, answer = await readiness(client)
        assert code == 503
        return answer if answer["source"]["error"] else None

    answer = await until_async(failed, 30, "the first fetch to fail")
    assert answer["reason"].startswith("the repository has not been loaded yet: ")
    assert answer["reason"].endswith(answer["source"]["error"])
    assert answer["source"]["last_success_at"] is None
    assert "127.0.0.1" in answer["source"]["error"]  # git's message, about this repository
    assert password not in (await client.get("/readyz")).text
    assert "deploy-bot" not in answer["source"]["error"]  # the whole user part is masked
