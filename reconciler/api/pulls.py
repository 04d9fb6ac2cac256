"""Reading pull request (GitHub) and merge request (GitLab) webhook payloads (pure).

Only what a preview needs is taken from the payload: the repository, the request's number,
the head commit and branch, and the target branch. Which deliveries start a preview:

- GitHub ``pull_request`` with ``action`` ``opened``, ``synchronize`` (new commits) or
  ``reopened``; every other action (``edited``, ``closed``, ``labeled``...) is ignored.
- GitLab ``Merge Request Hook`` with ``object_attributes.action`` ``open``, ``reopen``, or
  ``update`` when it carries ``oldrev`` (GitLab's sign that commits were pushed; an update of
  the title or labels alone is ignored).
- In both, only requests into the branch the daemon follows (when it is known): a preview
  compares with that branch's target, which says nothing about a request into another branch.

The payload is untrusted even when signed (anyone who can open a pull request chooses its
branch name): the head commit must be a full hexadecimal id and the names are checked before
they reach git (:func:`reconciler.sources.git.check_ref` checks them again).

Called by: :mod:`reconciler.api.webhooks`. Calls: nothing.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.config.notifications import ProviderType
from reconciler.notify.previews import PullRequest

GITHUB_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
GITLAB_ACTIONS = frozenset({"open", "reopen", "update"})
_SHA = re.compile(r"^[0-9a-f]{40}$")
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/@+-]{1,200}$")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _branch(value: Any) -> str | None:
    return value if isinstance(value, str) and _BRANCH.match(value) else None


def github_pull_request(payload: dict[str, Any], *, tracked: str | None) -> PullRequest | str:
    """The pull request to preview, or why the delivery starts none."""
    action = payload.get("action")
    if action not in GITHUB_ACTIONS:
        return f"pull_request action {action!r} does not change the head commit"
    pull = _dict(payload.get("pull_request"))
    head, base = _dict(pull.get("head")), _dict(pull.get("base"))
    number = payload.get("number", pull.get("number"))
    repository = _dict(payload.get("repository")).get("full_name")
    sha = head.get("sha")
    if not (isinstance(number, int) and isinstance(repository, str) and isinstance(sha, str)):
        return "the pull_request event lacks number, repository.full_name or head.sha"
    if not _SHA.match(sha):
        return "the pull request's head.sha is not a commit id"
    target = base.get("ref")
    if tracked and target != tracked:
        return f"pull request into {target!r}, not the tracked branch {tracked}"
    branch = _branch(head.get("ref"))
    same_repo = _dict(head.get("repo")).get("full_name") == repository
    refs = [f"refs/pull/{number}/head"]
    if branch and same_repo:
        refs.insert(0, branch)
    return PullRequest(
        forge=ProviderType.GITHUB,
        repository=repository,
        number=number,
        head_sha=sha,
        head_ref=branch or "",
        fetch_refs=tuple(refs),
    )


def gitlab_merge_request(payload: dict[str, Any], *, tracked: str | None) -> PullRequest | str:
    """The merge request to preview, or why the delivery starts none."""
    attrs = _dict(payload.get("object_attributes"))
    action = attrs.get("action")
    if action not in GITLAB_ACTIONS:
        return f"merge request action {action!r} does not change the head commit"
    if action == "update" and not attrs.get("oldrev"):
        return "merge request update without new commits"
    project = _dict(payload.get("project"))
    project_id = project.get("id", attrs.get("target_project_id"))
    iid = attrs.get("iid")
    sha = _dict(attrs.get("last_commit")).get("id")
    if not (isinstance(project_id, int) and isinstance(iid, int) and isinstance(sha, str)):
        return "the merge request event lacks project.id, iid or last_commit.id"
    if not _SHA.match(sha):
        return "the merge request's last_commit.id is not a commit id"
    target = attrs.get("target_branch")
    if tracked and target != tracked:
        return f"merge request into {target!r}, not the tracked branch {tracked}"
    branch = _branch(attrs.get("source_branch"))
    refs = [f"refs/merge-requests/{iid}/head"]
    if branch and attrs.get("source_project_id", project_id) == project_id:
        refs.insert(0, branch)
    return PullRequest(
        forge=ProviderType.GITLAB,
        repository=str(project_id),
        number=iid,
        head_sha=sha,
        head_ref=branch or "",
        fetch_refs=tuple(refs),
    )
