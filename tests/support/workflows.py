"""Workflow documents for tests: the workflow that writes one file, built in one place.

:func:`gated_workflow` is the same workflow behind an approval gate.

Most tests of the daemon, its API, the CLI and the sources need *some* workflow whose effect shows
on disk; :func:`file_workflow` is that workflow (one ``file.write`` action, ``inputs.path`` and
``inputs.content``), and :func:`file_workflow_yaml` its text. With ``keep=True`` it also observes
the file (``file.read``) and desires its content, so it converges once the file holds the
content and runs again only when it drifts; without, it runs once per change of its spec.
:func:`put` writes a document into a repository (commit it with :mod:`tests.support.repos`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def file_workflow(
    name: str,
    path: Path | str,
    content: str,
    *,
    keep: bool = False,
    interval: str | None = "1h",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A workflow ``name`` writing ``content`` to ``path``; ``keep``: and keeping it there.

    ``interval`` ``None`` leaves the field out (the workflow's default).
    """
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    spec: dict[str, Any] = {} if interval is None else {"interval": interval}
    spec["inputs"] = {"path": str(path), "content": content}
    if keep:
        spec["observe"] = {
            "plugin": "file.read",
            "with": {"path": "${{ inputs.path }}", "missingOk": True},
        }
        spec["desired"] = {"content": content}
    spec["start"] = "write"
    spec["states"] = {
        "write": {
            "action": {
                "plugin": "file.write",
                "with": {"path": "${{ inputs.path }}", "content": "${{ inputs.content }}"},
            },
            "next": "done",
            "onError": "failed",
        },
        "done": {"end": "success"},
        "failed": {"end": "failure"},
    }
    return {"apiVersion": "reconciler/v1", "kind": "Workflow", "metadata": metadata, "spec": spec}


def gated_workflow(
    name: str,
    path: Path | str,
    content: str,
    *,
    message: str = "Write ${{ inputs.content }} to ${{ inputs.path }}?",
    approvers: tuple[str, ...] = (),
    separate_requester: bool = False,
    wait: str = "1h",
    interval: str | None = "1h",
) -> dict[str, Any]:
    """:func:`file_workflow` behind an approval gate: state ``ask`` waits for an approval
    (``approvers``/``separate_requester`` as given) for at most ``wait``, then writes the file;
    a rejection ends in ``rejected``, a wait that runs out in ``expired`` (both failures)."""
    document = file_workflow(name, path, content, interval=interval)
    spec = document["spec"]
    approval: dict[str, Any] = {"message": message}
    if approvers:
        approval["approvers"] = list(approvers)
    if separate_requester:
        approval["separateRequester"] = True
    spec["start"] = "ask"
    spec["states"] = {
        "ask": {
            "transitions": [
                {"to": "write", "approval": approval},
                {"to": "expired", "after": wait},
                {"to": "rejected", "on": "ApprovalRejected"},
            ]
        },
        **spec["states"],
        "rejected": {"end": "failure"},
        "expired": {"end": "failure"},
    }
    return document


def to_yaml(document: Mapping[str, Any]) -> str:
    """A workflow document as the YAML text of a workflow file (keys in the order given)."""
    return yaml.safe_dump(dict(document), sort_keys=False)


def file_workflow_yaml(name: str, path: Path | str, content: str, **options: Any) -> str:
    """:func:`file_workflow` (with the same ``options``) as the text of a workflow file."""
    return to_yaml(file_workflow(name, path, content, **options))


def put(directory: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` to ``directory / "<its name>.yaml"`` and return that path."""
    target = directory / f"{document['metadata']['name']}.yaml"
    target.write_text(to_yaml(document))
    return target
