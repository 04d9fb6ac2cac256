"""Shared by the telemetry integration tests: workflows for a real Controller, and what it exposes.

The controller itself runs through :func:`tests.support.controller.running` on a repository from
:mod:`tests.support.repos`; here are the workflow documents the tests commit, and
:func:`exposition` parses what ``/metrics`` would serve from
:data:`~reconciler.telemetry.metrics.REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from reconciler.telemetry.metrics import REGISTRY
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow as keeps_file


def put(repo: Path, name: str, document: dict[str, Any]) -> None:
    (repo / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def workflow(name: str, states: dict[str, Any], *, start: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"interval": "1h", "start": start, "states": states, **spec},
    }


def file_workflow(name: str, target: Path, content: str) -> dict[str, Any]:
    """Keeps ``target`` at ``content``: observe with file.read, write with file.write."""
    return keeps_file(name, target, content, keep=True)


def failing_workflow(name: str) -> dict[str, Any]:
    """Its one action times out twice (Timeout is retryable: one retry), so every run fails."""
    return workflow(
        name,
        {
            "slow": {
                "action": {
                    "plugin": "shell.run",
                    "with": {"argv": ["sleep", "5"]},
                    "timeout": "100ms",
                },
                "retry": {"attempts": 2, "delay": "10ms", "jitter": "none"},
                "next": "done",
                "onError": "failed",
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
        start="slow",
    )


async def until(check: Callable[[], bool], what: str, *, within: float = 20) -> None:
    await until_async(check, within, what, interval=0.03)


def exposition() -> list[Sample]:
    """Every sample ``/metrics`` serves now, parsed back from the text format."""
    text = generate_latest(REGISTRY).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(name: str, **labels: str) -> float | None:
    """The value of the one sample named ``name`` whose labels include ``labels`` (None: absent)."""
    found = [
        s.value
        for s in exposition()
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def series(name: str, **labels: str) -> list[dict[str, str]]:
    """Label sets of the samples named ``name`` whose labels include ``labels``."""
    return [
        s.labels
        for s in exposition()
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
