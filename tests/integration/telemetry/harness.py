"""Shared by the telemetry integration tests: a real Controller on a real git repository.

:func:`running` starts a :class:`~reconciler.daemon.controller.Controller` on a repository in
``tmp_path`` with a SQLite store (as ``tests/integration/daemon/test_controller.py`` does);
:func:`exposition` parses what ``/metrics`` would serve from
:data:`~reconciler.telemetry.metrics.REGISTRY`.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from reconciler.daemon.controller import Controller, restrict_registry
from reconciler.daemon.settings import DaemonSettings
from reconciler.plugin import PluginRegistry
from reconciler.sources import open_source
from reconciler.store import Store, WorkflowStatusRecord
from reconciler.telemetry.metrics import REGISTRY


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.test", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def commit(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


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
    return workflow(
        name,
        {
            "write": {
                "action": {
                    "plugin": "file.write",
                    "with": {"path": str(target), "content": content},
                },
                "next": "done",
                "onError": "failed",
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
        start="write",
        observe={"plugin": "file.read", "with": {"path": str(target), "missingOk": True}},
        desired={"content": content},
    )


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


@asynccontextmanager
async def running(
    tmp_path: Path, repo: Path, **overrides: Any
) -> AsyncIterator[tuple[Controller, Store]]:
    """A controller on ``repo`` with its SQLite store, stopped gracefully on exit."""
    settings = DaemonSettings.load(
        repo=str(repo),
        data_dir=tmp_path / "data",
        poll_interval="200ms",
        grace_period="5s",
        **overrides,
    )
    store = await Store.open(settings.store, data_dir=settings.data_dir)
    source = open_source(
        str(repo), data_dir=settings.data_dir, poll_interval=settings.poll_interval.total_seconds()
    )
    registry = restrict_registry(PluginRegistry.discover(), settings.allow_plugins)
    controller = Controller(settings, store, source=source, registry=registry)
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    try:
        yield controller, store
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await registry.close()
        await store.close()


async def eventually(
    store: Store, name: str, check: Callable[[WorkflowStatusRecord], bool], *, within: float = 20
) -> WorkflowStatusRecord:
    """The status of ``name`` once ``check`` accepts it (fails after ``within`` seconds)."""
    deadline = time.monotonic() + within
    status = None
    while time.monotonic() < deadline:
        status = await store.get_status(name)
        if status is not None and check(status):
            return status
        await asyncio.sleep(0.03)
    raise AssertionError(f"status of {name} never matched: {status}")


async def until(check: Callable[[], bool], what: str, *, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.03)


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
