"""Which alerts an event matches, and the summary an alert's template makes of it (pure).

A summary template is plain text with ``{{ name }}`` placeholders (the names are
:data:`~reconciler.config.notifications.TEMPLATE_FIELDS`, checked when the document loads).
Nothing else is evaluated: a template comes from the repository, so it can only pick among
these fields, never reach into objects.

Called by: :class:`reconciler.notify.delivery.Notifier`, tests. Calls: nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from urllib.parse import quote

from reconciler.config.notifications import TEMPLATE_PLACEHOLDER, AlertSpec
from reconciler.notify.events import Event

MAX_SUMMARY = 3000
"""Characters of a rendered summary kept (the rest is cut with an ellipsis)."""


def matches(alert: AlertSpec, event: Event) -> bool:
    """Whether ``event`` passes ``alert``'s filters: event types, severity, workflow globs,
    labels. Source events (no workflow) pass the workflow and label filters only when the alert
    does not narrow them (every workflow, no labels)."""
    if alert.suspend:
        return False
    if alert.events and event.type not in alert.events:
        return False
    if alert.severity == "error" and event.severity != "error":
        return False
    if event.workflow is None:
        return alert.workflows == ["*"] and not alert.labels
    if not any(fnmatchcase(event.workflow, pattern) for pattern in alert.workflows):
        return False
    return all(event.labels.get(k) == v for k, v in alert.labels.items())


def workflow_url(external_url: str | None, workflow: str | None) -> str:
    """The page of ``workflow`` under the daemon's external URL (``""`` when either is unset)."""
    if not external_url:
        return ""
    base = external_url.rstrip("/")
    if workflow is None:
        return base + "/"
    return f"{base}/#{quote(workflow, safe='')}"


def fields(event: Event, *, url: str) -> dict[str, str]:
    """The values a template's placeholders take for ``event``."""
    return {
        "event": event.type.value,
        "workflow": event.workflow or "(source)",
        "revision": (event.revision or "")[:12],
        "status": event.status,
        "reason": event.reason,
        "message": event.message,
        "url": url,
        "severity": event.severity,
        "run": (event.run or "")[:8],
    }


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{{ name }}`` replaced by ``values[name]`` (unknown: empty)."""
    text = TEMPLATE_PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)
    if len(text) > MAX_SUMMARY:
        text = text[: MAX_SUMMARY - 1] + "…"
    return text
