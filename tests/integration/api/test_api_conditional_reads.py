"""The workflow list and a workflow's detail answer with an ``ETag`` and ``304 Not Modified``
when the request's ``If-None-Match`` names it, and a new tag once something changed."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import Daemon

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("path", ["/api/v1/workflows", "/api/v1/workflows/motd"])
async def test_an_unchanged_read_is_304_without_a_body_and_a_change_gives_a_new_tag(
    daemon: Daemon, path: str
) -> None:
    before = await daemon.until_status("motd", "Converged")
    first = await daemon.client.get(path)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"') and tag.endswith('"')
    assert first.headers["cache-control"] == "no-cache"

    again = await daemon.client.get(path, headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    weak = await daemon.client.get(path, headers={"If-None-Match": f'"other", W/{tag}'})
    assert weak.status_code == 304
    other = await daemon.client.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json() == first.json()

    synced = await daemon.client.post("/api/v1/workflows/motd/sync", headers=daemon.auth())
    assert synced.status_code == 202

    async def new_run() -> bool:
        now = await daemon.workflow("motd")
        return now["last_run_id"] != before["last_run_id"] and now["status"] == "Converged"

    await daemon.until(new_run, "a manual run of motd")
    changed = await daemon.client.get(path, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag
    field = "workflows" if path.endswith("workflows") else "last_run_id"
    assert changed.json()[field] != first.json()[field]
