"""The source loop: polling, refresh() from webhooks, retry after failure, stop."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest
from sources_helpers import Remote, next_revision, running, texts

from reconciler.sources import Revision, open_source
from tests.support.waiting import until_async


async def test_polling_delivers_a_pushed_commit(remote: Remote, tmp_path: Path) -> None:
    remote.work.commit({"a.yaml": "a1\n"})
    remote.work.push()
    source = open_source(remote.file_url, data_dir=tmp_path / "data", poll_interval=0.5)

    async with running(source) as seen:
        first = await next_revision(seen)
        assert texts(first) == {"a.yaml": "a1\n"}
        sha = remote.work.commit({"a.yaml": "a2\n"})
        remote.work.push()

        second = await next_revision(seen)
        assert second.id == sha
        assert second.changed == {"a.yaml"}


async def test_refresh_fetches_at_once_even_from_another_thread(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a1\n"})
    remote.work.push()
    source = open_source(remote.file_url, data_dir=tmp_path / "data", poll_interval=3600)

    async with running(source) as seen:
        await next_revision(seen)
        sha = remote.work.commit({"a.yaml": "a2\n"})
        remote.work.push()
        thread = threading.Thread(target=source.refresh)
        thread.start()
        thread.join()

        assert (await next_revision(seen)).id == sha

        third = remote.work.commit({"a.yaml": "a3\n"})
        remote.work.push()
        for _ in range(5):  # a burst of webhooks coalesces into few fetches
            source.refresh()
        assert (await next_revision(seen)).id == third
    assert source.fetch_count_ok <= 6


async def test_failed_fetch_is_retried_and_the_loop_catches_up(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a1\n"})
    remote.work.push()
    moved = tmp_path / "moved.git"
    shutil.move(remote.bare, moved)
    source = open_source(remote.file_url, data_dir=tmp_path / "data", poll_interval=3600)

    async with running(source) as seen:
        await until_async(lambda: source.fetch_count_failed, 5, "a failed fetch", interval=0.05)
        assert source.fetch_count_failed >= 1
        assert source.last_error is not None
        assert "repo.git" in source.last_error
        shutil.move(moved, remote.bare)

        revision = await next_revision(seen)  # retried after ~1 s, not after the poll interval
        assert texts(revision) == {"a.yaml": "a1\n"}
        assert source.last_error is None


async def test_a_failing_consumer_does_not_stop_the_loop(remote: Remote, tmp_path: Path) -> None:
    remote.work.commit({"a.yaml": "a1\n"})
    remote.work.push()
    source = open_source(remote.file_url, data_dir=tmp_path / "data", poll_interval=3600)
    seen: list[Revision] = []
    stop = asyncio.Event()

    async def on_revision(revision: Revision) -> None:
        seen.append(revision)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    task = asyncio.create_task(source.run(on_revision, stop=stop))
    try:
        await until_async(lambda: seen, 10, "the first revision", interval=0.05)
        remote.work.commit({"a.yaml": "a2\n"})
        remote.work.push()
        source.refresh()
        await until_async(lambda: len(seen) == 2, 10, "the second revision", interval=0.05)
        assert len(seen) == 2
        assert texts(seen[1]) == {"a.yaml": "a2\n"}
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_revision_fetched_before_run_is_delivered_first(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a1\n"})
    remote.work.push()
    source = open_source(remote.file_url, data_dir=tmp_path / "data", poll_interval=3600)
    fetched = await source.fetch()

    async with running(source) as seen:
        assert await next_revision(seen) is fetched


@pytest.mark.parametrize("poll_interval", [0.0, -1.0])
def test_poll_interval_must_be_positive(tmp_path: Path, poll_interval: float) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        open_source("https://example.test/repo.git", data_dir=tmp_path, poll_interval=poll_interval)
