"""``POST /api/v1/previews`` on a real daemon over real HTTP: a branch of its repository that
changes one workflow's inputs and adds another is previewed against the live files, and nothing
is written — no file, no run, no status; a ref that does not exist is a 404; a read token may
not ask for a preview."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.api.tokens import hash_token
from tests.integration.api.conftest import Daemon, motd, start_daemon, write_repo
from tests.support.repos import commit, git, init_repo
from tests.support.workflows import file_workflow

pytestmark = pytest.mark.timeout(90)

READER, OPERATOR = "r3ader-preview-5b1f", "0perator-preview-77aa"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    repo = init_repo(tmp_path / "repo")
    write_repo(repo, tmp_path / "motd.txt")
    commit(repo, "main")
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            [
                {"name": "dashboard", "sha256": hash_token(READER), "role": "read"},
                {"name": "alice", "sha256": hash_token(OPERATOR), "role": "operate"},
            ]
        )
    )
    async for d in start_daemon(tmp_path, api_tokens_file=tokens):
        await d.until_status("motd", "Converged")
        yield d


def branch(daemon: Daemon, name: str, documents: list[dict[str, Any]]) -> str:
    """Commit ``documents`` on a new branch ``name`` of the daemon's repository, back to main."""
    git(daemon.repo, "checkout", "-q", "-b", name)
    for doc in documents:
        (daemon.repo / f"{doc['metadata']['name']}.yaml").write_text(yaml.safe_dump(doc))
    sha = commit(daemon.repo, f"on {name}")
    git(daemon.repo, "checkout", "-q", "main")
    return sha


async def snapshot_of_store(daemon: Daemon) -> tuple[list[Any], list[Any]]:
    """The status rows and the runs, once the daemon has flushed every status it holds."""

    async def flushed() -> bool:
        stored = [s.model_dump() for s in await daemon.store.list_statuses()]
        held = [s.model_dump() for s in await daemon.controller.statuses.load()]
        return len(stored) == 3 and stored == held

    await daemon.until(flushed, "the daemon's statuses in the store")
    statuses = [s.model_dump() for s in await daemon.store.list_statuses()]
    runs = (await daemon.client.get("/api/v1/runs", headers=daemon.auth(OPERATOR))).json()
    return statuses, runs["runs"]


async def test_preview_of_a_branch_shows_the_change_and_writes_nothing(
    daemon: Daemon, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.txt"
    sha = branch(
        daemon,
        "feature",
        [motd(daemon.out, "bonjour"), file_workflow("extra", extra, "new", keep=True)],
    )
    before = await snapshot_of_store(daemon)

    response = await daemon.client.post(
        "/api/v1/previews", json={"ref": "feature"}, headers=daemon.auth(OPERATOR)
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"] == sha and body["base"] == daemon.controller.target.revision
    by_name = {w["workflow"]: w for w in body["workflows"]}
    motd_preview = by_name["motd"]
    assert (motd_preview["change"], motd_preview["wouldRun"], motd_preview["sync"]) == (
        "changed",
        True,
        "OutOfSync",
    )
    assert {"path": "content", "desired": "bonjour", "observed": "hello"} in motd_preview["diff"]
    assert by_name["extra"]["change"] == "new" and by_name["extra"]["wouldRun"] is True
    assert by_name["slow"]["change"] == "unchanged" and by_name["slow"]["wouldRun"] is None
    assert not body["failed"], "broken was invalid before: no error is brought by this branch"
    # nothing written to the live system, nor to the daemon's history
    assert daemon.out.read_text() == "hello"
    assert not extra.exists()
    assert await snapshot_of_store(daemon) == before
    assert daemon.controller.target.revision != sha


async def test_a_branch_that_breaks_a_workflow_fails_with_path_line_col(daemon: Daemon) -> None:
    git(daemon.repo, "checkout", "-q", "-b", "broken-motd")
    (daemon.repo / "motd.yaml").write_text("apiVersion: reconciler/v1\nkind: Workflow\nspec: [\n")
    commit(daemon.repo, "break motd")
    git(daemon.repo, "checkout", "-q", "main")

    response = await daemon.client.post(
        "/api/v1/previews", json={"ref": "broken-motd"}, headers=daemon.auth(OPERATOR)
    )

    body = response.json()
    assert response.status_code == 200 and body["failed"]
    assert any(p.startswith("motd.yaml:") for p in body["introduced"])
    motd_preview = next(w for w in body["workflows"] if w["workflow"] == "motd")
    assert motd_preview["valid"] is False and motd_preview["change"] == "changed"


async def test_a_ref_that_does_not_exist_is_404(daemon: Daemon) -> None:
    response = await daemon.client.post(
        "/api/v1/previews", json={"ref": "no-such-branch"}, headers=daemon.auth(OPERATOR)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ref_not_found"


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/pwned", "main..feature", "HEAD@{1}"])
async def test_a_ref_that_is_not_a_plain_name_is_refused(daemon: Daemon, ref: str) -> None:
    response = await daemon.client.post(
        "/api/v1/previews", json={"ref": ref}, headers=daemon.auth(OPERATOR)
    )
    assert response.status_code == 404, response.text


async def test_a_preview_needs_role_operate(daemon: Daemon) -> None:
    read = await daemon.client.post(
        "/api/v1/previews", json={"ref": "main"}, headers=daemon.auth(READER)
    )
    assert read.status_code == 403 and "operate" in read.json()["error"]["message"]
    anonymous = await daemon.client.post("/api/v1/previews", json={"ref": "main"})
    assert anonymous.status_code == 401
    ok = await daemon.client.post(
        "/api/v1/previews", json={"ref": "main"}, headers=daemon.auth(OPERATOR)
    )
    assert ok.status_code == 200
    assert all(w["change"] == "unchanged" for w in ok.json()["workflows"])
