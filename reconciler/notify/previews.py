"""Publishing a preview on a pull request (GitHub) or merge request (GitLab).

Two things go back to the forge for each preview of a head commit:

- a **commit status** on that commit, context ``<context>/preview``: ``pending`` while the
  preview runs, then ``success``, or ``failure`` when the ref brings an error the daemon's
  revision does not have (an invalid workflow or file) or a probe failed (:attr:`~reconciler.previews.PreviewReport.failed`; a workflow that would run
  is no failure: that is what a change is for). GitLab spells them ``running``/``failed``.
- **one comment** (GitHub issue comment, GitLab merge request note) whose body starts with
  :data:`MARKER`: the publisher lists the comments, updates the one carrying the marker in
  place (``PATCH``/``PUT``) and creates it only when there is none, so later pushes to the
  branch update the same comment.

The comment (:func:`render_comment`, pure) is a Markdown table of the workflows the ref adds,
changes or removes: whether each would run, the planner's reason, and the fields that would
change (live value → proposed value). Cell text is escaped (``|``, backticks, ``<``, line
breaks) and passed through the secret redactor, so a value that is a registered secret shows
as ``***``. The request shapes follow :mod:`reconciler.notify.providers`; every URL is checked
against the operator's :class:`~reconciler.notify.policy.NotifyPolicy` (``--notify-hosts``)
before anything is sent, and a failure is one log line naming the forge, the operation and the
HTTP status, never the token.

Called by: the API's pull request webhooks (through the daemon's view). Calls: httpx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from reconciler.config.notifications import ProviderType
from reconciler.errors import DeliveryFailed, NotificationRefused
from reconciler.notify.policy import NotifyPolicy
from reconciler.notify.providers import COMMIT_SHA, GITHUB_DESCRIPTION
from reconciler.previews import PreviewReport, WorkflowPreview
from reconciler.secrets.redaction import REGISTRY

log = structlog.get_logger("reconciler.notify.previews")

MARKER = "<!-- reconciler-preview -->"
"""The hidden first line of the preview comment: how a later preview finds it to update it."""
MAX_COMMENT = 60_000
"""GitHub refuses comments over 65,536 characters; a longer table is cut with a note."""
MAX_CELL = 300
"""Longest value shown in a cell (the rest is cut with an ellipsis)."""
_GITLAB_STATES = {"pending": "running", "success": "success", "failure": "failed"}


@dataclass(frozen=True)
class PullRequest:
    """One pull or merge request to preview, as the webhook described it (pure data)."""

    forge: ProviderType
    """``github`` or ``gitlab``."""
    repository: str
    """GitHub ``owner/name``; GitLab the project id or ``group/project`` path."""
    number: int
    """GitHub pull request number; GitLab merge request iid."""
    head_sha: str
    head_ref: str
    """The source branch (fetched to find ``head_sha``)."""
    fetch_refs: tuple[str, ...] = ()
    """Refs to fetch to reach ``head_sha`` from the daemon's repository, in order (a fork's
    commits are only under ``refs/pull/N/head`` or ``refs/merge-requests/N/head``)."""


@dataclass(frozen=True)
class ForgeAccess:
    """Where and as whom the daemon talks to one forge (operator settings, never the repo)."""

    base_url: str
    token: str


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = REGISTRY.redact(text)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    for old, new in (
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("`", "\\`"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("\r", " "),
        ("\n", " "),
    ):
        text = text.replace(old, new)
    return text


def _would_run(item: WorkflowPreview) -> str:
    if not item.valid:
        return "invalid"
    if item.would_run is None:
        return "not checked"
    return "yes" if item.would_run else "no"


def _fields(item: WorkflowPreview) -> str:
    if item.problems:
        return "<br>".join(_cell(p) for p in item.problems[:5])
    if item.probe_error:
        return "probe failed: " + _cell(item.probe_error)
    return "<br>".join(
        f"{_cell(d.get('path') or '(root)')}: {_cell(d.get('observed'))} → {_cell(d.get('desired'))}"
        for d in item.diff[:20]
    )


def render_comment(report: PreviewReport, *, title: str = "reconciler preview") -> str:
    """The comment's Markdown: :data:`MARKER`, a summary line and one table row per workflow
    the ref adds, changes or removes."""
    verdict = "problems found" if report.failed else "ok"
    lines = [
        MARKER,
        f"### {_cell(title)}: {verdict}",
        "",
        f"Commit `{_cell(report.revision[:12])}` against the daemon's revision "
        f"`{_cell(report.base[:12] or '(none)')}`. Nothing was changed on any live system: "
        "only read-only probes ran.",
        "",
    ]
    changes = report.changes()
    if not changes:
        lines.append("No workflow is added, changed or removed by this commit.")
    else:
        lines += [
            "| workflow | change | would run | why | fields that will change (live → proposed) |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(w.name)} | {w.change.value} | {_would_run(w)} | {_cell(w.reason)} "
            f"| {_fields(w)} |"
            for w in changes
        ]
    if report.introduced:
        lines += ["", "**Errors this commit brings:**", ""]
        lines += [f"- {_cell(p)}" for p in report.introduced[:50]]
    if report.limited:
        lines += [
            "",
            f"Not observed (the preview's limit or timeout): {_cell(', '.join(report.limited))}",
        ]
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_COMMENT:
        text = text[:MAX_COMMENT] + "\n\n… (cut: the preview is too long for one comment)\n"
    return text


def status_state(report: PreviewReport | None) -> str:
    """``pending`` (no report yet), ``failure`` or ``success``."""
    if report is None:
        return "pending"
    return "failure" if report.failed else "success"


def status_description(report: PreviewReport | None, *, error: str = "") -> str:
    if error:
        return f"preview failed: {error}"[:GITHUB_DESCRIPTION]
    if report is None:
        return "previewing the workflows of this commit"
    changes = report.changes()
    would = sum(1 for w in changes if w.would_run)
    text = f"{len(changes)} workflows changed, {would} would run"
    if report.failed:
        text += "; invalid workflows or failing probes"
    return text[:GITHUB_DESCRIPTION]


class PreviewPublisher:
    """Sends a preview's commit status and comment to GitHub or GitLab (see the module doc).

    ``access`` gives the forge's API base URL and token (``None``: that forge is not set up,
    nothing is sent). Every call returns quietly: a refused host, a 4xx, a 5xx or a timeout is
    logged and counted in :attr:`failures`, never raised.
    """

    def __init__(
        self,
        policy: NotifyPolicy,
        access: Callable[[ProviderType], ForgeAccess | None],
        *,
        context: str = "reconciler",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.access = access
        self.context = context
        self.timeout = timeout
        self.failures = 0
        self._transport = transport

    async def status(
        self, pr: PullRequest, report: PreviewReport | None, *, error: str = ""
    ) -> None:
        """Set the commit status of ``pr``'s head commit (pending while ``report`` is None)."""
        state = "failure" if error else status_state(report)
        description = status_description(report, error=error)
        if pr.forge is ProviderType.GITHUB:
            path = f"/repos/{pr.repository}/statuses/{pr.head_sha}"
            body: dict[str, Any] = {
                "state": state,
                "description": description,
                "context": f"{self.context}/preview",
            }
        else:
            path = f"/api/v4/projects/{quote(pr.repository, safe='')}/statuses/{pr.head_sha}"
            body = {
                "state": _GITLAB_STATES[state],
                "name": f"{self.context}/preview",
                "description": description,
            }
        if COMMIT_SHA.match(pr.head_sha):
            await self._send(pr, "commit status", "POST", path, body)

    async def comment(self, pr: PullRequest, report: PreviewReport) -> None:
        """Create, or update in place, the one preview comment on ``pr``."""
        text = render_comment(report)
        if pr.forge is ProviderType.GITHUB:
            listing = f"/repos/{pr.repository}/issues/{pr.number}/comments"
            found = await self._find(pr, listing + "?per_page=100")
            if found is None:
                await self._send(pr, "comment", "POST", listing, {"body": text})
            else:
                path = f"/repos/{pr.repository}/issues/comments/{found}"
                await self._send(pr, "comment", "PATCH", path, {"body": text})
            return
        project = quote(pr.repository, safe="")
        listing = f"/api/v4/projects/{project}/merge_requests/{pr.number}/notes"
        found = await self._find(pr, listing + "?per_page=100&sort=asc")
        if found is None:
            await self._send(pr, "note", "POST", listing, {"body": text})
        else:
            await self._send(pr, "note", "PUT", f"{listing}/{found}", {"body": text})

    async def _find(self, pr: PullRequest, path: str) -> int | None:
        answer = await self._send(pr, "comment listing", "GET", path, None)
        if not isinstance(answer, list):
            return None
        for item in answer:
            if isinstance(item, dict) and str(item.get("body", "")).startswith(MARKER):
                found = item.get("id")
                return found if isinstance(found, int) else None
        return None

    async def _send(
        self, pr: PullRequest, what: str, method: str, path: str, body: dict[str, Any] | None
    ) -> Any:
        forge = pr.forge.value
        access = self.access(pr.forge)
        if access is None:
            log.info(f"preview {what} for {forge} not sent: no {forge} token is configured")
            return None
        url = access.base_url.rstrip("/") + path
        try:
            self.policy.check_url(f"preview-{forge}", url)
            headers = (
                {
                    "Accept": "application/vnd.github+json",
                    "Authorization": f"Bearer {access.token}",
                    "X-GitHub-Api-Version": "2022-11-28",
                }
                if pr.forge is ProviderType.GITHUB
                else {"PRIVATE-TOKEN": access.token}
            )
            async with httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, transport=self._transport
            ) as client:
                response = await client.request(method, url, json=body, headers=headers)
            if response.status_code >= 300:
                raise DeliveryFailed(f"{forge} answered HTTP {response.status_code}")
            return response.json() if response.content else None
        except (NotificationRefused, DeliveryFailed) as exc:
            reason = str(exc)
        except httpx.TimeoutException:
            reason = f"{forge} did not answer within {self.timeout:g} s"
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"{forge} could not be reached: {type(exc).__name__}"
        self.failures += 1
        log.warning(
            f"preview {what} for {forge} {pr.repository}#{pr.number} failed: {reason}",
            forge=forge,
        )
        return None
