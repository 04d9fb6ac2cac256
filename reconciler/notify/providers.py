"""What each provider type sends: the HTTP request for one message (pure), and its signature.

- ``slack``: an incoming webhook, ``POST <webhook URL>`` with ``{"text", "blocks"}``
  (mrkdwn section with a link to the workflow's page).
- ``teams``: a Microsoft Teams workflow webhook (Power Automate "post to a channel when a
  webhook request is received"), ``POST <webhook URL>`` with a ``message`` whose one attachment
  is an Adaptive Card 1.4.
- ``webhook``: ``POST <address>`` with the event as JSON; ``X-Reconciler-Timestamp`` (Unix
  seconds) and, with a ``secretRef``, ``X-Reconciler-Signature: sha256=<hex>``, the
  HMAC-SHA256 of ``<timestamp>.<body>`` under the secret: a receiver recomputes it and rejects
  a stale timestamp, so a captured request cannot be replayed later.
- ``github``: ``POST {address}/repos/{owner}/{repo}/statuses/{sha}`` (a commit status, context
  ``<context>/<workflow>``), ``Authorization: Bearer <token>``.
- ``gitlab``: ``POST {address}/api/v4/projects/{id}/statuses/{sha}``, ``PRIVATE-TOKEN``.

Commit statuses (:func:`commit_state`): ``run.started`` → ``pending`` (GitLab ``running``),
``run.succeeded`` and ``status.converged`` → ``success``, ``run.failed`` and
``status.degraded`` → ``failure`` (GitLab ``failed``). Other events, and revisions that are not
a git commit (a directory source), set no status.

Called by: :class:`reconciler.notify.delivery.Notifier`. Calls: nothing (no I/O here).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from reconciler.config.notifications import EventType, ProviderSpec, ProviderType
from reconciler.notify.events import Event

SIGNATURE_HEADER = "X-Reconciler-Signature"
TIMESTAMP_HEADER = "X-Reconciler-Timestamp"
EVENT_HEADER = "X-Reconciler-Event"
GITHUB_DESCRIPTION = 140
"""GitHub refuses a commit status description longer than this."""
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")

_COMMIT_STATES: dict[EventType, str] = {
    EventType.RUN_STARTED: "pending",
    EventType.RUN_SUCCEEDED: "success",
    EventType.CONVERGED: "success",
    EventType.RUN_FAILED: "failure",
    EventType.DEGRADED: "failure",
}
_GITLAB_STATES = {"pending": "running", "success": "success", "failure": "failed"}


@dataclass(frozen=True)
class Message:
    """One event for one provider: the event, its rendered summary, the workflow's page."""

    event: Event
    summary: str
    link: str = ""


@dataclass(frozen=True)
class Outgoing:
    """A request ready to send. ``url`` may hold a secret (a webhook URL): never log it."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def commit_state(event: EventType) -> str | None:
    """The GitHub commit status an event sets (``None``: it sets none)."""
    return _COMMIT_STATES.get(event)


def sign(secret: str, *, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def build_request(
    spec: ProviderSpec, message: Message, *, secret: str | None, timestamp: int
) -> Outgoing | None:
    """The request ``spec``'s provider sends for ``message``; ``None`` when this provider has
    nothing to say about it (a commit status for an event that sets none, or no commit).

    ``secret`` is the resolved ``secretRef`` (webhook URL, HMAC key or token).
    """
    kind = spec.type
    if kind is ProviderType.SLACK:
        return _json(_webhook_url(spec, secret), _slack(message))
    if kind is ProviderType.TEAMS:
        return _json(_webhook_url(spec, secret), _teams(message))
    if kind is ProviderType.WEBHOOK:
        return _signed_webhook(spec, message, secret=secret, timestamp=timestamp)
    return _commit_status(spec, message, token=secret or "")


def _webhook_url(spec: ProviderSpec, secret: str | None) -> str:
    url = spec.address or secret or ""
    return url.strip()


def _json(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Outgoing:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Outgoing(url, body, {"Content-Type": "application/json", **(headers or {})})


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(message: Message) -> dict[str, Any]:
    text = _slack_escape(message.summary)
    shown = text
    if message.link:
        name = _slack_escape(message.event.workflow or "reconciler")
        shown = f"{text}\n<{message.link}|{name}>"
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": shown}}],
    }


def _teams(message: Message) -> dict[str, Any]:
    event = message.event
    title = f"{event.workflow or 'source'}: {event.type.value}"
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": title,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "color": "Attention" if event.severity == "error" else "Good",
            },
            {"type": "TextBlock", "text": message.summary, "wrap": True},
        ],
    }
    if message.link:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open in reconciler", "url": message.link}
        ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def event_document(message: Message) -> dict[str, Any]:
    """The generic webhook's JSON body."""
    event = message.event
    return {
        "event": event.type.value,
        "severity": event.severity,
        "workflow": event.workflow,
        "revision": event.revision,
        "status": event.status,
        "reason": event.reason,
        "message": event.message,
        "run": event.run,
        "summary": message.summary,
        "url": message.link or None,
    }


def _signed_webhook(
    spec: ProviderSpec, message: Message, *, secret: str | None, timestamp: int
) -> Outgoing:
    out = _json(spec.address or "", event_document(message))
    stamp = str(timestamp)
    headers = {**out.headers, TIMESTAMP_HEADER: stamp, EVENT_HEADER: message.event.type.value}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp=stamp, body=out.body)
    return Outgoing(out.url, out.body, headers)


def _commit_status(spec: ProviderSpec, message: Message, *, token: str) -> Outgoing | None:
    event = message.event
    state = commit_state(event.type)
    sha = (event.revision or "").lower()
    if state is None or event.workflow is None or not COMMIT_SHA.match(sha):
        return None
    base = (spec.base_address or "").rstrip("/")
    context = f"{spec.context}/{event.workflow}"
    repository = spec.repository or ""
    if spec.type is ProviderType.GITHUB:
        payload: dict[str, Any] = {
            "state": state,
            "description": _cut(message.summary, GITHUB_DESCRIPTION),
            "context": context,
        }
        if message.link:
            payload["target_url"] = message.link
        return _json(
            f"{base}/repos/{repository}/statuses/{sha}",
            payload,
            {
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
    payload = {
        "state": _GITLAB_STATES[state],
        "name": context,
        "description": _cut(message.summary, 255),
    }
    if message.link:
        payload["target_url"] = message.link
    project = quote(repository, safe="")
    return _json(
        f"{base}/api/v4/projects/{project}/statuses/{sha}", payload, {"PRIVATE-TOKEN": token}
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
