"""What a revision queues, and in which order: on a real git repository and a real SQLite store.

Every workflow is re-checked at each revision, but the ones the commit changed go first — ahead
of re-checks still waiting from an earlier revision — and a worker may take them before the rest
is queued. The controller is built as ``reconciler run`` builds it, without starting its workers:
the tests call the source's callback themselves and take the work out of the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.daemon import revision as revision_module
from reconciler.daemon.controller import Controller
from reconciler.daemon.queue import Reason, WorkItem
from reconciler.daemon.settings import DaemonSettings
from reconciler.plugin import PluginRegistry
from reconciler.sources import Revision, open_source
from reconciler.store import Store
from tests.support.repos import commit
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(60)

NAMES = ["a", "b", "c", "d", "e"]


@pytest.fixture
async def controller(tmp_path: Path, repo: Path) -> AsyncIterator[Controller]:
    settings = DaemonSettings.load(repo=str(repo), data_dir=tmp_path / "data", workdir=tmp_path)
    store = await Store.open(settings.store, data_dir=settings.data_dir)
    source = open_source(str(repo), data_dir=settings.data_dir, poll_interval=3600)
    registry = PluginRegistry.discover()
    try:
        yield Controller(settings, store, source=source, registry=registry)
    finally:
        await registry.close()
        await store.close()


def write_all(repo: Path, tmp_path: Path, content: str, names: list[str]) -> None:
    for name in names:
        put(repo, file_workflow(name, tmp_path / name, content, keep=True))


async def next_revision(controller: Controller) -> Revision:
    revision = await controller.source.fetch()
    assert revision is not None, "the source saw no new commit"
    return revision


def take_all(controller: Controller) -> list[WorkItem]:
    """Hand out everything waiting, one at a time, as a single worker would."""
    items = []
    while (item := controller.queue.try_get()) is not None:
        items.append(item)
        controller.queue.done(item.key)
    return items


async def test_the_changed_workflow_goes_ahead_of_re_checks_still_waiting_from_before(
    controller: Controller, repo: Path, tmp_path: Path
) -> None:
    write_all(repo, tmp_path, "one", NAMES)
    commit(repo)
    await controller._on_revision(await next_revision(controller))
    write_all(repo, tmp_path, "two", ["d"])
    commit(repo)
    # nothing was handed out since the first revision: its five re-checks still wait
    await controller._on_revision(await next_revision(controller))
    items = take_all(controller)
    assert [item.key for item in items] == ["d", "a", "b", "c", "e"]
    assert all(item.reasons == {Reason.REVISION} for item in items)


async def test_every_workflow_is_re_checked_at_a_revision_whatever_the_slice_size(
    controller: Controller, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revision_module, "REQUEUE_SLICE", 2)
    write_all(repo, tmp_path, "one", NAMES)
    commit(repo)
    await controller._on_revision(await next_revision(controller))
    take_all(controller)
    write_all(repo, tmp_path, "two", ["b"])
    commit(repo)
    await controller._on_revision(await next_revision(controller))
    assert [item.key for item in take_all(controller)] == ["b", "a", "c", "d", "e"]


async def test_a_waiting_worker_takes_the_changed_workflow_before_the_rest_is_queued(
    controller: Controller, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revision_module, "REQUEUE_SLICE", 1)
    write_all(repo, tmp_path, "one", NAMES)
    commit(repo)
    await controller._on_revision(await next_revision(controller))
    take_all(controller)
    write_all(repo, tmp_path, "two", ["c"])
    commit(repo)

    async def worker() -> tuple[str, int]:
        item = await controller.queue.get()
        assert item is not None
        return item.key, len(controller.queue)  # what else was waiting when it got work

    taken = asyncio.create_task(worker())
    await asyncio.sleep(0)  # the worker waits on the empty queue
    await controller._on_revision(await next_revision(controller))
    key, waiting = await taken
    assert key == "c"
    assert waiting < len(NAMES) - 1, "the worker only got work once everything was queued"
    assert sorted(item.key for item in take_all(controller)) == ["a", "b", "d", "e"]
