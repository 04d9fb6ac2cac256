"""Which pull/merge request deliveries start a preview, and what is taken from them."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.api.pulls import github_pull_request, gitlab_merge_request
from reconciler.config.notifications import ProviderType
from reconciler.notify.previews import PullRequest

SHA = "0123456789abcdef0123456789abcdef01234567"


def github(action: str, **over: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "number": 7,
        "repository": {"full_name": "acme/workflows"},
        "pull_request": {
            "number": 7,
            "head": {"sha": SHA, "ref": "feature", "repo": {"full_name": "acme/workflows"}},
            "base": {"ref": "main"},
        },
    }
    payload.update(over)
    return payload


def gitlab(action: str, **attrs: Any) -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "project": {"id": 42, "path_with_namespace": "acme/workflows"},
        "object_attributes": {
            "action": action,
            "iid": 3,
            "source_branch": "feature",
            "target_branch": "main",
            "source_project_id": 42,
            "target_project_id": 42,
            "last_commit": {"id": SHA},
            **attrs,
        },
    }


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
def test_github_actions_that_change_the_head_start_a_preview(action: str) -> None:
    found = github_pull_request(github(action), tracked="main")
    assert found == PullRequest(
        forge=ProviderType.GITHUB,
        repository="acme/workflows",
        number=7,
        head_sha=SHA,
        head_ref="feature",
        fetch_refs=("feature", "refs/pull/7/head"),
    )


@pytest.mark.parametrize("action", ["closed", "edited", "labeled", "assigned", None])
def test_other_github_actions_are_ignored_with_a_reason(action: str | None) -> None:
    assert isinstance(github_pull_request(github(str(action)), tracked="main"), str)


def test_github_fork_is_fetched_through_the_pull_ref_only() -> None:
    payload = github("opened")
    payload["pull_request"]["head"]["repo"] = {"full_name": "mallory/workflows"}
    found = github_pull_request(payload, tracked="main")
    assert isinstance(found, PullRequest) and found.fetch_refs == ("refs/pull/7/head",)


def test_pull_request_into_another_branch_is_ignored() -> None:
    payload = github("opened")
    payload["pull_request"]["base"]["ref"] = "release"
    assert "not the tracked branch" in str(github_pull_request(payload, tracked="main"))


def test_hostile_head_values_are_refused_or_dropped() -> None:
    payload = github("opened")
    payload["pull_request"]["head"]["sha"] = "--upload-pack=touch /tmp/x"
    assert isinstance(github_pull_request(payload, tracked="main"), str)
    payload = github("opened")
    payload["pull_request"]["head"]["ref"] = "--output=/etc/passwd"
    found = github_pull_request(payload, tracked="main")
    assert isinstance(found, PullRequest) and found.fetch_refs == ("refs/pull/7/head",)


@pytest.mark.parametrize("action", ["open", "reopen"])
def test_gitlab_open_and_reopen_start_a_preview(action: str) -> None:
    found = gitlab_merge_request(gitlab(action), tracked="main")
    assert isinstance(found, PullRequest)
    assert (found.forge, found.repository, found.number, found.head_sha) == (
        ProviderType.GITLAB,
        "42",
        3,
        SHA,
    )
    assert found.fetch_refs == ("feature", "refs/merge-requests/3/head")


def test_gitlab_update_starts_a_preview_only_with_new_commits() -> None:
    assert isinstance(
        gitlab_merge_request(gitlab("update", oldrev="f" * 40), tracked=None), PullRequest
    )
    assert "without new commits" in str(gitlab_merge_request(gitlab("update"), tracked=None))


@pytest.mark.parametrize("action", ["close", "merge", "approved", "unapproved"])
def test_other_gitlab_actions_are_ignored(action: str) -> None:
    assert isinstance(gitlab_merge_request(gitlab(action), tracked="main"), str)
