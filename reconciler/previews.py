"""The result of a preview of a change: what a branch or commit would do to each workflow.

A preview loads the workflows at a git ref, compares them with a base (the daemon's current
target, or another ref for ``reconciler plan --ref``) and runs the read-only ``observe`` probes
of what is new or changed. These plain types carry the outcome between the layers that make it
(:mod:`reconciler.daemon.preview`), publish it (:mod:`reconciler.notify.previews`: commit
statuses and pull request comments) and show it (the API's ``/api/v1/previews``, the CLI's
``plan --ref``). They import nothing of reconciler, so every layer may use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Change(StrEnum):
    """How a workflow at the ref differs from the base."""

    NEW = "new"
    CHANGED = "changed"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


@dataclass
class WorkflowPreview:
    """One workflow in a preview.

    ``would_run`` is ``None`` when the workflow was not checked (unchanged in the daemon,
    invalid, or left out by the preview's limit or timeout: ``reason`` says which). ``sync`` is
    what the probe said (``Synced``, ``OutOfSync``, ``Unknown``: no probe, ``Error``), ``""``
    when it was not run. ``diff`` lists ``{"path", "desired", "observed"}`` (redacted).
    ``problems`` are ``path:line:col: message`` lines when the workflow is invalid at the ref.
    """

    name: str
    change: Change
    path: str = ""
    would_run: bool | None = None
    reason: str = ""
    sync: str = ""
    diff: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    probe_error: str = ""

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.name,
            "change": self.change.value,
            "path": self.path,
            "valid": self.valid,
            "wouldRun": self.would_run,
            "reason": self.reason,
            "sync": self.sync,
            "diff": self.diff,
            "problems": self.problems,
            "probeError": self.probe_error or None,
        }


@dataclass
class PreviewReport:
    """A whole preview: the ref asked for, the commit it resolved to, the base compared with."""

    ref: str
    revision: str
    base: str
    workflows: list[WorkflowPreview] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Every error at the ref as ``path:line:col: message`` (files that name no workflow too)."""
    introduced: list[str] = field(default_factory=list)
    """The errors of ``problems`` the base does not have: what this change breaks."""
    limited: list[str] = field(default_factory=list)
    """New or changed workflows whose probe was not run: over the limit or past the timeout."""

    @property
    def failed(self) -> bool:
        """The preview's verdict for a commit status: ``failure`` when the ref brings an error
        the base does not have (an invalid workflow or file), or a probe it ran failed. A
        workflow that would run is no failure (that is what a change is for), and neither is
        an error the base already had."""
        return bool(self.introduced) or any(w.probe_error for w in self.workflows)

    def changes(self) -> list[WorkflowPreview]:
        """The workflows that are not unchanged."""
        return [w for w in self.workflows if w.change is not Change.UNCHANGED]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "revision": self.revision,
            "base": self.base,
            "failed": self.failed,
            "workflows": [w.as_dict() for w in self.workflows],
            "problems": self.problems,
            "introduced": self.introduced,
            "limited": self.limited,
        }
