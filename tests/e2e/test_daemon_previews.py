"""Previews of pull and merge requests from a real daemon process, with in-process fakes of
GitHub's and GitLab's status and comment endpoints on loopback: a signed pull request webhook
for a branch that changes one workflow's inputs yields a commit status and one comment naming
the workflow and the field; a second push updates the same comment; nothing is written to the
live system; a forge answering 5xx is logged and the next preview still goes out."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.api.webhooks import sign
from tests.support.daemon import DaemonProcess, running
from tests.support.notify_server import FakeNotifyServer
from tests.support.repos import commit, git
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(120)

SECRET = "hook-secret-preview-31b7"


def api_url(daemon: DaemonProcess) -> str:
    def listening() -> str | None:
        found = re.search(r"API listening on (http://[0-9.]+:[0-9]+)", daemon.log_text())
        return found.group(1) if found else None

    return until(listening, 30, "the daemon to log its API address", interval=0.05)


def push_branch(repo: Path, branch: str, document: dict[str, Any], *, new: bool) -> str:
    """Commit ``document`` on ``branch`` (created when ``new``), then go back to main."""
    git(repo, "checkout", "-q", *(["-b", branch] if new else [branch]))
    put(repo, document)
    sha = commit(repo, f"push to {branch}")
    git(repo, "checkout", "-q", "main")
    return sha


def github_hook(url: str, action: str, sha: str, *, number: int = 7) -> httpx.Response:
    body = json.dumps(
        {
            "action": action,
            "number": number,
            "repository": {"full_name": "acme/workflows"},
            "pull_request": {
                "number": number,
                "head": {"sha": sha, "ref": "feature", "repo": {"full_name": "acme/workflows"}},
                "base": {"ref": "main"},
            },
        }
    ).encode()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }
    return httpx.post(f"{url}/hooks/github", content=body, headers=headers, timeout=10)


def gitlab_hook(url: str, sha: str, action: str = "open") -> httpx.Response:
    body = json.dumps(
        {
            "object_kind": "merge_request",
            "project": {"id": 42},
            "object_attributes": {
                "action": action,
                "iid": 3,
                "source_branch": "feature",
                "target_branch": "main",
                "source_project_id": 42,
                "last_commit": {"id": sha},
            },
        }
    ).encode()
    headers = {
        "X-Gitlab-Event": "Merge Request Hook",
        "X-Gitlab-Token": SECRET,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    return httpx.post(f"{url}/hooks/gitlab", content=body, headers=headers, timeout=10)


def final_statuses(fake: FakeNotifyServer, prefix: str, sha: str) -> list[str]:
    return [
        r.body["state"]
        for r in fake.requests_to(prefix)
        if r.path.endswith(f"/statuses/{sha}") and r.status == 201
    ]


def test_pull_and_merge_requests_get_one_status_and_one_comment_and_nothing_runs(
    tmp_path: Path, repo: Path
) -> None:
    live = tmp_path / "motd.txt"
    written_by_new = tmp_path / "new.txt"
    put(repo, file_workflow("motd", live, "hello", keep=True))
    commit(repo, "motd")
    with FakeNotifyServer() as fake:
        env = {
            "RECONCILER_LISTEN": "127.0.0.1:0",
            "RECONCILER_WEBHOOK_SECRET": SECRET,
            "RECONCILER_PREVIEW_GITHUB_TOKEN": fake.token,
            "RECONCILER_PREVIEW_GITLAB_TOKEN": fake.token,
        }
        flags = (
            "--poll-interval",
            "1h",
            "--notify-hosts",
            f"127.0.0.1:{fake.port}",
            "--preview-github-url",
            fake.url,
            "--preview-gitlab-url",
            fake.url,
        )
        log = tmp_path / "daemon.log"
        with running(repo, tmp_path / "data", *flags, cwd=tmp_path, log=log, env=env) as daemon:
            url = api_url(daemon)
            until(lambda: live.exists() and live.read_text() == "hello", 30, "motd to converge")
            runs_before = daemon.log_text().count("starting run")

            first = push_branch(
                repo, "feature", file_workflow("motd", live, "bonjour", keep=True), new=True
            )
            put_new = file_workflow("newcomer", written_by_new, "x", keep=True)
            answer = github_hook(url, "opened", first)
            assert answer.status_code == 202 and answer.json()["triggered"], answer.text

            until(
                lambda: final_statuses(fake, "/repos/", first) == ["pending", "success"],
                30,
                "the pending, then success, status of the first head",
            )
            until(lambda: fake.comments_on("github:acme/workflows#7"), 30, "the comment")
            [comment] = fake.comments_on("github:acme/workflows#7")
            assert "| motd | changed | yes |" in comment["body"]
            assert "content: hello → bonjour" in comment["body"]

            # a second push to the branch (adding a workflow): the same comment is updated
            second = push_branch(repo, "feature", put_new, new=False)
            assert github_hook(url, "synchronize", second).status_code == 202
            until(
                lambda: "newcomer" in fake.comments_on("github:acme/workflows#7")[0]["body"],
                30,
                "the comment to be updated",
            )
            [updated] = fake.comments_on("github:acme/workflows#7")
            assert updated["id"] == comment["id"] and "| newcomer | new | yes |" in updated["body"]
            assert final_statuses(fake, "/repos/", second) == ["pending", "success"]
            assert [r.method for r in fake.requests_to("/repos/acme/workflows/issues")] == [
                "GET",
                "POST",
                "GET",
                "PATCH",
            ]

            # a forge answering 500 is logged; the preview after it still goes out
            fake.script("/api/v4/projects/42/merge_requests", 500)
            assert gitlab_hook(url, second).status_code == 202
            until(lambda: "answered HTTP 500" in daemon.log_text(), 30, "the 500 to be logged")
            # (the same body again would be refused as a replay: reopened is another delivery)
            assert gitlab_hook(url, second, "reopen").status_code == 202
            until(lambda: fake.comments_on("gitlab:42!3"), 30, "the merge request note")
            assert "newcomer" in fake.comments_on("gitlab:42!3")[0]["body"]
            assert "success" in final_statuses(fake, "/api/v4/projects/42/statuses", second)

            # nothing was written to the live system and no run started
            assert live.read_text() == "hello" and not written_by_new.exists()
            assert daemon.log_text().count("starting run") == runs_before
            assert daemon.alive()
        assert fake.token not in log.read_text()


def test_a_forge_refusing_or_stalling_is_logged_and_the_daemon_carries_on(
    tmp_path: Path, repo: Path
) -> None:
    live = tmp_path / "motd.txt"
    put(repo, file_workflow("motd", live, "hello", keep=True))
    commit(repo, "motd")
    with FakeNotifyServer() as fake:
        env = {
            "RECONCILER_LISTEN": "127.0.0.1:0",
            "RECONCILER_WEBHOOK_SECRET": SECRET,
            "RECONCILER_PREVIEW_GITHUB_TOKEN": fake.token,
        }
        flags = ("--notify-hosts", f"127.0.0.1:{fake.port}", "--preview-github-url", fake.url)
        log = tmp_path / "daemon.log"
        with running(repo, tmp_path / "data", *flags, cwd=tmp_path, log=log, env=env) as daemon:
            url = api_url(daemon)
            until(lambda: live.exists(), 30, "motd to converge")
            sha = push_branch(
                repo, "feature", file_workflow("motd", live, "bonjour", keep=True), new=True
            )
            # statuses refused (401), the comment listing stalls past the client's 10 s
            fake.script("/repos/acme/workflows/statuses", 401, 401)
            fake.script("/repos/acme/workflows/issues", 200, stall=11.0)
            assert github_hook(url, "opened", sha).status_code == 202
            until(
                lambda: "did not answer within 10 s" in daemon.log_text(),
                40,
                "the stalled request to be logged",
            )
            assert "answered HTTP 401" in daemon.log_text()
            assert fake.comments_on("github:acme/workflows#7") == []
            # the next delivery goes through, and the API still answers
            assert github_hook(url, "reopened", sha).status_code == 202
            until(lambda: fake.comments_on("github:acme/workflows#7"), 30, "the comment")
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            assert live.read_text() == "hello" and daemon.alive()
        assert fake.token not in log.read_text()
